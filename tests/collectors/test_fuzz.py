"""Fuzz: thousands of generated messages of every gateway format and the status topic, valid readings
mixed with hostile variations (``tests/collectors/hostile.py``), through the receive loop's
per-message job (:func:`collectors.handler.handle`), in process.

One message in twenty goes out on the topic of a gateway the registry does not know.

For every message: nothing raises, and no message needs the isolation net (a ``decoder_error``
would mean a decoder or check met input it did not foresee); every line can be spooled (UTF-8, one
line); the good readings are exactly the reading lines, with their exact values; a message with a
fault gets quarantine rows, each with a reason and a detail; a status gives one line.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from collectors.budget import MAX_ROWS_PER_MESSAGE
from collectors.checks import MAX_AGE, MAX_FUTURE
from collectors.handler import Handled, Received, handle
from collectors.model import Reason
from collectors.points import UniqueClock
from park.lineprotocol import to_ns
from park.registry import GatewayFormat, load_registry
from park.settings import DEMO_REGISTRY
from tests.collectors.hostile import Case, Generator, HypothesisPick, Slots, stranger

REGISTRY = load_registry(DEMO_REGISTRY)  # not the fixture: a failing example prints its arguments
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECEIVED_NS = to_ns(NOW)
EXAMPLES = 600  # per format and for the status topic: 3,000 messages, about 20 s on 2 cores


def reading_lines(handled: Handled) -> set[tuple[str, str, int, float]]:
    """(meter, register, time, raw_value) of each meter_register line."""
    found = set()
    for line in handled.lines:
        if not line.startswith("meter_register,"):
            continue
        series, fields, at = line.split(" ")
        tags = dict(part.split("=", 1) for part in series.split(",")[1:])
        values = dict(part.split("=", 1) for part in fields.split(","))
        found.add((tags["meter"], tags["register"], int(at), float(values["raw_value"])))
    return found


def check(case: Case, handled: Handled) -> None:
    """What every message must come to (see the module docstring)."""
    reasons = [r.reason for r in handled.rejections]
    assert Reason.DECODER_ERROR not in reasons, [r.detail for r in handled.rejections]
    for line in handled.lines:
        line.encode("utf-8")
        assert "\n" not in line and "\r" not in line
        assert line.startswith(("meter_register,", "quarantine,", "gateway_status,")), line[:80]
    quarantine = [line for line in handled.lines if line.startswith("quarantine,")]
    assert len(quarantine) == len(handled.rejections) <= MAX_ROWS_PER_MESSAGE + 1
    assert all(r.reason and r.detail for r in handled.rejections)
    if case.status:
        (line,) = handled.lines
        if line.startswith("gateway_status,"):
            at = int(line.rsplit(" ", 1)[1])
            assert to_ns(NOW - MAX_AGE) <= at <= to_ns(NOW + MAX_FUTURE)  # a stated time only within bounds
        return
    expected = {(g.meter, g.register, to_ns(g.time), g.raw) for g in case.good}
    assert reading_lines(handled) == expected
    assert handled.readings == len(case.good)
    if case.ignored:
        assert handled.lines == []
    else:
        assert bool(handled.rejections) == (case.bad > 0), (case.bad, reasons)


@pytest.mark.parametrize("fmt", [*GatewayFormat, None], ids=[*(f.value for f in GatewayFormat), "status"])
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_no_message_escapes_and_each_gets_readings_or_quarantine(fmt, data):
    generator = Generator(REGISTRY, NOW, Slots(NOW - timedelta(days=30)))
    pick = HypothesisPick(data.draw)
    case = generator.case(pick, fmt) if fmt is not None else generator.status(pick)
    if pick.chance(5):
        case = stranger(case, pick.choice(["gw-stranger", "E01-M-GRID", "collector-0", "x" * 64]))
    note(f"{case.kind}: {case.topic} {case.payload[:300]!r}")
    handled = handle(Received(1, 1, case.topic, case.payload, RECEIVED_NS), REGISTRY, UniqueClock(), NOW, MAX_AGE)
    check(case, handled)
