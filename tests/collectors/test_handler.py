"""The receive loop's per-message job on real paho messages built by hand: no broker, no InfluxDB.

What ``on_message`` queues (:meth:`Received.of`) goes through :func:`handle`, and the line protocol
that would be spooled is checked line for line.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt

from collectors.handler import Received, handle
from collectors.model import Reason
from park.registry import GatewayFormat, parse_registry
from park.topics import layout

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECEIVED_NS = 1_772_366_400_000_000_000  # NOW, in whole seconds so it survives the float round trip
MAX_AGE = timedelta(days=400)
NATIVE = layout(GatewayFormat.NATIVE)
READINGS = NATIVE.readings_topic("E01", "gw-e01-1")
GOOD = {
    "meter": "E01-M-GRID",
    "ts": "2026-03-01T19:45:00+08:00",
    "register": "active_energy_import",
    "value": 123456.78,
    "unit": "kWh",
}


class FixedClock:
    """Quarantine times 1, 2, 3 … so the lines can be compared exactly."""

    def __init__(self) -> None:
        self.last = 0

    def now_ns(self) -> int:
        self.last += 1
        return self.last


def mqtt_message(topic: str, payload: bytes, mid: int = 42) -> mqtt.MQTTMessage:
    message = mqtt.MQTTMessage(mid=mid, topic=topic.encode())
    message.payload = payload
    message.qos = 1
    return message


def handled(registry, topic: str, payload: bytes):
    received = Received.of(mqtt_message(topic, payload), RECEIVED_NS)
    return handle(received, registry, FixedClock(), NOW, MAX_AGE)


def native(*readings: object, gateway: str = "gw-e01-1") -> bytes:
    return json.dumps({"gateway": gateway, "seq": 7, "readings": list(readings)}).encode()


def test_received_keeps_what_the_ack_needs():
    """The queued message has paho's mid and QoS (for the PUBACK), the topic as text and the payload as bytes."""
    message = mqtt_message(READINGS, bytearray(b"{}"), mid=9)
    assert Received.of(message, RECEIVED_NS) == Received(9, 1, READINGS, b"{}", RECEIVED_NS)


def test_good_native_message_gives_the_meter_register_line(demo_registry):
    """Registry tags (no workshop: the main meter has none), the multiplier 80 applied, the meter's time."""
    result = handled(demo_registry, READINGS, native(GOOD))
    assert result.lines == [
        "meter_register,carrier=grid_electricity,enterprise=E01,meter=E01-M-GRID,register=active_energy_import"
        " value=9876542.4,raw_value=123456.78,gateway_seq=7i 1772365500000000000"
    ]
    assert (result.readings, result.rejections) == (1, [])


def test_malformed_message_is_quarantined_with_its_reason(demo_registry):
    result = handled(demo_registry, READINGS, b"{not json")
    assert [r.reason for r in result.rejections] == [Reason.MALFORMED_JSON]
    assert result.readings == 0
    (line,) = result.lines
    assert line.startswith("quarantine,enterprise=E01,gateway=gw-e01-1,reason=malformed_json ")
    assert 'payload="{not json",payload_bytes=9i,payload_truncated=false,detail="Expecting property name' in line
    assert line.endswith(f'topic="{READINGS}",meter="" 1')  # the quarantine clock's first time


def test_bad_reading_beside_a_good_one(demo_registry):
    """A reading-level fault quarantines that reading alone (its JSON as the payload); the good one is stored."""
    result = handled(demo_registry, READINGS, native(GOOD, {**GOOD, "meter": "NOPE"}))
    assert result.readings == 1 and [r.reason for r in result.rejections] == [Reason.UNKNOWN_METER]
    stored, quarantined = result.lines
    assert stored.startswith("meter_register,")
    assert quarantined.startswith("quarantine,enterprise=E01,gateway=gw-e01-1,reason=unknown_meter ")
    assert "detail=\"readings[1]: meter 'NOPE' is not in the registry\"" in quarantined
    assert 'payload="{\\"meter\\": \\"NOPE\\"' in quarantined


def test_status_message_gives_a_gateway_status_point(demo_registry):
    """A native retained status with its own time: the point is at that time, not at receive time."""
    topic = NATIVE.status_topic("E01", "gw-e01-1")
    result = handled(demo_registry, topic, b'{"state": "offline", "at": "2026-03-01T19:00:00+08:00"}')
    assert result.lines == [
        'gateway_status,enterprise=E01,gateway=gw-e01-1 online=0.0,state="offline" 1772362800000000000'
    ]
    assert (result.readings, result.rejections) == (0, [])


def test_vendor_last_will_is_stamped_at_receive_time(demo_registry):
    topic = layout(GatewayFormat.TASMOTA).status_topic("E04", "tasmota-e04-lab")
    result = handled(demo_registry, topic, b"Online")
    assert result.lines == [
        f'gateway_status,enterprise=E04,gateway=tasmota-e04-lab online=1.0,state="online" {RECEIVED_NS}'
    ]


def test_bad_status_is_quarantined(demo_registry):
    result = handled(demo_registry, NATIVE.status_topic("E01", "gw-e01-1"), b"maybe")
    assert [r.reason for r in result.rejections] == [Reason.SCHEMA]
    (line,) = result.lines
    assert line.startswith("quarantine,enterprise=E01,gateway=gw-e01-1,reason=schema ")


def test_unknown_topic_is_quarantined(demo_registry):
    result = handled(demo_registry, "meters/gw-e01-1/data", native(GOOD))
    assert [r.reason for r in result.rejections] == [Reason.BAD_TOPIC]
    assert result.readings == 0
    (line,) = result.lines
    assert line.startswith("quarantine,reason=bad_topic ")  # no enterprise or gateway is known
    assert 'topic="meters/gw-e01-1/data"' in line


def test_point_line_protocol_cannot_carry_is_quarantined():
    """A register that overflows to infinity once multiplied cannot be stored: quarantined, not dropped.

    The meter states a register bound (``max_value``) that lets 1e306 pass the checks: without it the
    default bound (1e12) refuses the reading before line protocol sees it.
    """
    registry = parse_registry(
        {
            "version": "t",
            "park": {
                "id": "p",
                "name": "p",
                "metering_start": "2025-01-01",
                "latitude_deg": 31.8,
                "longitude_deg": 117.1,
            },
            "enterprises": [{"id": "X", "name": "x", "industry": "C39"}],
            "gateways": [{"id": "gw-x", "enterprise": "X"}],
            "meters": [
                {
                    "id": "M-X",
                    "gateway": "gw-x",
                    "enterprise": "X",
                    "carrier": "grid_electricity",
                    "role": "main",
                    "unit": "kWh",
                    "multiplier": 1000.0,
                    "max_value": 1e307,
                }
            ],
        }
    )
    reading = {**GOOD, "meter": "M-X", "value": 1e306}
    result = handled(registry, NATIVE.readings_topic("X", "gw-x"), native(reading, gateway="gw-x"))
    assert result.readings == 1  # it passed the checks …
    assert [r.reason for r in result.rejections] == [Reason.SCHEMA]  # … but line protocol refused it
    (line,) = result.lines
    assert line.startswith("quarantine,reason=schema ") and "cannot be stored" in line
