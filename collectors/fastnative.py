"""The fast path of a batch of native readings messages: a message whose every reading passes every
check becomes its line protocol here, with what a batch shares paid once; anything else is left to
the reference path (``collectors.handler.handle``).

What a batch pays once instead of once per reading:

- the JSON is decoded straight into typed structs (msgspec), with no dicts and no pydantic model;
- a timestamp text is parsed, bounds-checked against the batch's receive time and turned into
  nanoseconds once per batch (a gateway's message holds its meters at the same time);
- a ``sent_at`` text is validated once per batch;
- a meter's registry facts, the series part of its lines (``meter_register,carrier=…``) and the unit
  spellings seen for it are looked up once per collector: they depend on the registry only, and only
  the registry's meters get an entry, so the caches are bounded by the registry.

The fast path only ever *accepts*: :meth:`FastNative.lines` returns the lines of a message for
which the reference path returns exactly those lines and no rejection, and None for anything else
(another format, a status, a reading that fails a check, a payload msgspec reads differently from
the standard library or refuses). A None costs the reference path on top, and only bad messages
take it. ``tests/collectors/test_fastnative.py`` checks on generated messages that both paths
give the same lines, readings and rejections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import msgspec
from pydantic import TypeAdapter, ValidationError

from collectors.checks import MAX_FUTURE
from collectors.decode import MAX_PAYLOAD_BYTES
from collectors.formats import MAX_READINGS
from collectors.native import MAX_SEQ
from park.lineprotocol import Point, encode, to_ns
from park.measurements import METER_REGISTER
from park.registry import GatewayFormat, Meter, Registry
from park.topics import Matched, classify
from park.units import UnitError, normalize_unit

MAX_TEXT_CHARS = 64  # meter, ts, register, unit: what collectors.native accepts
MAX_CACHED_TOPICS = 4_096  # topics classified once each; past this many, classified per message
MAX_UNIT_SPELLINGS = 8  # per meter, unit texts kept as known to be its unit (" kWh", "KWH" …)
MAX_CACHED_TIMES = 20_000  # timestamp texts kept per batch; past this many, parsed per reading


# Typed, and closed: a payload with any other key is the reference path's (so what is accepted here
# nests 3 levels deep, within collectors.formats.MAX_DEPTH, and no unknown value is skipped unread).
class _Reading(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    meter: str
    ts: str
    register: str
    value: int | float
    unit: str


class _Message(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    gateway: str
    seq: int
    readings: list[_Reading]
    sent_at: str | None = None


_DECODER: Final = msgspec.json.Decoder(_Message)
# What collectors.native's model accepts as ``sent_at``: validated by pydantic itself, so the two agree.
_SENT_AT: Final = TypeAdapter(datetime | None)


@dataclass(slots=True)
class _Meter:
    """A registry meter as the fast path checks its readings; only a gateway's own meters get one."""

    series: dict[str, str]  # register → its line up to the first field value ("meter_register,… value=")
    unit: str  # canonical
    units: set[str]  # unit texts seen that normalise to ``unit``
    below: float  # a register must be below this (rollover_at, else infinity)
    at_most: float  # … and at most this (Meter.max_register, else infinity)
    multiplier: float | None  # None: replacements may change it, ask Meter.multiplier_at


class Batch:
    """What one batch shares: its receive time and the timestamp texts already parsed against it."""

    def __init__(self, now: datetime, max_age: timedelta) -> None:
        self.earliest = now - max_age
        self.latest = now + MAX_FUTURE
        self.times: dict[str, tuple[int, datetime] | None] = {}  # ts text → (ns, time) if within bounds
        self.sent_at: dict[str, bool] = {}  # sent_at text → valid

    def time(self, text: str) -> tuple[int, datetime] | None:
        """(ns, time) of a reading's timestamp text, if the reference path accepts it at this batch's
        receive time; parsed once per batch."""
        found: tuple[int, datetime] | None = None
        if 0 < len(text) <= MAX_TEXT_CHARS:
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                pass
            else:
                if when.tzinfo is not None and self.earliest <= when <= self.latest:
                    found = (to_ns(when), when)
        if len(self.times) < MAX_CACHED_TIMES:  # a batch of many distinct times must not grow it without bound
            self.times[text] = found
        return found

    def sent_at_valid(self, text: str) -> bool:
        valid = self.sent_at.get(text)
        if valid is None:
            try:
                _SENT_AT.validate_python(text)
                valid = True
            except ValidationError:
                valid = False
            self.sent_at[text] = valid
        return valid


