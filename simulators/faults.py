"""Faults on demand, each recorded in the ground truth with what a correct pipeline should make of it.

Spec: comma-separated ``kind:count``, e.g. ``gap:2,duplicate:20,reset:1,malformed:8``. Placement is
drawn from the seed, so the same spec and seed give the same faults.

=============  ================================================================================
kind           what happens
=============  ================================================================================
gap            a meter register sends nothing for 1-4 h (the registers around the gap carry the energy)
rollover       a meter's register wraps at its ``rollover_at`` mid-period (the meter itself does)
replacement    a meter is changed mid-period; the new one starts at a small register; the registry
               event (old final, new initial reading) is written beside the truth
reset          a meter's register drops to 0 and counts on, with no registry event: the interval
               across the reset cannot be booked (its energy is recorded as unbookable)
clock_skew     a gateway's clock runs 1-8 minutes off; its readings carry skewed timestamps
duplicate      a message is sent again a little later (same seq, same readings)
out_of_order   two consecutive messages of a gateway swap places
late           a gateway is offline for 6-12 h and sends what it stored when it is back
malformed      a message that must be quarantined, with the reason it must get
spoof          a gateway reports another enterprise's meter (quarantined as spoofed), or publishes
               under another gateway's topic (refused by the broker's ACL)
=============  ================================================================================
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import TypeVar

import numpy as np
import pandas as pd

from park.registry import GatewayFormat, Registry
from park.topics import classify
from simulators.park import SimulatedPark
from simulators.plan import Outgoing, plan_messages, readings_topic

T = TypeVar("T")
KINDS = (
    "gap",
    "rollover",
    "replacement",
    "reset",
    "clock_skew",
    "duplicate",
    "out_of_order",
    "late",
    "malformed",
    "spoof",
)


class FaultSpecError(ValueError):
    pass


def parse_faults(spec: str | None) -> dict[str, int]:
    """``"gap:2,reset:1"`` → ``{"gap": 2, "reset": 1}``; a bare kind counts 1."""
    counts: dict[str, int] = {}
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        kind, _, count = part.partition(":")
        if kind not in KINDS:
            raise FaultSpecError(f"unknown fault {kind!r}; known: {', '.join(KINDS)}")
        try:
            counts[kind] = counts.get(kind, 0) + (int(count) if count else 1)
        except ValueError:
            raise FaultSpecError(f"fault count {count!r} of {kind!r} is not a whole number") from None
    return counts


@dataclass(frozen=True)
class Fault:
    kind: str
    gateway: str = ""
    meter: str = ""
    register: str = ""
    start: str = ""
    end: str = ""
    detail: dict[str, object] = field(default_factory=dict)


@dataclass
class FaultedRun:
    park: SimulatedPark  # registers as the meters really counted (a rollover is the meter's own)
    published: pd.DataFrame  # registers as sent (NaN = not sent)
    plan: list[Outgoing]
    faults: list[Fault]
    registry_events: list[dict[str, object]]  # meter replacements to add to the registry
    expected_quarantine: dict[str, int]
    expected_refused: int

    def faults_json(self) -> list[dict[str, object]]:
        return [asdict(f) for f in self.faults]


def _iso(t: pd.Timestamp, tz: str) -> str:
    return str(t.tz_convert(tz).isoformat())


def _single_register_columns(park: SimulatedPark, exclude: set[str]) -> list[tuple[str, str]]:
    counts = pd.Series([m for m, _ in park.registers.columns]).value_counts()
    return [c for c in park.registers.columns if counts[c[0]] == 1 and c[0] not in exclude]


def inject(park: SimulatedPark, counts: dict[str, int], batch_intervals: int, seed: int) -> FaultedRun:
    """Apply the faults of ``counts`` to ``park`` and plan the messages that carry them."""
    rng = np.random.default_rng(seed + 7919)
    tz = park.registry.park.timezone
    n = len(park.times)
    faults: list[Fault] = []
    used: set[str] = set()
    registers = park.registers.copy()

    def middle_index() -> int:
        return int(rng.integers(max(2, n // 5), max(3, n - n // 5)))

    # -- physical: the meter's own register wraps ---------------------------------------------------------
    for _ in range(counts.get("rollover", 0)):
        candidates = [c for c in _single_register_columns(park, used) if park.registry.meter_by_id[c[0]].rollover_at]
        column = candidates[int(rng.integers(len(candidates)))]
        meter = park.registry.meter_by_id[column[0]]
        assert meter.rollover_at is not None
        k = middle_index()
        raw = registers[column].to_numpy(copy=True)
        offset = meter.rollover_at - raw[k] + (raw[k] - raw[k - 1]) / 2  # wrap inside interval k
        registers[column] = np.round(np.mod(raw + offset, meter.rollover_at), 2)
        used.add(column[0])
        faults.append(
            Fault(
                "rollover",
                meter.gateway,
                meter.id,
                column[1],
                _iso(park.times[k - 1], tz),
                _iso(park.times[k], tz),
                {"rollover_at": meter.rollover_at},
            )
        )
    park = replace(park, registers=registers)
    published = registers.copy()

    # -- what the meters send -------------------------------------------------------------------------
    events: list[dict[str, object]] = []
    for _ in range(counts.get("replacement", 0)):
        column = _pick(_single_register_columns(park, used), rng)
        meter = park.registry.meter_by_id[column[0]]
        k = middle_index()
        raw = published[column].to_numpy(copy=True)
        old_final = float(raw[k - 1])
        new_initial = float(np.round(rng.uniform(0, 50), 2))
        published.iloc[k:, published.columns.get_loc(column)] = np.round(new_initial + (raw[k:] - old_final), 2)
        at = _iso(park.times[k - 1], tz)
        events.append(
            {
                "meter": meter.id,
                "at": at,
                "old_final_reading": old_final,
                "new_initial_reading": new_initial,
                "new_serial": f"{meter.serial or meter.id}-R",
            }
        )
        used.add(meter.id)
        faults.append(
            Fault(
                "replacement",
                meter.gateway,
                meter.id,
                column[1],
                at,
                at,
                {"old_final_reading": old_final, "new_initial_reading": new_initial},
            )
        )
    for _ in range(counts.get("reset", 0)):
        column = _pick(_single_register_columns(park, used), rng)
        meter = park.registry.meter_by_id[column[0]]
        k = middle_index()
        raw = published[column].to_numpy(copy=True)
        unbookable = float((raw[k] - raw[k - 1]) * meter.multiplier)
        published.iloc[k:, published.columns.get_loc(column)] = np.round(raw[k:] - raw[k - 1], 2)
        used.add(meter.id)
        faults.append(
            Fault(
                "reset",
                meter.gateway,
                meter.id,
                column[1],
                _iso(park.times[k - 1], tz),
                _iso(park.times[k], tz),
                {"unbookable": unbookable, "unit": meter.unit},
            )
        )
    for _ in range(counts.get("gap", 0)):
        column = _pick(list(park.registers.columns), rng)
        meter = park.registry.meter_by_id[column[0]]
        length = int(rng.integers(4, 17))
        k = int(rng.integers(max(1, n // 10), max(2, n - n // 10 - length)))
        published.iloc[k : k + length, published.columns.get_loc(column)] = np.nan
        faults.append(
            Fault(
                "gap",
                meter.gateway,
                meter.id,
                column[1],
                _iso(park.times[k], tz),
                _iso(park.times[k + length - 1], tz),
                {"missing_readings": length},
            )
        )

    skew: dict[str, pd.Timedelta] = {}
    for _ in range(counts.get("clock_skew", 0)):
        gateway = _pick([g.id for g in park.registry.gateways if g.id not in skew], rng)
        seconds = int(rng.choice([-1, 1]) * rng.integers(60, 481))
        skew[gateway] = pd.Timedelta(seconds=seconds)
        faults.append(Fault("clock_skew", gateway, detail={"seconds": seconds}))

    plan = plan_messages(park.registry, published, batch_intervals, skew)
    expected_quarantine: dict[str, int] = {}
    refused = 0
    plan = _duplicates(plan, counts.get("duplicate", 0), rng, faults)
    plan = _out_of_order(plan, counts.get("out_of_order", 0), rng, faults)
    plan = _late(plan, counts.get("late", 0), rng, faults, tz)
    plan = _malformed(park.registry, plan, counts.get("malformed", 0), rng, faults, expected_quarantine)
    plan, refused = _spoof(park.registry, plan, counts.get("spoof", 0), rng, faults, expected_quarantine)
    return FaultedRun(park, published, plan, faults, events, expected_quarantine, refused)


def _pick(items: list[T], rng: np.random.Generator) -> T:
    if not items:
        raise FaultSpecError("not enough meters or gateways left for that many faults")
    return items[int(rng.integers(len(items)))]


def _duplicates(plan: list[Outgoing], count: int, rng: np.random.Generator, faults: list[Fault]) -> list[Outgoing]:
    plan = list(plan)
    for _ in range(count):
        i = int(rng.integers(len(plan)))
        message = plan[i]
        at = min(len(plan), i + 1 + int(rng.integers(0, 50)))
        plan.insert(at, replace(message, note="duplicate"))
        faults.append(Fault("duplicate", message.gateway, detail={"seq": message.seq}))
    return plan


def _out_of_order(plan: list[Outgoing], count: int, rng: np.random.Generator, faults: list[Fault]) -> list[Outgoing]:
    plan = list(plan)
    for _ in range(count):
        i = int(rng.integers(len(plan)))
        later = next((j for j in range(i + 1, len(plan)) if plan[j].gateway == plan[i].gateway), None)
        if later is None:
            continue
        plan[i], plan[later] = plan[later], plan[i]
        faults.append(Fault("out_of_order", plan[i].gateway, detail={"seqs": [plan[later].seq, plan[i].seq]}))
    return plan


def _late(plan: list[Outgoing], count: int, rng: np.random.Generator, faults: list[Fault], tz: str) -> list[Outgoing]:
    for _ in range(count):
        gateway = plan[int(rng.integers(len(plan)))].gateway
        own = [m for m in plan if m.gateway == gateway and not m.note]
        hours = int(rng.integers(6, 13))
        first = own[int(rng.integers(len(own) // 5, max(len(own) // 5 + 1, len(own) // 2)))]
        outage_end = first.due + pd.Timedelta(hours=hours)
        held = [m for m in own if first.due <= m.due < outage_end]
        rest = [m for m in plan if m not in held]
        at = next((i for i, m in enumerate(rest) if m.due >= outage_end), len(rest))
        plan = rest[:at] + [replace(m, note="late") for m in held] + rest[at:]
        faults.append(
            Fault(
                "late",
                gateway,
                start=_iso(first.due, tz),
                end=_iso(outage_end, tz),
                detail={"messages": len(held), "readings": sum(m.readings for m in held)},
            )
        )
    return plan


# (payload maker, reason the collector must give); a maker gets a good reading to spoil.
_BAD: list[tuple[str, str]] = [
    ("truncated", "malformed_json"),
    ("not_utf8", "not_utf8"),
    ("nan_literal", "malformed_json"),
    ("seq_text", "schema"),
    ("negative", "negative"),
    ("unknown_meter", "unknown_meter"),
    ("unit_kw", "wrong_unit"),
    ("no_timezone", "no_timezone"),
]


def _bad_payload(kind: str, gateway: str, reading: dict[str, object]) -> bytes:
    def body(*readings: dict[str, object], seq: object = 0) -> bytes:
        return json.dumps({"gateway": gateway, "seq": seq, "readings": list(readings)}).encode()

    if kind == "truncated":
        return body(reading)[:-7]
    if kind == "not_utf8":
        return b"\xff\xfe" + body(reading)
    if kind == "nan_literal":
        return body({**reading, "value": "__nan__"}).replace(b'"__nan__"', b"NaN")
    if kind == "seq_text":
        return body(reading, seq="seven")
    if kind == "negative":
        return body({**reading, "value": -1.0})
    if kind == "unknown_meter":
        return body({**reading, "meter": "NOT-IN-REGISTRY"})
    if kind == "unit_kw":
        return body({**reading, "unit": "kW"})
    if kind == "no_timezone":
        return body({**reading, "ts": str(reading["ts"])[:19]})
    raise ValueError(kind)


def _is_native(topic: str) -> bool:
    matched = classify(topic)
    return matched is not None and matched.format is GatewayFormat.NATIVE


def _native_index(plan: list[Outgoing], rng: np.random.Generator) -> int:
    """A random message in the native format: malformed and spoofed ones are made from those."""
    native = [i for i, m in enumerate(plan) if _is_native(m.topic) and not m.note]
    return native[int(rng.integers(len(native)))]


def _first_reading(message: Outgoing) -> dict[str, object]:
    reading: dict[str, object] = json.loads(message.payload)["readings"][0]
    return reading


def _malformed(
    registry: Registry,
    plan: list[Outgoing],
    count: int,
    rng: np.random.Generator,
    faults: list[Fault],
    expected: dict[str, int],
) -> list[Outgoing]:
    plan = list(plan)
    for n in range(count):
        kind, reason = _BAD[n % len(_BAD)]
        i = _native_index(plan, rng)
        template = plan[i]
        payload = _bad_payload(kind, template.gateway, _first_reading(template))
        plan.insert(i + 1, template.with_payload(payload, 0, f"malformed:{kind}"))
        expected[reason] = expected.get(reason, 0) + 1
        faults.append(Fault("malformed", template.gateway, detail={"payload": kind, "expected_reason": reason}))
    return plan


def _spoof(
    registry: Registry,
    plan: list[Outgoing],
    count: int,
    rng: np.random.Generator,
    faults: list[Fault],
    expected: dict[str, int],
) -> tuple[list[Outgoing], int]:
    plan = list(plan)
    refused = 0
    for n in range(count):
        i = _native_index(plan, rng)
        template = plan[i]
        own = registry.gateway_by_id[template.gateway]
        victim = next(g for g in registry.gateways if g.enterprise != own.enterprise)
        reading = _first_reading(template)
        if n % 2 == 0:  # another enterprise's meter, under its own topic: the collector quarantines it
            meter = registry.meters_of_gateway(victim.id)[0]
            payload = json.dumps(
                {
                    "gateway": own.id,
                    "seq": 0,
                    "readings": [
                        {**reading, "meter": meter.id, "unit": meter.unit, "register": meter.registers[0].value}
                    ],
                }
            ).encode()
            plan.insert(i + 1, template.with_payload(payload, 0, "spoof:meter"))
            expected["spoofed"] = expected.get("spoofed", 0) + 1
            faults.append(
                Fault("spoof", own.id, meter.id, detail={"as": "foreign meter", "expected_reason": "spoofed"})
            )
        else:  # under another gateway's topic: the broker's ACL refuses it
            spoofed = replace(
                template, topic=readings_topic(victim.enterprise, victim.id), readings=0, note="spoof:topic"
            )
            plan.insert(i + 1, spoofed)
            refused += 1
            faults.append(Fault("spoof", own.id, detail={"as": f"topic of {victim.id}", "expected": "refused"}))
    return plan, refused
