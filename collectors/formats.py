"""Decoders of the vendor gateway formats: payload → device readings, before any registry lookup.

Each decoder is pure, never raises on bad input (it returns a reason instead) and keeps the vendor's
own identifiers; ``collectors.decode`` maps them to registry meters and runs the common checks. The
topics each format publishes on are in ``park.topics``. :func:`load_json` is the JSON rule every
format shares, the native one (``collectors.native``) included.

- **Tasmota** SENSOR telemetry: ``ENERGY.Total`` in kWh, a scalar (channel ``0``), a list
  (channels ``0``, ``1`` …) or a dict (by phase name); ``TotalTariff`` summed when ``Total`` is
  absent; ``Time`` is device local time without zone (Tasmota#3629) → the park's time zone; the
  poll reply ``StatusSNS`` wrapper is unwrapped.
- **Shelly Gen2** RPC event notifications, ``NotifyStatus``: ``emdata:N.total_act`` /
  ``total_act_ret`` and ``em1data:N.total_act_energy`` / ``total_act_ret_energy`` in Wh, keyed on
  the object key (its inner ``id`` can disagree); the reported total is used, never the sum of
  phases; ``switch:N.aenergy.total`` / ``ret_aenergy.total`` (Wh) for plugs and relays; ``params.ts``
  is Unix time (UTC). Power-only notifications carry no energy and are ignored.
- **DL/T 645 gateway JSON** (EdgeLogger) power uplink: a batch of meters,
  ``metrics.energy.active.value.forward`` / ``reverse`` cumulative kWh although labelled ``"kW"``;
  ``timestamp`` is local ``yyyyMMddHHmmssSSS`` without zone.

Limits every JSON payload meets before it is parsed (:func:`load_json`): at most
:data:`MAX_JSON_BYTES` (a readings message; a status is held to less by its caller) and at most
:data:`MAX_DEPTH` levels of nesting. The deepest real payload (DL/T 645 ``batch[].metrics.energy.
active.value``) is 6 levels; 32 leaves room for any vendor's wrapper while keeping the parser (and
anything that walks the document after it) far from Python's recursion limit, which a payload of
``[[[[…`` otherwise reaches: the parser raised RecursionError, which nothing caught. A message holds
at most :data:`MAX_READINGS` readings (``collectors.decode``).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from collectors.model import Decoded, DeviceReading, Reason
from park.registry import Register

IMPORT = Register.ACTIVE_ENERGY_IMPORT.value
EXPORT = Register.ACTIVE_ENERGY_EXPORT.value


class Unreadable(NamedTuple):
    """Why a payload is no JSON document at all; usable as :attr:`Decoded.problem` as it is."""

    reason: Reason
    detail: str


MAX_JSON_BYTES = 1_000_000  # a readings message
MAX_DEPTH = 32  # nesting levels of arrays and objects; the deepest real payload has 6
# Readings in one message: a real reading takes ~150 bytes, so a full 1 MB message holds ~6,600. More
# means tiny items, each as costly to check as a real reading: 100,000 of them took a second.
MAX_READINGS = 10_000


def load_json(payload: bytes, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH) -> object:
    """The payload's JSON document, or :class:`Unreadable`: at most ``max_bytes`` and ``max_depth``
    levels deep, UTF-8 only, and NaN or Infinity refused (InfluxDB cannot store them, and they are
    not JSON)."""
    if len(payload) > max_bytes:
        return Unreadable(Reason.OVERSIZED, f"{len(payload)} bytes > {max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Unreadable(Reason.NOT_UTF8, str(exc))
    # Fewer brackets than the limit cannot nest deeper than it: the exact count runs only past that.
    if payload.count(b"[") + payload.count(b"{") > max_depth and json_depth(payload, max_depth) > max_depth:
        return Unreadable(Reason.SCHEMA, f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_constant=_no_constants)
    except ValueError as exc:
        return Unreadable(Reason.MALFORMED_JSON, str(exc))
    except RecursionError:  # unreachable past the depth check; kept so that no change to it can be fatal
        return Unreadable(Reason.SCHEMA, "JSON nested too deep to parse")


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_PLAIN_STRING = re.compile(rb'"[^"]*"')
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'[]{}"\\')
_OPEN_CLOSE = bytes.maketrans(b"[{]}", b"(())")


def json_depth(payload: bytes, limit: int = MAX_DEPTH) -> int:
    """How deep arrays and objects nest in ``payload`` (brackets inside strings do not count); the
    count stops at ``limit + 1``. Linear in the payload, in C: strings are cut out, the rest is
    reduced to its brackets and the innermost pairs are removed once per level.

    >>> json_depth(b'{"a": [1, {"b": "[[["}]}')
    3
    """
    structure = payload.translate(None, _NOT_STRUCTURE)
    if b"\\" in structure:  # escaped quotes: strings must be found in the payload itself
        structure = _STRING.sub(b"", payload).translate(None, _NOT_STRUCTURE)
    else:
        structure = _PLAIN_STRING.sub(b"", structure)
    brackets = structure.replace(b'"', b"").translate(_OPEN_CLOSE)
    for depth in range(limit + 1):
        if not brackets:
            return depth
        shorter = brackets.replace(b"()", b"")
        if len(shorter) == len(brackets):  # unbalanced, and the parser will refuse it: as deep as what is left
            return depth + len(brackets) if len(brackets) <= limit else limit + 1
        brackets = shorter
    return limit + 1


def _path(body: object, *keys: str) -> object:
    """``body[k1][k2]…``, or None where a level is missing or is no object."""
    for key in keys:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _json_object(payload: bytes) -> dict[str, Any] | Unreadable:
    body = load_json(payload)
    if isinstance(body, Unreadable):
        return body
    if not isinstance(body, dict):
        return Unreadable(Reason.SCHEMA, f"expected a JSON object, got {type(body).__name__}")
    return body


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _local(text: object, fmt: str | None, timezone: str) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        naive = datetime.strptime(text, fmt) if fmt else datetime.fromisoformat(text)
    except ValueError:
        return None
    return naive if naive.tzinfo else naive.replace(tzinfo=ZoneInfo(timezone))


def decode_tasmota(payload: bytes, timezone: str) -> Decoded:
    body = _json_object(payload)
    if isinstance(body, Unreadable):
        return Decoded(problem=body)
    if isinstance(body.get("StatusSNS"), dict):
        body = body["StatusSNS"]
    energy = body.get("ENERGY")
    if not isinstance(energy, dict):
        return Decoded(problem=(Reason.SCHEMA, "no ENERGY object"))
    total = energy.get("Total")
    if total is None and isinstance(energy.get("TotalTariff"), list):
        tariffs = energy["TotalTariff"]
        total = (
            sum(tariffs) if all(isinstance(t, int | float) and not isinstance(t, bool) for t in tariffs) else tariffs
        )
    when = _local(body.get("Time"), None, timezone)
    if isinstance(total, list):
        channels = {str(i): v for i, v in enumerate(total)}
    elif isinstance(total, dict):
        channels = {str(k): v for k, v in total.items()}
    elif total is not None:
        channels = {"0": total}
    else:
        return Decoded(problem=(Reason.SCHEMA, "ENERGY has neither Total nor TotalTariff"))
    return Decoded([DeviceReading(ref, IMPORT, when, value, "kWh") for ref, value in channels.items()])


def decode_shelly_gen2(payload: bytes) -> Decoded:
    body = _json_object(payload)
    if isinstance(body, Unreadable):
        return Decoded(problem=body)
    if body.get("method") != "NotifyStatus":
        return Decoded()  # other RPC notifications (events, full status) carry no counters to store
    params = body.get("params")
    if not isinstance(params, dict):
        return Decoded(problem=(Reason.SCHEMA, "NotifyStatus without params"))
    ts = params.get("ts")
    when = None
    problem = None
    if isinstance(ts, int | float) and _is_number(ts) and math.isfinite(ts):
        try:
            when = datetime.fromtimestamp(ts, UTC)
        except (OverflowError, OSError, ValueError):
            problem = (Reason.SCHEMA, f"params.ts {ts!r} is no time a clock can show")
    readings = []
    for key, part in params.items():
        if not isinstance(part, dict):
            continue
        if key.startswith("emdata:"):
            fields = (("total_act", IMPORT), ("total_act_ret", EXPORT))
        elif key.startswith("em1data:"):
            fields = (("total_act_energy", IMPORT), ("total_act_ret_energy", EXPORT))
        elif key.startswith("switch:"):  # plugs and relays: aenergy.total / ret_aenergy.total in Wh
            readings += [
                DeviceReading(key, register, when, part[name]["total"], "Wh", problem)
                for name, register in (("aenergy", IMPORT), ("ret_aenergy", EXPORT))
                if isinstance(part.get(name), dict) and "total" in part[name]
            ]
            continue
        else:
            continue  # em:N (power), temperature … are not energy registers
        readings += [
            DeviceReading(key, register, when, part[name], "Wh", problem) for name, register in fields if name in part
        ]
    return Decoded(readings)


def decode_dlt645_json(payload: bytes, timezone: str) -> Decoded:
    body = _json_object(payload)
    if isinstance(body, Unreadable):
        return Decoded(problem=body)
    batch = body.get("batch")
    if not isinstance(batch, list):
        return Decoded(problem=(Reason.SCHEMA, "no batch list"))
    readings = []
    for item in batch:
        if not isinstance(item, dict) or not isinstance(item.get("device_id"), str):
            readings.append(DeviceReading("", IMPORT, None, None, "kWh"))  # reported as a bad reading
            continue
        when = _local(item.get("timestamp"), "%Y%m%d%H%M%S%f", timezone)
        values = _path(item, "metrics", "energy", "active", "value")
        if not isinstance(values, dict):
            readings.append(DeviceReading(item["device_id"], IMPORT, when, None, "kWh"))
            continue
        # The gateway labels cumulative active energy "kW"; it is kWh (docs: metering §4).
        for name, register in (("forward", IMPORT), ("reverse", EXPORT)):
            if name in values:
                readings.append(DeviceReading(item["device_id"], register, when, values[name], "kWh"))
    return Decoded(readings)
