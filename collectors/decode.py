"""One entry point for every topic the collector subscribes to: readings of any format, and
gateway status (native retained status, Tasmota LWT, Shelly ``online``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from collectors.checks import MAX_AGE, check_reading
from collectors.formats import Decoded, decode_dlt645_json, decode_shelly_gen2, decode_tasmota
from collectors.model import Parsed, Reading, Reason, Rejection
from collectors.native import MAX_PAYLOAD_BYTES, parse_native
from park.registry import GatewayFormat, Registry


@dataclass(frozen=True)
class Route:
    """A topic filter, where its gateway id sits in the topic, and how to decode it."""

    format: GatewayFormat
    topic_filter: str
    gateway_level: int
    decode: Callable[[bytes, str], Decoded] | None  # None: the native parser


READING_ROUTES = [
    Route(GatewayFormat.NATIVE, "carbon/v1/+/+/readings", 3, None),
    Route(GatewayFormat.TASMOTA, "tele/+/SENSOR", 1, decode_tasmota),
    Route(GatewayFormat.SHELLY_GEN2, "+/events/rpc", 0, lambda payload, _tz: decode_shelly_gen2(payload)),
    Route(GatewayFormat.DLT645_JSON, "device/power/up/+", 3, decode_dlt645_json),
]
# (filter, gateway level, payload → state); the states are online and offline.
STATUS_ROUTES = [
    ("carbon/v1/+/+/status", 3),
    ("tele/+/LWT", 1),
    ("+/online", 0),
]


def _matches(topic: str, topic_filter: str) -> bool:
    parts, pattern = topic.split("/"), topic_filter.split("/")
    return len(parts) == len(pattern) and all(p == "+" or p == t for p, t in zip(pattern, parts, strict=True))


def route_of(topic: str) -> Route | None:
    return next((r for r in READING_ROUTES if _matches(topic, r.topic_filter)), None)


def status_gateway(topic: str) -> str | None:
    """The gateway whose status ``topic`` carries, or None if it is no status topic."""
    for topic_filter, level in STATUS_ROUTES:
        if _matches(topic, topic_filter):
            return topic.split("/")[level]
    return None


def status_state(payload: bytes) -> str | None:
    """online/offline from ``{"state": ...}``, ``Online``/``Offline`` (Tasmota) or ``true``/``false`` (Shelly)."""
    text = payload.decode("utf-8", errors="replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    if isinstance(body, dict):
        body = body.get("state")
    value = {"online": "online", "offline": "offline", "true": "online", "false": "offline"}.get(
        str(body).strip().lower()
    )
    return value


def parse_message(
    topic: str, payload: bytes, registry: Registry, now: datetime, max_age: timedelta = MAX_AGE
) -> Parsed:
    """Readings and rejections of one message on a readings topic of any format."""
    route = route_of(topic)
    if route is None:
        return Parsed([], [Rejection(Reason.BAD_TOPIC, f"no format is configured for topic {topic!r}")])
    if route.decode is None:
        return parse_native(topic, payload, registry, now, max_age)
    gateway_id = topic.split("/")[route.gateway_level]
    gateway = registry.gateway_by_id.get(gateway_id)
    if gateway is None:
        return Parsed(
            [],
            [Rejection(Reason.UNKNOWN_GATEWAY, f"gateway {gateway_id!r} is not in the registry", gateway=gateway_id)],
        )
    if gateway.format is not route.format:
        return Parsed(
            [],
            [
                Rejection(
                    Reason.WRONG_FORMAT,
                    f"gateway {gateway_id!r} is registered as {gateway.format.value}, not {route.format.value}",
                    gateway.enterprise,
                    gateway_id,
                )
            ],
        )
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Parsed([], [Rejection(Reason.OVERSIZED, f"{len(payload)} bytes", gateway.enterprise, gateway_id)])
    decoded = route.decode(payload, registry.park.timezone)
    if decoded.problem is not None:
        return Parsed([], [Rejection(*decoded.problem, gateway.enterprise, gateway_id)])
    readings: list[Reading] = []
    rejections: list[Rejection] = []
    unknown: set[str] = set()
    for index, item in enumerate(decoded.readings):
        meter = registry.meter_by_device.get((gateway_id, item.device_ref))
        if meter is None and item.device_ref in unknown:
            continue  # one rejection per unknown device, not one per register it reports
        raw = json.dumps(
            {
                "device": item.device_ref,
                "register": item.register,
                "value": item.value,
                "time": item.when.isoformat() if item.when else None,
            },
            default=str,
            ensure_ascii=False,
        )
        if meter is None:
            unknown.add(item.device_ref)
            rejections.append(
                Rejection(
                    Reason.UNKNOWN_METER,
                    f"readings[{index}]: device {item.device_ref!r} of gateway {gateway_id!r} is not in the registry",
                    gateway.enterprise,
                    gateway_id,
                    "",
                    raw,
                )
            )
            continue
        if item.register not in meter.registers:
            continue  # the device reports more registers than the registry uses (e.g. export of a sub-meter)
        result = check_reading(
            meter,
            gateway=gateway_id,
            seq=0,
            register=item.register,
            when=item.when,
            value=item.value,
            unit=item.unit,
            now=now,
            convert_unit=True,
            max_age=max_age,
        )
        if isinstance(result, Reading):
            readings.append(result)
        else:
            rejections.append(
                Rejection(result[0], f"readings[{index}]: {result[1]}", gateway.enterprise, gateway_id, meter.id, raw)
            )
    return Parsed(readings, rejections)
