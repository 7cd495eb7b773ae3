"""The batch path (:func:`collectors.handler.handle_batch`, native messages through
``collectors.fastnative``) gives exactly what the per-message path (:func:`collectors.handler.handle`)
gives: the same lines in the same order, the same readings, rejections and dropped rows, for
generated batches of every format with hostile variations (``tests/collectors/hostile.py``).

The equality alone would hold if the fast path never took a message, so the tests also pin that it
takes the messages it is for: native messages whose every reading is stored.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from collectors.budget import QuarantineBudget
from collectors.checks import MAX_AGE
from collectors.fastnative import FastNative
from collectors.handler import Received, handle, handle_batch
from collectors.points import UniqueClock
from park.lineprotocol import to_ns
from park.registry import GatewayFormat, load_registry, parse_registry
from park.settings import DEMO_REGISTRY
from park.topics import layout
from tests.collectors.hostile import Generator, HypothesisPick, Slots, stranger

REGISTRY = load_registry(DEMO_REGISTRY)  # not the fixture: a failing example prints its arguments
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECEIVED_NS = to_ns(NOW)
NATIVE = layout(GatewayFormat.NATIVE)


class CountingClock(UniqueClock):
    """Quarantine times 1, 2, 3 …: both paths must stamp the same rows with the same times."""

    def now_ns(self) -> int:
        self._last += 1
        return self._last


def fixed_budget() -> QuarantineBudget:
    """A budget that never refills (a frozen clock), small enough that batches run into it."""
    return QuarantineBudget(rows_per_s=20.0, burst=150, clock=lambda: 0.0)


def both_paths(messages: list[Received]) -> None:
    """Each message alone, and the messages as one batch, each with its own clock and budget."""
    clock, budget = CountingClock(), fixed_budget()
    reference = [handle(m, REGISTRY, clock, NOW, MAX_AGE, budget) for m in messages]
    batched = handle_batch(messages, REGISTRY, CountingClock(), NOW, MAX_AGE, fixed_budget())
    assert batched == reference


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_batch_gives_what_each_message_gives_alone(data):
    """Batches of up to 12 messages, three in four native (the fast path's), every fault the fuzz
    test knows, one in twenty on a stranger's topic."""
    generator = Generator(REGISTRY, NOW, Slots(NOW - timedelta(days=30)))
    pick = HypothesisPick(data.draw)
    messages = []
    for mid in range(pick.integer(1, 12)):
        fmt = GatewayFormat.NATIVE if pick.chance(75) else pick.choice([*GatewayFormat, None])
        case = generator.case(pick, fmt) if fmt is not None else generator.status(pick)
        if pick.chance(5):
            case = stranger(case, pick.choice(["gw-stranger", "E01-M-GRID", "collector-0", "x" * 64]))
        note(f"{case.kind}: {case.topic} {case.payload[:300]!r}")
        messages.append(Received(mid, 1, case.topic, case.payload, RECEIVED_NS))
    both_paths(messages)


def good_native(generator: Generator, pick: HypothesisPick) -> tuple[str, bytes, int]:
    """A native message whose every reading is good, as a gateway configured from the registry sends it."""
    gateway = pick.choice(generator.by_format[GatewayFormat.NATIVE])
    items = []
    for _ in range(pick.integer(1, 60)):
        item, _good = generator.native_good(pick, gateway)
        assert isinstance(item, dict)
        item.pop("note", None)
        items.append(item)
    body: dict[str, object] = {"gateway": gateway.id, "seq": pick.integer(0, 2**63 - 1), "readings": items}
    if pick.chance(50):
        body["sent_at"] = NOW.isoformat()
    topic = NATIVE.readings_topic(gateway.enterprise, gateway.id)
    return topic, json.dumps(body).encode(), len(items)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_path_takes_good_native_messages(data):
    """A good native message is the fast path's, and its lines are the reference path's."""
    generator = Generator(REGISTRY, NOW, Slots(NOW - timedelta(days=30)))
    pick = HypothesisPick(data.draw)
    fast = FastNative(REGISTRY)
    batch = fast.batch(NOW, MAX_AGE)
    for mid in range(pick.integer(1, 5)):
        topic, payload, readings = good_native(generator, pick)
        lines = fast.lines(topic, payload, batch)
        reference = handle(Received(mid, 1, topic, payload, RECEIVED_NS), REGISTRY, CountingClock(), NOW, MAX_AGE)
        assert lines is not None
        assert lines == reference.lines and reference.readings == readings and reference.rejections == []


GOOD = {
    "meter": "E01-M-GRID",
    "ts": "2026-03-01T19:45:00+08:00",
    "register": "active_energy_import",
    "value": 123456.78,
    "unit": "kWh",
}
TOPIC = NATIVE.readings_topic("E01", "gw-e01-1")


def message(*readings: object, **fields: object) -> bytes:
    return json.dumps({"gateway": "gw-e01-1", "seq": 7, "readings": list(readings), **fields}).encode()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(message({**GOOD, "unit": "Wh"}), id="wrong-unit"),
        pytest.param(message({**GOOD, "note": "x"}), id="unknown-reading-key"),
        pytest.param(message(GOOD, extra=[[1]]), id="unknown-message-key"),
        pytest.param(message({**GOOD, "value": 10**400}), id="int-beyond-float"),
        pytest.param(message({**GOOD, "value": 1e13}), id="absurd"),
        pytest.param(message({**GOOD, "ts": "2026-03-01T19:45:00"}), id="no-timezone"),
        pytest.param(message({**GOOD, "ts": "2027-03-01T19:45:00+08:00"}), id="future"),
        pytest.param(message(GOOD, sent_at="yesterday"), id="bad-sent-at"),
        pytest.param(message(GOOD, gateway="gw-e01-2"), id="spoofed-gateway"),
        pytest.param(message({**GOOD, "meter": "E02-M-GRID"}), id="foreign-meter"),
        pytest.param(b'{"gateway": "gw-e01-1", "seq": 7, "readings": []} \xff', id="not-utf8"),
    ],
)
def test_anything_not_stored_whole_is_left_to_the_reference_path(payload):
    """Each fault makes the fast path decline, and the batch gives the reference path's rows."""
    fast = FastNative(REGISTRY)
    assert fast.lines(TOPIC, payload, fast.batch(NOW, MAX_AGE)) is None
    both_paths([Received(1, 1, TOPIC, payload, RECEIVED_NS), Received(2, 1, TOPIC, message(GOOD), RECEIVED_NS)])


