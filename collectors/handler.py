"""One received MQTT message → the line protocol the receive loop spools, and what was rejected.

The per-message job of the collector's receive loop, with no I/O: a status topic goes to
``collectors.status``, anything else to ``collectors.decode``; every rejection becomes a quarantine
point, and so does a point that line protocol cannot carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt

from collectors.decode import parse_message
from collectors.model import Reason, Rejection
from collectors.points import UniqueClock, quarantine_point, reading_point
from collectors.status import parse_status
from park.lineprotocol import LineProtocolError, Point, encode
from park.registry import Registry
from park.topics import classify


@dataclass(frozen=True, slots=True)
class Received:
    """A message as ``on_message`` queues it: paho's message object is not kept past the callback."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ns: int

    @classmethod
    def of(cls, message: mqtt.MQTTMessage, received_ns: int) -> Received:
        return cls(message.mid, message.qos, message.topic, bytes(message.payload), received_ns)


@dataclass(frozen=True, slots=True)
class Handled:
    lines: list[str]  # line protocol, one point a line
    readings: int  # readings the message held that passed the checks
    rejections: list[Rejection]  # each has its quarantine line in ``lines``


def handle(message: Received, registry: Registry, clock: UniqueClock, now: datetime, max_age: timedelta) -> Handled:
    """Points of one message as line protocol; ``now`` is the time the readings are checked against,
    ``clock`` stamps quarantine points."""
    matched = classify(message.topic)
    readings = 0
    points: list[Point]
    if matched is not None and matched.kind == "status":
        received_at = datetime.fromtimestamp(message.received_ns / 1e9, UTC)
        status = parse_status(message.topic, message.payload, registry, received_at)
        rejections = [status] if isinstance(status, Rejection) else []
        points = [status] if isinstance(status, Point) else []
    else:
        parsed = parse_message(message.topic, message.payload, registry, now, max_age)
        readings, rejections = len(parsed.readings), parsed.rejections
        points = [reading_point(r) for r in parsed.readings]
    points += [quarantine_point(r, message.topic, message.payload, clock.now_ns()) for r in rejections]
    lines: list[str] = []
    for point in points:
        try:
            lines.append(encode(point))
        except LineProtocolError as exc:
            rejection = Rejection(Reason.SCHEMA, f"cannot be stored: {exc}")
            lines.append(encode(quarantine_point(rejection, message.topic, message.payload, clock.now_ns())))
            rejections.append(rejection)
    return Handled(lines, readings, rejections)
