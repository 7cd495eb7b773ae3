"""The native format on hand-built messages, through the one path every format takes
(``parse_message``): good input passes, every kind of bad input is a typed rejection (the quarantine
reason), and nothing raises."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.decode import parse_message
from collectors.model import Reason
from collectors.native import parse_native
from park.registry import GatewayFormat
from park.topics import layout

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TOPIC = "carbon/v1/E01/gw-e01-1/readings"
GOOD = {
    "meter": "E01-M-GRID",
    "ts": "2026-03-01T19:45:00+08:00",
    "register": "active_energy_import",
    "value": 123456.78,
    "unit": "kWh",
}


def message(*readings: dict, gateway: str = "gw-e01-1", **extra) -> bytes:
    return json.dumps(
        {
            "gateway": gateway,
            "seq": 7,
            "sent_at": "2026-03-01T19:45:05+08:00",
            "readings": list(readings),
            **extra,
        }
    ).encode()


class TestGood:
    def test_reading(self, demo_registry):
        """A good reading carries the registry's enterprise, carrier and the multiplier (80) applied."""
        parsed = parse_message(TOPIC, message(GOOD), demo_registry, NOW)
        assert parsed.rejections == []
        (r,) = parsed.readings
        assert (r.enterprise, r.meter, r.carrier, r.seq) == ("E01", "E01-M-GRID", "grid_electricity", 7)
        assert r.value == pytest.approx(123456.78 * 80)
        assert r.time == datetime(2026, 3, 1, 11, 45, tzinfo=UTC)


MESSAGE_LEVEL = [
    ("carbon/v1/E01/gw-e01-1/other", message(GOOD), Reason.BAD_TOPIC),
    ("meters/gw-e01-1", message(GOOD), Reason.BAD_TOPIC),
    (TOPIC, b"\xff\xfe\x00", Reason.NOT_UTF8),
    (TOPIC, b"{not json", Reason.MALFORMED_JSON),
    (TOPIC, b'{"gateway": "gw-e01-1", "seq": NaN, "readings": []}', Reason.MALFORMED_JSON),
    (TOPIC, b"[]", Reason.SCHEMA),
    (TOPIC, b'"just a string"', Reason.SCHEMA),
    (TOPIC, json.dumps({"gateway": "gw-e01-1", "seq": -1, "readings": []}).encode(), Reason.SCHEMA),
    (TOPIC, json.dumps({"gateway": "gw-e01-1", "seq": "x", "readings": []}).encode(), Reason.SCHEMA),
    (TOPIC, json.dumps({"gateway": "gw-e01-1", "seq": 1}).encode(), Reason.SCHEMA),
    (TOPIC, json.dumps({"gateway": "gw-e01-1", "seq": 1, "readings": {}}).encode(), Reason.SCHEMA),
    (TOPIC, b" " * 1_000_001, Reason.OVERSIZED),
    ("carbon/v1/E01/gw-x/readings", message(GOOD, gateway="gw-x"), Reason.UNKNOWN_GATEWAY),
    ("carbon/v1/E02/gw-e01-1/readings", message(GOOD), Reason.SPOOFED),
    (TOPIC, message(GOOD, gateway="gw-e02-1"), Reason.SPOOFED),
]

READING_LEVEL = [
    ({**GOOD, "meter": "NOPE"}, Reason.UNKNOWN_METER),
    ({**GOOD, "meter": "E02-M-GRID"}, Reason.SPOOFED),
    ({**GOOD, "register": "gas_volume"}, Reason.UNKNOWN_REGISTER),
    ({**GOOD, "unit": "kW"}, Reason.WRONG_UNIT),
    ({**GOOD, "unit": "MWh"}, Reason.WRONG_UNIT),
    ({**GOOD, "value": "12.5kWh"}, Reason.SCHEMA),
    ({**GOOD, "value": None}, Reason.SCHEMA),
    ({**GOOD, "value": True}, Reason.SCHEMA),
    ({**GOOD, "value": "__1e400__"}, Reason.NOT_FINITE),  # a literal that overflows to infinity
    ({**GOOD, "value": 10**400}, Reason.NOT_FINITE),  # a JSON integer beyond any float
    ({**GOOD, "value": -0.5}, Reason.NEGATIVE),
    ({**GOOD, "value": 1_000_000.0}, Reason.ABSURD),
    ({**GOOD, "ts": "2026-03-01T19:45:00"}, Reason.NO_TIMEZONE),
    ({**GOOD, "ts": "yesterday"}, Reason.SCHEMA),
    ({**GOOD, "ts": "2026-03-02T19:45:00+08:00"}, Reason.FUTURE),
    ({**GOOD, "ts": "2020-01-01T00:00:00+08:00"}, Reason.TOO_OLD),
    ({k: v for k, v in GOOD.items() if k != "meter"}, Reason.SCHEMA),
    ("not an object", Reason.SCHEMA),
]


@pytest.mark.parametrize(("topic", "payload", "reason"), MESSAGE_LEVEL)
def test_message_rejections(demo_registry, topic, payload, reason):
    """A message-level fault rejects the whole message with its reason."""
    parsed = parse_message(topic, payload, demo_registry, NOW)
    assert parsed.readings == []
    assert [r.reason for r in parsed.rejections] == [reason]


@pytest.mark.parametrize(("reading", "reason"), READING_LEVEL)
def test_reading_rejections(demo_registry, reading, reason):
    """A bad reading is rejected alone, with its JSON kept; the good one beside it passes."""
    payload = message(GOOD, reading).replace(b'"__1e400__"', b"1e400")
    parsed = parse_message(TOPIC, payload, demo_registry, NOW)
    assert len(parsed.readings) == 1
    assert [r.reason for r in parsed.rejections] == [reason]
    assert parsed.rejections[0].raw


def test_parse_native_is_parse_message_on_native_topics_only(demo_registry):
    """parse_native (the simulator's fault tests use it) gives what the one path gives on a native
    topic; another format's readings topic is a bad topic to it."""
    for payload in (message(GOOD), message(GOOD, {**GOOD, "meter": "NOPE"}), b"{not json"):
        assert parse_native(TOPIC, payload, demo_registry, NOW) == parse_message(TOPIC, payload, demo_registry, NOW)
    other = layout(GatewayFormat.TASMOTA).readings_topic("E04", "tasmota-e04-lab")
    assert [r.reason for r in parse_native(other, b"{}", demo_registry, NOW).rejections] == [Reason.BAD_TOPIC]


def test_corpus_size():
    """The issue asks for at least 30 bad-input kinds."""
    assert len(MESSAGE_LEVEL) + len(READING_LEVEL) >= 30


@settings(max_examples=300, deadline=None)
@given(
    payload=st.binary(max_size=400)
    | st.text(max_size=300).map(str.encode)
    | st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
        max_leaves=20,
    ).map(lambda v: json.dumps(v).encode())
)
def test_fuzz_never_raises(demo_registry, payload):
    """Any payload gives readings or reasoned rejections, never an exception or silence."""
    parsed = parse_message(TOPIC, payload, demo_registry, NOW)
    assert parsed.readings or parsed.rejections or json.loads(payload).get("readings") == []