def test_a_timestamp_is_judged_against_its_own_batch():
    """A timestamp parsed in one batch is not believed in the next: each batch has its receive time."""
    fast = FastNative(REGISTRY)
    payload = message(GOOD)
    assert fast.lines(TOPIC, payload, fast.batch(NOW, MAX_AGE)) is not None
    two_years_on = NOW + timedelta(days=730)
    assert fast.lines(TOPIC, payload, fast.batch(two_years_on, MAX_AGE)) is None


def test_a_message_the_fast_path_trips_on_is_the_reference_paths(monkeypatch):
    """An exception in the fast path costs only the fast path: the message is handled as alone."""
    fast = FastNative(REGISTRY)

    def broken(*_args: object) -> None:
        raise RuntimeError("a bug in the fast path")

    monkeypatch.setattr(fast, "lines", broken)
    messages = [Received(1, 1, TOPIC, message(GOOD), RECEIVED_NS)]
    reference = [handle(m, REGISTRY, CountingClock(), NOW, MAX_AGE) for m in messages]
    assert handle_batch(messages, REGISTRY, CountingClock(), NOW, MAX_AGE, None, fast) == reference
    assert reference[0].readings == 1


def test_the_multiplier_of_a_replaced_meter_is_the_one_in_force_at_the_reading():
    """A meter with a replacement (a new CT ratio) takes Meter.multiplier_at, per reading, as the reference does."""
    change = datetime(2026, 2, 20, tzinfo=UTC)
    document = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    (meter,) = [m for m in document["meters"] if m["id"] == GOOD["meter"]]
    meter["replacements"] = [
        {"at": change.isoformat(), "old_final_reading": 1.0, "new_initial_reading": 0.0, "new_multiplier": 40.0}
    ]
    registry = parse_registry(document)
    readings = [{**GOOD, "ts": when.isoformat()} for when in (change - timedelta(hours=1), change + timedelta(hours=1))]
    payload = message(*readings)
    fast = FastNative(registry)
    lines = fast.lines(TOPIC, payload, fast.batch(NOW, MAX_AGE))
    reference = handle(Received(1, 1, TOPIC, payload, RECEIVED_NS), registry, CountingClock(), NOW, MAX_AGE)
    assert lines is not None and lines == reference.lines
    assert [line.split(" ")[1].split(",")[0] for line in lines] == ["value=9876542.4", "value=4938271.2"]


def test_a_batch_keeps_a_bounded_number_of_timestamps(monkeypatch):
    """Past MAX_CACHED_TIMES distinct timestamp texts a batch parses the rest per reading, with the same lines."""
    monkeypatch.setattr("collectors.fastnative.MAX_CACHED_TIMES", 3)
    readings = [{**GOOD, "ts": f"2026-03-01T1{hour}:45:00+08:00"} for hour in range(6)]
    payload = message(*readings)
    fast = FastNative(REGISTRY)
    batch = fast.batch(NOW, MAX_AGE)
    lines = fast.lines(TOPIC, payload, batch)
    assert len(batch.times) == 3
    assert lines == handle(Received(1, 1, TOPIC, payload, RECEIVED_NS), REGISTRY, CountingClock(), NOW, MAX_AGE).lines
    assert lines is not None and len(lines) == 6
