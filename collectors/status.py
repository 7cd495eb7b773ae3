"""Gateway status messages (a retained status, or the last will the broker publishes for a gateway
that dropped off) → a :data:`GATEWAY_STATUS` point, or the rejection that quarantines the message.

Pure: no I/O. Every format's status topic is in ``park.topics``; the payloads are the native
``{"state": "online"}`` (with an optional ``"at"``), Tasmota's ``Online``/``Offline`` and Shelly's
``true``/``false``. A status is at most :data:`MAX_STATUS_BYTES` and is parsed under the JSON limits
of ``collectors.formats``. A stated ``at`` is believed within the bounds a reading's time has (at
most the allowed clock skew ahead of receive time, not older than the age limit); outside them the
status is stored at receive time, so its state is kept and the gateway's clock is not.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from collectors.checks import MAX_AGE, MAX_FUTURE
from collectors.formats import Unreadable, load_json
from collectors.model import Reason, Rejection
from park.lineprotocol import Point, to_ns
from park.measurements import GATEWAY_STATUS
from park.registry import Registry
from park.topics import classify

MAX_STATUS_BYTES = 16_384  # a status is a word or a small object; the bound keeps str() and the parser cheap
_STATES = {"online": "online", "offline": "offline", "true": "online", "false": "offline"}


def _document(payload: bytes) -> object:
    """The status payload as JSON if it is JSON within the limits, as stripped text if it is no JSON,
    or :class:`Unreadable` if it is JSON nested too deep."""
    body = load_json(payload, max_bytes=MAX_STATUS_BYTES)
    if isinstance(body, Unreadable):
        return body if body.reason is Reason.SCHEMA else payload.decode("utf-8", errors="replace").strip()
    return body


def _state(body: object) -> str | None:
    if isinstance(body, Unreadable):
        return None
    if isinstance(body, dict):
        body = body.get("state")
    if not isinstance(body, str | bool):
        return None
    return _STATES.get(str(body).strip().lower())


def status_state(payload: bytes) -> str | None:
    """online/offline from ``{"state": ...}``, ``Online``/``Offline`` (Tasmota) or ``true``/``false`` (Shelly)."""
    if len(payload) > MAX_STATUS_BYTES:
        return None
    return _state(_document(payload))


def parse_status(
    topic: str, payload: bytes, registry: Registry, received_at: datetime, max_age: timedelta = MAX_AGE
) -> Point | Rejection:
    """The gateway's state as a point at the payload's ``at`` when it has one with a UTC offset within
    the bounds (so every replica writes the same point), else at ``received_at``; or why the message
    is quarantined."""
    matched = classify(topic)
    if matched is None or matched.kind != "status":
        return Rejection(Reason.BAD_TOPIC, f"topic {topic!r} is no status topic")
    gateway = registry.gateway_by_id.get(matched.gateway)
    if gateway is None:
        return Rejection(Reason.UNKNOWN_GATEWAY, f"status of unknown gateway {matched.gateway!r}", "", matched.gateway)
    if matched.enterprise is not None and matched.enterprise != gateway.enterprise:
        return Rejection(
            Reason.SPOOFED,
            f"status of {gateway.id!r} under enterprise {matched.enterprise!r}",
            matched.enterprise,
            gateway.id,
        )
    if len(payload) > MAX_STATUS_BYTES:
        detail = f"status of {len(payload)} bytes > {MAX_STATUS_BYTES}"
        return Rejection(Reason.OVERSIZED, detail, gateway.enterprise, gateway.id)
    body = _document(payload)
    if isinstance(body, Unreadable):
        return Rejection(body.reason, body.detail, gateway.enterprise, gateway.id)
    state = _state(body)
    if state is None:
        return Rejection(Reason.SCHEMA, "status is neither online nor offline", gateway.enterprise, gateway.id)
    return GATEWAY_STATUS.point(
        {"enterprise": gateway.enterprise, "gateway": gateway.id},
        {"online": 1.0 if state == "online" else 0.0, "state": state},
        to_ns(_stated_time(body, received_at, max_age) or received_at),
    )


def _stated_time(body: object, received_at: datetime, max_age: timedelta) -> datetime | None:
    """The payload's ``"at"``, if it is a time with a UTC offset within the bounds of a reading's time."""
    stated = body.get("at") if isinstance(body, dict) else None
    if not isinstance(stated, str):
        return None
    try:
        at = datetime.fromisoformat(stated)
    except ValueError:
        return None
    if at.tzinfo is None or not received_at - max_age <= at <= received_at + MAX_FUTURE:
        return None
    return at
