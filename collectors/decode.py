"""Readings messages of every gateway format, on one path: topic → format (``park.topics``) →
decoder → registry → the common reading checks.

Message-level faults (bad topic, unknown gateway, wrong format, oversized, undecodable, spoofed)
reject the whole message; reading-level faults reject only that reading, its JSON kept. What differs
between formats is data: :class:`Decoder` says whether a payload speaks the registry's terms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from collectors.budget import MAX_ROWS_PER_MESSAGE
from collectors.checks import MAX_AGE, check_reading
from collectors.formats import MAX_JSON_BYTES, MAX_READINGS, decode_dlt645_json, decode_shelly_gen2, decode_tasmota
from collectors.model import Decoded, DeviceReading, Parsed, Reading, Reason, Rejection
from collectors.native import decode_native
from park.registry import Gateway, GatewayFormat, Meter, Registry
from park.topics import Matched, classify, layout, topic_filter

MAX_PAYLOAD_BYTES = MAX_JSON_BYTES


@dataclass(frozen=True)
class Decoder:
    """How one gateway format is read."""

    decode: Callable[[bytes, str], Decoded]  # (payload, park time zone)
    # The payload speaks the registry's terms (native): meters by registry id, only the registers the
    # registry lists, in the meter's own unit. A vendor device speaks its own: device refs on its
    # gateway, every register it has (the registry picks), and the vendor's fixed unit, converted.
    registry_terms: bool = False


DECODERS: dict[GatewayFormat, Decoder] = {
    GatewayFormat.NATIVE: Decoder(lambda payload, _tz: decode_native(payload), registry_terms=True),
    GatewayFormat.TASMOTA: Decoder(decode_tasmota),
    GatewayFormat.SHELLY_GEN2: Decoder(lambda payload, _tz: decode_shelly_gen2(payload)),
    GatewayFormat.DLT645_JSON: Decoder(decode_dlt645_json),
}


class ReadingRoute(NamedTuple):
    format: GatewayFormat
    topic_filter: str


# tests/integration/test_simulator_truth.py subscribes to ``r.topic_filter for r in READING_ROUTES``;
# once it reads park.topics.subscriptions() instead (as bench/ingest.py does), this can go.
READING_ROUTES = [ReadingRoute(fmt, topic_filter(layout(fmt).readings)) for fmt in DECODERS]


def parse_message(
    topic: str, payload: bytes, registry: Registry, now: datetime, max_age: timedelta = MAX_AGE
) -> Parsed:
    """Readings and rejections of one message on a readings topic of any format; ``now`` is the
    receive time."""
    matched = classify(topic)
    if matched is None or matched.kind != "readings":
        return _reject(Reason.BAD_TOPIC, f"no format is configured for topic {topic!r}")
    decoder = DECODERS[matched.format]
    gateway = registry.gateway_by_id.get(matched.gateway)
    # A topic that names the enterprise (native) tags the quarantine with it: that is the claim under test.
    if matched.enterprise is not None:
        enterprise = matched.enterprise
    else:
        enterprise = gateway.enterprise if gateway is not None else ""
    # A vendor payload is read in its gateway's registered format, so that comes first. A native
    # payload names its gateway itself: it is read first and its claim checked against the registry
    # after, whatever format that gateway is registered with.
    if not decoder.registry_terms:
        if gateway is None:
            return _unknown_gateway(matched.gateway, enterprise)
        if gateway.format is not matched.format:
            detail = f"gateway {gateway.id!r} is registered as {gateway.format.value}, not {matched.format.value}"
            return _reject(Reason.WRONG_FORMAT, detail, enterprise, gateway.id)
    if len(payload) > MAX_PAYLOAD_BYTES:
        return _reject(Reason.OVERSIZED, f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}", enterprise, matched.gateway)
    decoded = decoder.decode(payload, registry.park.timezone)
    if decoded.problem is None and len(decoded.readings) > MAX_READINGS:
        decoded.problem = (Reason.OVERSIZED, f"{len(decoded.readings)} readings > {MAX_READINGS}")
    if decoded.problem is not None:
        return _reject(*decoded.problem, enterprise, matched.gateway)
    if gateway is None:
        return _unknown_gateway(matched.gateway, enterprise)
    spoofed = _spoofed(matched, decoded, gateway)
    if spoofed is not None:
        return _reject(Reason.SPOOFED, spoofed, enterprise, gateway.id)

    readings: list[Reading] = []
    rejections: list[Rejection] = []
    unknown_devices: set[str] = set()
    for index, item in enumerate(decoded.readings):
        found = _meter_of(item, decoder, gateway, registry, unknown_devices)
        if found is None:
            continue
        if isinstance(found, tuple):
            reason, detail, meter_id = found
        else:
            result = check_reading(
                found,
                gateway=gateway.id,
                seq=decoded.seq,
                register=item.register,
                when=item.when,
                value=item.value,
                unit=item.unit,
                now=now,
                convert_unit=not decoder.registry_terms,
                max_age=max_age,
            )
            if isinstance(result, Reading):
                readings.append(result)
                continue
            reason, detail = result
            meter_id = found.id
        # Past the rows a message may have (collectors.budget) a rejection is only counted: no JSON for it.
        raw = item.raw() if len(rejections) < MAX_ROWS_PER_MESSAGE else ""
        rejections.append(
            Rejection(reason, f"readings[{index}]: {detail}", gateway.enterprise, gateway.id, meter_id, raw)
        )
    return Parsed(readings, rejections)


def _meter_of(
    item: DeviceReading, decoder: Decoder, gateway: Gateway, registry: Registry, unknown_devices: set[str]
) -> Meter | tuple[Reason, str, str] | None:
    """The registry meter ``item`` is a reading of; else (reason, detail, meter id) to reject it, or
    None to pass over it."""
    if item.problem is not None:
        return item.problem[0], item.problem[1], ""
    if decoder.registry_terms:
        meter = registry.meter_by_id.get(item.device_ref)
        if meter is None:
            return Reason.UNKNOWN_METER, f"meter {item.device_ref!r} is not in the registry", item.device_ref
        if meter.gateway != gateway.id or meter.enterprise != gateway.enterprise:
            detail = f"meter {meter.id!r} belongs to gateway {meter.gateway!r} of enterprise {meter.enterprise!r}"
            return Reason.SPOOFED, detail, item.device_ref
        return meter
    meter = registry.meter_by_device.get((gateway.id, item.device_ref))
    if meter is None:
        if item.device_ref in unknown_devices:
            return None  # one rejection per unknown device, not one per register it reports
        unknown_devices.add(item.device_ref)
        detail = f"device {item.device_ref!r} of gateway {gateway.id!r} is not in the registry"
        return Reason.UNKNOWN_METER, detail, ""
    if item.register not in meter.registers:
        return None  # the device reports more registers than the registry uses (e.g. export of a sub-meter)
    return meter


def _spoofed(matched: Matched, decoded: Decoded, gateway: Gateway) -> str | None:
    """Why the topic or the payload claims another gateway or enterprise than the registry has, or None.

    The broker's ACL binds a gateway to topics under its own id; the enterprise level of a native topic
    and the payload's ``gateway`` are the gateway's own words, so they are checked here.
    """
    if (matched.enterprise is None or matched.enterprise == gateway.enterprise) and (
        decoded.gateway is None or decoded.gateway == gateway.id
    ):
        return None
    topic = f"enterprise {matched.enterprise!r} gateway" if matched.enterprise is not None else "gateway"
    payload = f", payload says gateway {decoded.gateway!r}" if decoded.gateway is not None else ""
    return (
        f"topic says {topic} {matched.gateway!r}{payload}; "
        f"the registry has {gateway.id!r} in enterprise {gateway.enterprise!r}"
    )


def _unknown_gateway(gateway: str, enterprise: str) -> Parsed:
    return _reject(Reason.UNKNOWN_GATEWAY, f"gateway {gateway!r} is not in the registry", enterprise, gateway)


def _reject(reason: Reason, detail: str, enterprise: str = "", gateway: str = "") -> Parsed:
    return Parsed([], [Rejection(reason, detail, enterprise, gateway)])
