"""One received MQTT message → the line protocol the receive loop spools, and what was rejected.

The per-message job of the collector's receive loop, with no I/O: a status topic goes to
``collectors.status``, anything else to ``collectors.decode``; every rejection becomes a quarantine
point, and so does a point that line protocol cannot carry.

Whatever a payload makes the decoding, checking or encoding do, the message ends as lines to spool:
an exception is isolated to its message and becomes a ``decoder_error`` row (the exception's type
and message as the detail), so it is acknowledged like any bad input and a redelivery cannot stop
the receiver again. Quarantine rows are bounded per message and per gateway (``collectors.budget``)
and tagged with the registry's enterprise and gateway of the topic's gateway only: a topic or
payload naming another enterprise, or an unknown gateway, gets no enterprise and gateway tags (the
topic stays a field).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt

from collectors.budget import UNKNOWN_GATEWAY, QuarantineBudget, bound_rows
from collectors.decode import parse_message
from collectors.fastnative import FastNative
from collectors.model import Reason, Rejection
from collectors.points import UniqueClock, payload_text, quarantine_point, reading_point, safe_text
from collectors.status import parse_status
from park.lineprotocol import LineProtocolError, Point, encode
from park.measurements import QUARANTINE
from park.registry import Registry
from park.topics import classify

log = logging.getLogger("parkcarbon.collector")


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
        try:
            topic = message.topic
        except UnicodeDecodeError:  # paho raises on a topic that is not UTF-8; it is quarantined as a bad topic
            topic = bytes(message._topic).decode("utf-8", errors="backslashreplace")
        return cls(message.mid, message.qos, topic, bytes(message.payload), received_ns)


@dataclass(frozen=True, slots=True)
class Handled:
    lines: list[str]  # line protocol, one point a line
    readings: int  # readings the message held that passed the checks
    rejections: list[Rejection]  # each has its quarantine line in ``lines``
    dropped: int = 0  # quarantine rows over the gateway's budget: counted, not written


def handle(
    message: Received,
    registry: Registry,
    clock: UniqueClock,
    now: datetime,
    max_age: timedelta,
    budget: QuarantineBudget | None = None,
) -> Handled:
    """Points of one message as line protocol; ``now`` is the time the readings are checked against,
    ``clock`` stamps quarantine points, ``budget`` (if given) bounds the gateway's quarantine rows."""
    try:
        lines, readings, rejections = _points(message, registry, now, max_age)
    except Exception as exc:  # isolation: nothing a payload does may stop the receiver
        log.warning("collector: a %s on topic %r was isolated to its message", type(exc).__name__, message.topic)
        log.debug("collector: the isolated exception", exc_info=True)
        enterprise, gateway = _registry_tags(message.topic, registry)
        error = Rejection(Reason.DECODER_ERROR, f"{type(exc).__name__}: {exc}", enterprise, gateway)
        lines, readings, rejections = [], 0, [error]
    if not rejections:
        return Handled(lines, readings, rejections)
    enterprise, gateway = _registry_tags(message.topic, registry)
    rows = bound_rows(rejections, enterprise=enterprise, gateway=gateway)
    dropped = 0
    if budget is not None:
        granted = budget.take(gateway or UNKNOWN_GATEWAY, len(rows))
        rows, dropped = rows[:granted], len(rows) - granted
    text = payload_text(message.payload) if rows else ("", False)
    for rejection in rows:
        # The registry's tags, on the rows about the topic's own gateway only (a bad topic, or a point
        # line protocol refused, names none).
        tags = (enterprise, gateway) if gateway and rejection.gateway == gateway else ("", "")
        lines.append(_quarantine_line(rejection, message, clock, *tags, text))
    return Handled(lines, readings, rows, dropped)


def handle_batch(
    messages: Sequence[Received],
    registry: Registry,
    clock: UniqueClock,
    now: datetime,
    max_age: timedelta,
    budget: QuarantineBudget | None = None,
    fast: FastNative | None = None,
) -> list[Handled]:
    """:func:`handle` of each message, in order, with the same result: a native readings message that
    is stored whole takes the fast path (``collectors.fastnative``, what the batch shares paid once),
    every other message :func:`handle` itself. ``fast`` is kept across batches (its registry caches)."""
    fast = fast if fast is not None else FastNative(registry)
    batch = fast.batch(now, max_age)
    handled: list[Handled] = []
    for message in messages:
        try:
            lines = fast.lines(message.topic, message.payload, batch)
        except Exception:  # whatever the fast path trips on, the reference path has the answer
            log.debug("collector: the fast path failed on a message on %r", message.topic, exc_info=True)
            lines = None
        if lines is None:
            handled.append(handle(message, registry, clock, now, max_age, budget))
        else:
            handled.append(Handled(lines, len(lines), []))
    return handled


def _points(
    message: Received, registry: Registry, now: datetime, max_age: timedelta
) -> tuple[list[str], int, list[Rejection]]:
    matched = classify(message.topic)
    readings = 0
    points: list[Point]
    if matched is not None and matched.kind == "status":
        received_at = datetime.fromtimestamp(message.received_ns / 1e9, UTC)
        status = parse_status(message.topic, message.payload, registry, received_at, max_age)
        rejections = [status] if isinstance(status, Rejection) else []
        points = [status] if isinstance(status, Point) else []
    else:
        parsed = parse_message(message.topic, message.payload, registry, now, max_age)
        readings, rejections = len(parsed.readings), parsed.rejections
        points = [reading_point(r) for r in parsed.readings]
    lines: list[str] = []
    for point in points:
        try:
            lines.append(encode(point))
        except LineProtocolError as exc:
            rejections.append(Rejection(Reason.SCHEMA, f"cannot be stored: {exc}"))
    return lines, readings, rejections


def _registry_tags(topic: str, registry: Registry) -> tuple[str, str]:
    """(enterprise, gateway) of the topic's gateway as the registry has them, or ("", "")."""
    matched = classify(topic)
    gateway = registry.gateway_by_id.get(matched.gateway) if matched is not None else None
    return (gateway.enterprise, gateway.id) if gateway is not None else ("", "")


def _quarantine_line(
    rejection: Rejection,
    message: Received,
    clock: UniqueClock,
    enterprise: str,
    gateway: str,
    text: tuple[str, bool],
) -> str:
    """The rejection's quarantine line; should even that fail, a line that names the failure."""
    time_ns = clock.now_ns()
    try:
        point = quarantine_point(
            rejection, message.topic, message.payload, time_ns, enterprise=enterprise, gateway=gateway, text=text
        )
        line = encode(point)
        if not line.isascii():
            line.encode("utf-8")  # the spool writes UTF-8: what it cannot write must fail here, in isolation
        return line
    except Exception as exc:
        detail = f"{rejection.reason.value}: {rejection.detail}; its quarantine row failed: {type(exc).__name__}: {exc}"
        fallback = Rejection(Reason.DECODER_ERROR, safe_text(detail.encode("ascii", "backslashreplace").decode())[0])
        return encode(
            QUARANTINE.point(
                {"reason": fallback.reason.value},
                {
                    "payload": "",
                    "payload_bytes": len(message.payload),
                    "payload_truncated": True,
                    "detail": fallback.detail,
                },
                time_ns,
            )
        )