class FastNative:
    """The fast path for one registry (a collector keeps one for its life; its caches are bounded by
    the registry)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._topics: dict[str, Matched | None] = {}
        self._own: dict[str, dict[str, _Meter]] = {}  # gateway id → its meters met so far, by id

    def batch(self, now: datetime, max_age: timedelta) -> Batch:
        return Batch(now, max_age)

    def lines(self, topic: str, payload: bytes, batch: Batch) -> list[str] | None:
        """The message's reading lines if it is a native readings message whose every reading is
        stored as it is; None if the reference path must handle it."""
        matched = self._topics.get(topic) or self._classify(topic)
        if matched is None or matched.kind != "readings" or matched.format is not GatewayFormat.NATIVE:
            return None
        gateway = self._registry.gateway_by_id.get(matched.gateway)
        if gateway is None or matched.enterprise != gateway.enterprise or len(payload) > MAX_PAYLOAD_BYTES:
            return None
        if not payload.isascii():
            try:
                payload.decode("utf-8")  # what Python refuses as UTF-8 is the reference path's
            except UnicodeDecodeError:
                return None
        try:
            message = _DECODER.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if message.gateway != gateway.id or not 0 <= message.seq <= MAX_SEQ:
            return None  # a registry id is 1 to 64 characters, as the native model wants
        if message.sent_at is not None and not batch.sent_at_valid(message.sent_at):
            return None
        if len(message.readings) > MAX_READINGS:
            return None
        own = self._own.get(gateway.id)
        if own is None:
            own = self._own[gateway.id] = {}
        times = batch.times
        seq = f"{message.seq}i "
        lines: list[str] = []
        for item in message.readings:
            meter = own.get(item.meter) or self._meter(gateway.id, gateway.enterprise, item.meter)
            if meter is None:
                return None
            series = meter.series.get(item.register)
            if series is None:
                return None
            if item.unit not in meter.units and not self._unit_is(meter, item.unit):
                return None
            try:
                raw = float(item.value)
            except OverflowError:  # an int too large for a float: the reference path says why
                return None
            if not (0.0 <= raw <= meter.at_most and raw < meter.below):
                return None
            ts = item.ts
            at = times[ts] if ts in times else batch.time(ts)
            if at is None:
                return None
            multiplier = meter.multiplier
            if multiplier is None:
                multiplier = self._registry.meter_by_id[item.meter].multiplier_at(at[1])
            value = raw * multiplier
            if not math.isfinite(value):
                return None
            lines.append(f"{series}{value!r},raw_value={raw!r},gateway_seq={seq}{at[0]}")
        return lines

    def _classify(self, topic: str) -> Matched | None:
        matched = classify(topic)
        if len(self._topics) < MAX_CACHED_TOPICS:
            self._topics[topic] = matched
        return matched

    def _meter(self, gateway: str, enterprise: str, meter_id: str) -> _Meter | None:
        """The registry meter ``meter_id`` if it is the gateway's (kept), else None."""
        meter = self._registry.meter_by_id.get(meter_id)
        if meter is None or meter.gateway != gateway or meter.enterprise != enterprise:
            return None
        bound = meter.max_register
        facts = _Meter(
            series={r.value: _series(meter, r.value) for r in meter.registers},
            unit=meter.unit,
            units=set(),
            below=meter.rollover_at if meter.rollover_at is not None else math.inf,
            at_most=bound if bound is not None else math.inf,
            multiplier=None if meter.replacements else float(meter.multiplier),
        )
        self._own[gateway][meter_id] = facts
        return facts

    @staticmethod
    def _unit_is(meter: _Meter, text: str) -> bool:
        """Whether ``text`` names the meter's unit (kept as such, up to a few spellings a meter)."""
        if not 0 < len(text) <= MAX_TEXT_CHARS:
            return False
        try:
            same = normalize_unit(text) == meter.unit
        except UnitError:
            return False
        if same and len(meter.units) < MAX_UNIT_SPELLINGS:
            meter.units.add(text)
        return same


def _series(meter: Meter, register: str) -> str:
    """A reading line of this meter register up to its first field value, as
    ``park.lineprotocol.encode`` writes it (tags sorted and escaped, an empty workshop left out)."""
    tags = {
        "enterprise": meter.enterprise,
        "workshop": meter.workshop or "",
        "meter": meter.id,
        "carrier": meter.carrier.value,
        "register": register,
    }
    line = encode(Point(METER_REGISTER.name, tags, {"value": 0.0}, 0))
    return line[: -len(" value=0.0 0")] + " value="
