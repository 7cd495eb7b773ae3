"""The pure status parser: topic, payload, registry and receive time → a gateway status point or a rejection."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collectors.model import Reason, Rejection
from collectors.status import parse_status
from park.lineprotocol import Point, to_ns
from park.measurements import GATEWAY_STATUS
from park.registry import GatewayFormat
from park.topics import layout

RECEIVED = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
NATIVE = layout(GatewayFormat.NATIVE)


def point(enterprise: str, gateway: str, state: str, at: datetime) -> Point:
    tags = {"enterprise": enterprise, "gateway": gateway}
    return Point(GATEWAY_STATUS.name, tags, {"online": 1.0 if state == "online" else 0.0, "state": state}, to_ns(at))


@pytest.mark.parametrize(
    ("fmt", "enterprise", "gateway", "payload", "state"),
    [
        (GatewayFormat.NATIVE, "E01", "gw-e01-1", b'{"state": "online"}', "online"),
        (GatewayFormat.NATIVE, "E01", "gw-e01-1", b'{"state": "offline"}', "offline"),
        (GatewayFormat.TASMOTA, "E04", "tasmota-e04-lab", b"Online", "online"),
        (GatewayFormat.TASMOTA, "E04", "tasmota-e04-lab", b"Offline", "offline"),
        (GatewayFormat.SHELLY_GEN2, "E09", "shellypro3em-e09", b"true", "online"),
        (GatewayFormat.SHELLY_GEN2, "E09", "shellypro3em-e09", b"false", "offline"),
    ],
)
def test_every_formats_status_at_receive_time(demo_registry, fmt, enterprise, gateway, payload, state):
    """Each format's own status payload; without a stated time the point is at receive time."""
    topic = layout(fmt).status_topic(enterprise, gateway)
    assert parse_status(topic, payload, demo_registry, RECEIVED) == point(enterprise, gateway, state, RECEIVED)


def test_stated_time_wins(demo_registry):
    """A status with its own ``at`` is stored at that time, so every replica writes the same point."""
    payload = b'{"state": "online", "at": "2026-03-01T19:00:00+08:00"}'
    result = parse_status(NATIVE.status_topic("E01", "gw-e01-1"), payload, demo_registry, RECEIVED)
    assert result == point("E01", "gw-e01-1", "online", datetime(2026, 3, 1, 11, 0, tzinfo=UTC))


@pytest.mark.parametrize("at", ['"2026-03-01T19:00:00"', '"yesterday"', "5"])
def test_unusable_stated_time_falls_back_to_receive_time(demo_registry, at):
    """An ``at`` without UTC offset, unreadable or not a text is ignored, not trusted and not fatal."""
    payload = f'{{"state": "online", "at": {at}}}'.encode()
    result = parse_status(NATIVE.status_topic("E01", "gw-e01-1"), payload, demo_registry, RECEIVED)
    assert result == point("E01", "gw-e01-1", "online", RECEIVED)


def test_edge_gateway_announces_itself_on_the_native_status_topic(demo_registry):
    """The DL/T 645 edge gateway has no status message of its own (park.topics): its native status counts."""
    topic = layout(GatewayFormat.DLT645_JSON).status_topic("E10", "edge-e10")
    assert parse_status(topic, b'{"state": "online"}', demo_registry, RECEIVED) == point(
        "E10", "edge-e10", "online", RECEIVED
    )


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        (
            NATIVE.status_topic("E01", "gw-nobody"),
            b'{"state": "online"}',
            Rejection(Reason.UNKNOWN_GATEWAY, "status of unknown gateway 'gw-nobody'", "", "gw-nobody"),
        ),
        (
            NATIVE.status_topic("E02", "gw-e01-1"),
            b'{"state": "online"}',
            Rejection(Reason.SPOOFED, "status of 'gw-e01-1' under enterprise 'E02'", "E02", "gw-e01-1"),
        ),
        (
            layout(GatewayFormat.TASMOTA).status_topic("", "tasmota-e04-lab"),
            b"",  # what a subscriber gets when a retained status is deleted
            Rejection(Reason.SCHEMA, "status is neither online nor offline", "E04", "tasmota-e04-lab"),
        ),
        (
            NATIVE.readings_topic("E01", "gw-e01-1"),
            b'{"state": "online"}',
            Rejection(Reason.BAD_TOPIC, "topic 'carbon/v1/E01/gw-e01-1/readings' is no status topic"),
        ),
    ],
    ids=["unknown-gateway", "other-enterprise", "no-state", "not-a-status-topic"],
)
def test_rejections(demo_registry, topic, payload, expected):
    """What cannot be a gateway's status is a rejection with its reason and what was known."""
    assert parse_status(topic, payload, demo_registry, RECEIVED) == expected
