"""Messages for the hostile-input tests: every gateway format's readings payload and the status
topic, valid readings mixed with hostile variations (deep nesting, wrong types, lone surrogates,
huge, NaN and negative numbers, extreme timestamps, oversized arrays, unknown and foreign meters),
each with what the collector must make of it.

One generator serves two drivers through :class:`Pick`: hypothesis strategies for the in-process fuzz
test (``tests/collectors/test_fuzz.py``) and a seeded ``random.Random`` for the test through a real
broker and collector (``tests/integration/test_hostile_input.py``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from park.registry import Gateway, GatewayFormat, Meter, Registry
from park.topics import classify, layout
from park.units import UnitError, convert, normalize_unit

T = TypeVar("T")
SLOT = timedelta(minutes=15)
SURROGATES = ["\ud800", "a\udfffb", "\udbff\udbff", "E01-M-GRID\ud800"]


class Pick(Protocol):
    """The choices the generator makes; hypothesis or a seeded random answers them."""

    def choice(self, options: Sequence[T]) -> T: ...
    def integer(self, low: int, high: int) -> int: ...
    def chance(self, percent: int) -> bool: ...
    def text(self) -> str: ...
    def real(self) -> float: ...


class HypothesisPick:
    def __init__(self, draw: Callable[[st.SearchStrategy[Any]], Any]) -> None:
        self._draw = draw

    def choice(self, options: Sequence[T]) -> T:
        return self._draw(st.sampled_from(options))  # type: ignore[no-any-return]

    def integer(self, low: int, high: int) -> int:
        return self._draw(st.integers(low, high))  # type: ignore[no-any-return]

    def chance(self, percent: int) -> bool:
        return self._draw(st.integers(0, 99)) < percent  # type: ignore[no-any-return]

    def text(self) -> str:
        return self._draw(st.one_of(st.text(max_size=20), st.sampled_from(SURROGATES)))  # type: ignore[no-any-return]

    def real(self) -> float:
        return self._draw(st.floats(allow_nan=False, allow_infinity=False))  # type: ignore[no-any-return]


class RandomPick:
    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def choice(self, options: Sequence[T]) -> T:
        return options[self._random.randrange(len(options))]

    def integer(self, low: int, high: int) -> int:
        return self._random.randint(low, high)

    def chance(self, percent: int) -> bool:
        return self._random.randrange(100) < percent

    def text(self) -> str:
        if self.chance(30):
            return self.choice(SURROGATES)
        return "".join(
            chr(self._random.choice([self._random.randint(32, 126), self._random.randint(0x4E00, 0x9FFF)]))
            for _ in range(self._random.randint(0, 12))
        )

    def real(self) -> float:
        return self._random.choice([0.0, -0.0, 1e-300, 1e300, -1e300, 5e-324, self._random.uniform(-1e6, 1e6)])


@dataclass(frozen=True)
class Good:
    """A reading the collector must store exactly: meter, register, time and ``raw_value``."""

    meter: str
    register: str
    time: datetime
    raw: float


@dataclass
class Case:
    kind: str  # format/variant, for the reader of a failure
    gateway: str  # the registry gateway that publishes it (its broker account)
    topic: str
    payload: bytes
    good: list[Good] = field(default_factory=list)
    bad: int = 0  # faults the message holds: each makes at least one quarantine row
    status: bool = False  # a status message: one gateway_status point, or one quarantine row
    ignored: bool = False  # a shape its format defines as carrying nothing to store


class Slots:
    """Unique, increasing times per meter register, so no two good readings share one (no conflict)."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self._next: dict[tuple[str, str], int] = {}

    def take(self, meter: str, register: str) -> datetime:
        n = self._next.get((meter, register), 0)
        self._next[(meter, register)] = n + 1
        return self.start + n * SLOT


class Raw:
    """JSON text spliced in as it is (1e400, NaN, a bracket tower): json.dumps cannot write it."""

    def __init__(self, text: str) -> None:
        self.text = text


