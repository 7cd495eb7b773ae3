"""The decoder of the native format (DESIGN.md; its topics are in ``park.topics``), UTF-8 JSON::

    {"gateway": "gw-01", "seq": 1842, "sent_at": "2026-01-31T23:45:05+08:00",
     "readings": [{"meter": "E-101", "ts": "2026-01-31T23:45:00+08:00",
                   "register": "active_energy_import", "value": 123456.78, "unit": "kWh"}]}

A native gateway is configured from the registry: it names meters by their registry id and states
the meter's own unit. :func:`decode_native` checks the message's shape and each reading's; the
registry checks (the gateway is the topic's, the meter is the gateway's, the common reading
checks) are ``collectors.decode.parse_message``'s, as for every format.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from collectors.checks import MAX_AGE
from collectors.formats import MAX_READINGS, Unreadable, load_json
from collectors.model import Decoded, DeviceReading, Parsed, Reason, Rejection
from park.registry import GatewayFormat, Registry
from park.topics import classify

MAX_SEQ = 2**63 - 1  # the seq is stored as an InfluxDB integer field: a signed 64-bit one


class _NativeMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    gateway: str = Field(min_length=1, max_length=64)
    seq: int = Field(ge=0, le=MAX_SEQ)
    sent_at: datetime | None = None
    readings: list[object]


def decode_native(payload: bytes) -> Decoded:
    """Device readings named by meter id, with the message's ``gateway`` and ``seq``; a reading
    that is no object or lacks a field is returned with its problem, to be rejected alone."""
    document = load_json(payload)
    if isinstance(document, Unreadable):
        return Decoded(problem=document)
    try:
        message = _NativeMessage.model_validate(document)
    except ValidationError as exc:
        return Decoded(problem=(Reason.SCHEMA, _first_error(exc)))
    if len(message.readings) > MAX_READINGS:  # before each is read
        return Decoded(problem=(Reason.OVERSIZED, f"{len(message.readings)} readings > {MAX_READINGS}"))
    return Decoded([_reading(item) for item in message.readings], gateway=message.gateway, seq=message.seq)


def _reading(item: object) -> DeviceReading:
    def bad(detail: str) -> DeviceReading:
        return DeviceReading("", "", None, None, "", (Reason.SCHEMA, detail), item)

    # Checked by hand rather than by a pydantic model: this runs for every reading (~5 µs saved each).
    if not isinstance(item, dict):
        return bad(f"a reading must be a JSON object, not {type(item).__name__}")
    for key in ("meter", "ts", "register", "unit"):
        if not isinstance(item.get(key), str) or not item[key] or len(item[key]) > 64:
            return bad(f"{key}: a non-empty text of at most 64 characters is required")
    value = item.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return bad(f"value: {value!r} is not a number")
    try:
        when = datetime.fromisoformat(item["ts"])
    except ValueError:
        return bad(f"ts: {item['ts']!r} is not an ISO 8601 time")
    return DeviceReading(item["meter"], item["register"], when, value, item["unit"], sent=item)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    location = ".".join(str(p) for p in err["loc"]) or "(message)"
    return f"{location}: {err['msg']} ({exc.error_count()} error(s))"


def parse_native(topic: str, payload: bytes, registry: Registry, now: datetime, max_age: timedelta = MAX_AGE) -> Parsed:
    """``parse_message`` for a native readings topic; any other topic is a bad topic.

    Kept for ``tests/simulators/test_faults.py``; new code calls ``collectors.decode.parse_message``.
    """
    from collectors.decode import parse_message  # not at the top: collectors.decode imports this module

    matched = classify(topic)
    if matched is None or matched.format is not GatewayFormat.NATIVE:
        return Parsed([], [Rejection(Reason.BAD_TOPIC, f"topic {topic!r} is not a native readings topic")])
    return parse_message(topic, payload, registry, now, max_age)
