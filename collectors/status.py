"""Gateway status messages (a retained status, or the last will the broker publishes for a gateway
that dropped off) → a :data:`GATEWAY_STATUS` point, or the rejection that quarantines the message.

Pure: no I/O. Every format's status topic is in ``park.topics``; the payloads are the native
``{"state": "online"}`` (with an optional ``"at"``), Tasmota's ``Online``/``Offline`` and Shelly's
``true``/``false``.
"""

from __future__ import annotations

import json
from datetime import datetime

from collectors.model import Reason, Rejection
from park.lineprotocol import Point, to_ns
from park.measurements import GATEWAY_STATUS
from park.registry import Registry
from park.topics import classify

_STATES = {"online": "online", "offline": "offline", "true": "online", "false": "offline"}


def status_state(payload: bytes) -> str | None:
    """online/offline from ``{"state": ...}``, ``Online``/``Offline`` (Tasmota) or ``true``/``false`` (Shelly)."""
    text = payload.decode("utf-8", errors="replace").strip()
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    if isinstance(body, dict):
        body = body.get("state")
    return _STATES.get(str(body).strip().lower())


def parse_status(topic: str, payload: bytes, registry: Registry, received_at: datetime) -> Point | Rejection:
    """The gateway's state as a point at the payload's ``at`` when it has one with a UTC offset (so every
    replica writes the same point), else at ``received_at``; or why the message is quarantined."""
    matched = classify(topic)
    if matched is None or matched.kind != "status":
        return Rejection(Reason.BAD_TOPIC, f"topic {topic!r} is no status topic")
    gateway = registry.gateway_by_id.get(matched.gateway)
    state = status_state(payload)
    if gateway is None:
        return Rejection(Reason.UNKNOWN_GATEWAY, f"status of unknown gateway {matched.gateway!r}", "", matched.gateway)
    if matched.enterprise is not None and matched.enterprise != gateway.enterprise:
        return Rejection(
            Reason.SPOOFED,
            f"status of {gateway.id!r} under enterprise {matched.enterprise!r}",
            matched.enterprise,
            gateway.id,
        )
    if state is None:
        return Rejection(Reason.SCHEMA, "status is neither online nor offline", gateway.enterprise, gateway.id)
    return GATEWAY_STATUS.point(
        {"enterprise": gateway.enterprise, "gateway": gateway.id},
        {"online": 1.0 if state == "online" else 0.0, "state": state},
        to_ns(_stated_time(payload) or received_at),
    )


def _stated_time(payload: bytes) -> datetime | None:
    """The payload's ``"at"``, if it is a time with a UTC offset."""
    try:
        stated = json.loads(payload).get("at")
        at = datetime.fromisoformat(stated) if isinstance(stated, str) else None
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    return at if at is not None and at.tzinfo else None