def dumps(body: object) -> bytes:
    """JSON with :class:`Raw` parts spliced in; lone surrogates become ``\\udXXX`` escapes."""
    raws: list[str] = []

    def default(value: object) -> str:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"\x00RAW{len(raws) - 1}\x00"
        raise TypeError(type(value).__name__)

    text = json.dumps(body, default=default)
    for i, raw in enumerate(raws):
        text = text.replace(f'"\\u0000RAW{i}\\u0000"', raw)
    return text.encode()


def tower(depth: int) -> Raw:
    return Raw("[" * depth + "1" + "]" * depth)


# -- the generator ------------------------------------------------------------------------------------


class Generator:
    def __init__(self, registry: Registry, now: datetime, slots: Slots) -> None:
        self.registry = registry
        self.now = now
        self.tz = ZoneInfo(registry.park.timezone)
        self.slots = slots
        self.by_format: dict[GatewayFormat, list[Gateway]] = {}
        for gateway in registry.gateways:
            self.by_format.setdefault(gateway.format, []).append(gateway)

    def case(self, pick: Pick, fmt: GatewayFormat | None = None) -> Case:
        """One message of ``fmt`` (any format, or a status, if None)."""
        kind = fmt.value if fmt is not None else pick.choice([*(f.value for f in self.by_format), "status"])
        if kind == "status":
            return self.status(pick)
        return {
            GatewayFormat.NATIVE: self.native,
            GatewayFormat.TASMOTA: self.tasmota,
            GatewayFormat.SHELLY_GEN2: self.shelly,
            GatewayFormat.DLT645_JSON: self.dlt645,
        }[GatewayFormat(kind)](pick)

    # -- values and times -------------------------------------------------------------------------

    def good_value(self, pick: Pick, meter: Meter) -> float:
        top = min(meter.rollover_at or 1e7, meter.max_register or 1e7, 1e7)
        return pick.integer(0, int(top * 100) - 1) / 100

    def bad_value(self, pick: Pick, meter: Meter, per_unit: float = 1.0) -> object:
        """A value the checks refuse: negative, too large, not finite, not a number (``per_unit``: the
        payload's unit per meter unit, 1000 for Wh on a kWh meter)."""
        return pick.choice(
            [
                -1.5,
                -(pick.integer(1, 10**6)),
                1e308,
                2**80,
                (meter.rollover_at or 1e13) * 2 * per_unit,
                Raw("1e400"),
                Raw("-1e400"),
                Raw("1" + "0" * 400),
                "123.4",
                True,
                None,
                [1.0],
                {"v": 1},
                tower(pick.integer(2, 20)),
                pick.text(),
            ]
        )

    def bad_time(self, pick: Pick, extreme: bool = True) -> datetime:
        """An aware time out of bounds: far ahead, too old, or (``extreme``) at the edge of what a
        datetime can hold, where converting it to another zone overflows."""
        times = [
            self.now + timedelta(days=pick.integer(1, 3650)),
            self.now - timedelta(days=pick.integer(401, 3650)),
            datetime(1970, 1, 1, tzinfo=UTC),
        ]
        if extreme:
            times += [
                datetime(1, 1, 1, 0, 0, tzinfo=ZoneInfo("Etc/GMT-14")),
                datetime(9999, 12, 31, 23, 59, tzinfo=ZoneInfo("Etc/GMT+12")),
            ]
        return pick.choice(times)

    # -- native ---------------------------------------------------------------------------------------

    def native(self, pick: Pick) -> Case:
        gateway = pick.choice(self.by_format[GatewayFormat.NATIVE])
        topic = layout(GatewayFormat.NATIVE).readings_topic(gateway.enterprise, gateway.id)
        case = Case("native", gateway.id, topic, b"")
        hostile = pick.integer(0, 99)
        if hostile < 25:  # the whole message is bad
            case.kind, case.payload = self.native_hostile_message(pick, gateway)
            case.bad = 1
            return case
        items: list[object] = []
        for _ in range(pick.integer(1, 12)):
            if pick.chance(60):
                item, good = self.native_good(pick, gateway)
                items.append(item)
                case.good.append(good)
            else:
                items.append(self.native_bad(pick, gateway))
                case.bad += 1
        if hostile < 30:  # an oversized array of tiny bad readings: at most 101 rows
            many = pick.integer(150, 3000)
            items += [pick.choice([1, "x", None, [], {}])] * many
            case.bad += many
            case.kind = "native/many"
        body: dict[str, object] = {"gateway": gateway.id, "seq": pick.integer(0, 2**63 - 1), "readings": items}
        if pick.chance(20):
            body["sent_at"] = self.now.isoformat()
        if pick.chance(15):  # unknown fields are ignored, nested ones too, within the depth limit
            body["extra"] = tower(pick.integer(1, 25))
        case.payload = dumps(body)
        return case

    def native_good(self, pick: Pick, gateway: Gateway) -> tuple[object, Good]:
        meter = pick.choice(self.registry.meters_of_gateway(gateway.id))
        register = pick.choice(meter.registers).value
        when = self.slots.take(meter.id, register)
        value = self.good_value(pick, meter)
        item: dict[str, object] = {
            "meter": meter.id,
            "ts": when.astimezone(self.tz).isoformat(),
            "register": register,
            "value": value,
            "unit": meter.unit,
        }
        if pick.chance(10):
            item["note"] = pick.text()  # extra text, lone surrogates included, is ignored
        return item, Good(meter.id, register, when, value)

    def native_bad(self, pick: Pick, gateway: Gateway) -> object:
        meter = pick.choice(self.registry.meters_of_gateway(gateway.id))
        item: dict[str, object] = {
            "meter": meter.id,
            "ts": (self.now - timedelta(hours=pick.integer(1, 48))).astimezone(self.tz).isoformat(),
            "register": meter.registers[0].value,
            "value": self.good_value(pick, meter),
            "unit": meter.unit,
        }
        fault = pick.integer(0, 11)
        if fault == 0:
            item["meter"] = pick.choice(["NOT-IN-REGISTRY", pick.text() or "x", *SURROGATES])
        elif fault == 1:
            foreign = pick.choice([m for m in self.registry.meters if m.gateway != gateway.id])
            item["meter"], item["unit"] = foreign.id, foreign.unit
        elif fault == 2:
            item["unit"] = pick.choice([u for u in ("Wh", "MWh", "GJ", "m3", "kW", "banana") if _unit(u) != meter.unit])
        elif fault == 3:
            item["value"] = self.bad_value(pick, meter)
        elif fault == 4:
            item["ts"] = self.bad_time(pick).isoformat()
        elif fault == 5:
            item["ts"] = pick.choice(
                ["10000-01-01T00:00:00+08:00", "2026-13-45T99:00:00Z", "yesterday", str(item["ts"])[:19]]
            )
        elif fault == 6:
            del item[pick.choice(["meter", "ts", "register", "unit", "value"])]
        elif fault == 7:
            item["register"] = pick.choice(["reactive_energy", pick.text() or "r"])
            if item["register"] in {r.value for r in meter.registers}:
                item["register"] = "reactive_energy"
        elif fault == 8:
            return pick.choice([1, -2.5, "reading", None, True, [], [item], tower(pick.integer(1, 20))])
        elif fault == 9:
            item["ts"] = pick.choice([1772366400, None, [], {"at": 1}])
        elif fault == 10:
            item["meter"] = "M" * pick.integer(65, 500)
        else:
            item["value"] = -0.001
        return item

    def native_hostile_message(self, pick: Pick, gateway: Gateway) -> tuple[str, bytes]:
        good = {"meter": "x", "ts": self.now.isoformat(), "register": "active_energy_import", "value": 1, "unit": "kWh"}
        base: dict[str, object] = {"gateway": gateway.id, "seq": 1, "readings": [good]}
        variant = pick.integer(0, 13)
        if variant == 0:
            return "native/deep-readings", dumps({**base, "readings": tower(pick.integer(33, 100_000))})
        if variant == 1:
            return "native/deep-extra", dumps({**base, "extra": {"a": tower(pick.integer(33, 5_000))}})
        if variant == 2:
            return "native/truncated", dumps(base)[: pick.integer(0, 40)]
        if variant == 3:
            return "native/not-utf8", b"\xff\xfe" + dumps(base)
        if variant == 4:
            return "native/nan-literal", dumps({**base, "readings": [{**good, "value": Raw("NaN")}]})
        if variant == 5:
            return "native/not-an-object", dumps(pick.choice([[base], 1, "text", None, True]))
        if variant == 6:
            return "native/readings-not-a-list", dumps({**base, "readings": pick.choice([{}, "x", 1, None])})
        if variant == 7:
            return "native/seq", dumps({**base, "seq": pick.choice([2**63, 2**70, -1, "7", 1.5, None, Raw("1e400")])})
        if variant == 8:
            claimed = pick.choice(["gw-other", "\ud800", "", "g" * 65, gateway.id + "x"])
            return "native/gateway-claim", dumps({**base, "gateway": claimed})
        if variant == 9:
            return "native/oversized", dumps({**base, "pad": "x" * 1_000_001})
        if variant == 10:
            return "native/surrogate-garbage", b'{"gateway": "\\ud800", "seq": "\\udfff", "readings": "\\ud800"}'
        if variant == 11:
            return "native/empty", pick.choice([b"", b" ", b"{}", b"null"])
        if variant == 12:
            # Unclosed brackets, deeper than any limit: the parser must not recurse into them.
            return "native/unclosed", b'{"gateway": "' + gateway.id.encode() + b'", "readings": ' + b"[" * 50_000
        return "native/too-many-readings", dumps({**base, "readings": [1] * 100_001})

    # -- vendor formats ---------------------------------------------------------------------------------

    def tasmota(self, pick: Pick) -> Case:
        gateway = pick.choice(self.by_format[GatewayFormat.TASMOTA])
        topic = layout(GatewayFormat.TASMOTA).readings_topic(gateway.enterprise, gateway.id)
        meter = self.registry.meter_by_device[(gateway.id, "0")]
        case = Case("tasmota", gateway.id, topic, b"")
        variant = pick.integer(0, 99)
        if variant < 15:
            case.kind = "tasmota/hostile"
            case.payload = pick.choice(
                [
                    dumps({"Time": "2026-01-01T00:00:00", "ENERGY": tower(pick.integer(33, 50_000))}),
                    dumps({"Time": "2026-01-01T00:00:00", "ENERGY": pick.choice([None, 1, "x", []])}),
                    dumps({"Time": "2026-01-01T00:00:00", "ENERGY": {"Power": 5}}),
                    dumps(pick.choice([[], 1, None])),
                    b'{"ENERGY": {"Total": NaN}}',
                    b"\xc3\x28",
                ]
            )
            case.bad = 1
            return case
        register = meter.registers[0].value
        when = self.slots.take(meter.id, register)
        local = when.astimezone(self.tz).replace(tzinfo=None).isoformat(timespec="seconds")
        value = self.good_value(pick, meter)
        total: object = value
        energy: dict[str, object] = {"TotalStartTime": "2024-01-01T00:00:00"}
        if variant < 45:  # a bad reading
            case.bad = 1
            fault = pick.integer(0, 3)
            if fault == 0:
                total = self.bad_value(pick, meter)
                if total == [1.0]:  # a list is Tasmota's channels: this one would be a good channel 0
                    total = "1.0"
            elif fault == 1:
                local = pick.choice([None, "yesterday", "0001-01-01T00:00:00", "9999-12-31T23:59:59", 5])  # type: ignore[assignment]
            elif fault == 2:  # a second channel the registry does not know, beside a good first one
                total = [value, self.good_value(pick, meter)]
                case.good.append(Good(meter.id, register, when, value))
            else:
                total = {"Phase" + pick.text(): value}
        else:
            case.good.append(Good(meter.id, register, when, value))
            if pick.chance(20):
                cents = [pick.integer(0, 10**8) for _ in range(pick.integer(1, 3))]
                tariffs = [c / 100 for c in cents]
                if sum(tariffs) < (meter.max_register or 1e12):
                    total = None
                    energy["TotalTariff"] = tariffs
                    case.good[-1] = Good(meter.id, register, when, sum(tariffs))
        if total is not None:
            energy["Total"] = total
        body: dict[str, object] = {"Time": local, "ENERGY": energy}
        if pick.chance(20):
            body = {"StatusSNS": body}
        case.payload = dumps(body)
        return case

    def shelly(self, pick: Pick) -> Case:
        gateway = pick.choice(self.by_format[GatewayFormat.SHELLY_GEN2])
        topic = layout(GatewayFormat.SHELLY_GEN2).readings_topic(gateway.enterprise, gateway.id)
        meters = [m for m in self.registry.meters_of_gateway(gateway.id)]
        case = Case("shelly", gateway.id, topic, b"")
        variant = pick.integer(0, 99)
        if variant < 12:
            case.kind = "shelly/hostile"
            case.payload = pick.choice(
                [
                    dumps({"method": "NotifyStatus", "params": tower(pick.integer(33, 50_000))}),
                    dumps({"method": "NotifyStatus", "params": pick.choice([None, 1, "x", []])}),
                    dumps(pick.choice([[], 1, None])),
                    b'{"method": "NotifyStatus", "params": {"ts": NaN}}',
                ]
            )
            case.bad = 1
            return case
        if variant < 17:
            case.kind, case.ignored = "shelly/no-energy", True
            case.payload = pick.choice(
                [
                    dumps({"method": "NotifyEvent", "params": {"ts": 1, "events": []}}),
                    dumps({"method": "NotifyStatus", "params": {"ts": 1, "em:0": {"a_act_power": 5.0}}}),
                ]
            )
            return case
        ts: object = None
        params: dict[str, object] = {}
        times: list[datetime] = []
        for meter in meters:
            register = meter.registers[0].value
            when = self.slots.take(meter.id, register)
            times.append(when)
            wh = pick.integer(0, 10**9) / 100
            part: dict[str, object] = {"id": 0, "total_act": wh, "total_act_ret": pick.integer(0, 10**6) / 100}
            params[meter.device_ref] = part
            case.good.append(Good(meter.id, register, when, convert(wh, "Wh", meter.unit)))
            ts = int(when.timestamp())
        # One timestamp per notification: the generator keeps one meter's slot (the demo has one meter).
        params["ts"] = ts
        if variant < 50:
            fault = pick.integer(0, 3)
            case.bad = 1
            if fault == 0:
                params["ts"] = pick.choice([1e20, -1e20, "now", None, 10**30, -5.5])
                case.good = []
                case.bad = len(meters)
            elif fault == 1:
                meter = meters[0]
                params[meter.device_ref] = {"total_act": self.bad_value(pick, meter, per_unit=1000.0)}
                case.good = case.good[1:]
            elif fault == 2:
                params["emdata:" + str(pick.integer(7, 99))] = {"total_act": 5.0}
            else:
                params["switch:" + str(pick.integer(0, 9))] = {"aenergy": {"total": 1.0}}
        params["em:0"] = {"a_act_power": 1.0}
        case.payload = dumps({"src": gateway.id, "method": "NotifyStatus", "params": params})
        return case

    def dlt645(self, pick: Pick) -> Case:
        gateway = pick.choice(self.by_format[GatewayFormat.DLT645_JSON])
        topic = layout(GatewayFormat.DLT645_JSON).readings_topic(gateway.enterprise, gateway.id)
        meters = self.registry.meters_of_gateway(gateway.id)
        case = Case("dlt645", gateway.id, topic, b"")
        if pick.chance(12):
            case.kind = "dlt645/hostile"
            case.payload = pick.choice(
                [
                    dumps({"batch": tower(pick.integer(33, 50_000))}),
                    dumps({"batch": pick.choice([None, 1, "x", {}])}),
                    dumps(pick.choice([[], 1, None])),
                    b'{"batch": [{"device_id": "x", "metrics": NaN}]}',
                ]
            )
            case.bad = 1
            return case
        batch: list[object] = []
        for n in range(pick.integer(1, 8)):
            meter = pick.choice(meters)
            register = meter.registers[0].value
            stamp = self.slots.take(meter.id, register)
            value = self.good_value(pick, meter)
            item: dict[str, object] = {
                "timestamp": stamp.astimezone(self.tz).strftime("%Y%m%d%H%M%S") + "000",
                "device_type": "three_phase_meter",
                "device_id": meter.device_ref,
                "metrics": {"energy": {"active": {"value": {"forward": value, "reverse": 0.5}, "unit": "kW"}}},
            }
            if pick.chance(35):
                case.bad += 1
                fault = pick.integer(0, 5)
                if fault == 0:
                    item["device_id"] = f"unknown-{n}-{pick.text()}"
                elif fault == 1:
                    item["metrics"] = pick.choice([[1, 2], "x", {"energy": "no"}, {"energy": {"active": [1]}}, None])
                elif fault == 2:
                    item["metrics"] = {"energy": {"active": {"value": {"forward": self.bad_value(pick, meter)}}}}
                elif fault == 3:
                    item["timestamp"] = pick.choice([None, "99999999999999999", "20261345990000000", 5, "x"])
                elif fault == 4:
                    late = self.bad_time(pick, extreme=False)
                    item["timestamp"] = late.astimezone(self.tz).strftime("%Y%m%d%H%M%S") + "000"
                else:
                    batch.append(pick.choice([1, "item", None, [], tower(pick.integer(1, 20))]))
                    case.good.append(Good(meter.id, register, stamp, value))
            else:
                case.good.append(Good(meter.id, register, stamp, value))
            batch.append(item)
        case.payload = dumps({"msgType": "up", "msgId": f"{gateway.id}-{pick.integer(0, 10**9)}", "batch": batch})
        return case

    # -- status ---------------------------------------------------------------------------------------

    def status(self, pick: Pick) -> Case:
        gateway = pick.choice(self.registry.gateways)
        fmt = gateway.format
        lay = layout(fmt)
        topic = lay.status_topic(gateway.enterprise, gateway.id)
        case = Case(f"status/{fmt.value}", gateway.id, topic, b"", status=True)
        native = fmt in (GatewayFormat.NATIVE, GatewayFormat.DLT645_JSON)
        if native:
            body: dict[str, object] = {"state": pick.choice(["online", "offline", "ONLINE"])}
            if pick.chance(50):
                body["at"] = pick.choice(
                    [
                        self.now.isoformat(),
                        "2100-01-01T00:00:00+08:00",
                        "1900-01-01T00:00:00+08:00",
                        "0001-01-01T00:00:00+14:00",
                        "soon",
                        self.now.replace(tzinfo=None).isoformat(),
                        5,
                    ]
                )
            payload = dumps(body)
        else:
            payload = pick.choice([b"Online", b"Offline"] if fmt is GatewayFormat.TASMOTA else [b"true", b"false"])
        if pick.chance(50):
            case.kind += "/hostile"
            variant = pick.integer(0, 7)
            if variant == 0:
                payload = dumps({"state": tower(pick.integer(33, 50_000))})
            elif variant == 1:
                payload = dumps({"state": pick.choice([1, None, [], {"a": 1}, pick.text()])})
            elif variant == 2:
                payload = b"\xff" + payload
            elif variant == 3:
                payload = dumps({"state": "online", "pad": "x" * 20_000})
            elif variant == 4:
                payload = pick.choice([b"", b"maybe", b"[[[[", b'"\\ud800"'])
            elif variant == 5 and native:  # a status under another enterprise's topic: spoofed
                other = pick.choice([e.id for e in self.registry.enterprises if e.id != gateway.enterprise])
                topic = lay.status_topic(other, gateway.id)
            elif variant == 6:
                payload = dumps({"state": "online", "at": tower(pick.integer(33, 1000))})
        case.topic, case.payload = topic, payload
        return case


def stranger(case: Case, name: str) -> Case:
    """``case`` on the topic of a gateway the registry does not know (in process only: the broker's
    ACL keeps such a gateway out): no reading is stored, the message is quarantined."""
    matched = classify(case.topic)
    assert matched is not None
    lay = layout(matched.format)
    enterprise = matched.enterprise or ""
    topic = lay.status_topic(enterprise, name) if case.status else lay.readings_topic(enterprise, name)
    return Case(f"{case.kind}/stranger", name, topic, case.payload, bad=1, status=case.status)


def _unit(unit: str) -> str | None:
    try:
        return normalize_unit(unit)
    except UnitError:
        return None
