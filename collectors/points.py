"""Readings and rejections as InfluxDB points of the contract in ``park.measurements``."""

from __future__ import annotations

import re
import threading
import time

from collectors.model import Reading, Rejection
from park.lineprotocol import Point, to_ns
from park.measurements import METER_REGISTER, QUARANTINE

# InfluxDB 1.x refuses string fields over 64 KiB.
MAX_STRING_FIELD = 60_000
_SAFE_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def reading_point(reading: Reading) -> Point:
    """A :data:`METER_REGISTER` point at the meter's time, so a re-delivered reading overwrites itself.

    Built directly, not by ``METER_REGISTER.point``: this runs for every reading, and its tags and
    fields are the contract's by construction.
    """
    return Point(
        METER_REGISTER.name,
        {
            "enterprise": reading.enterprise,
            "workshop": reading.workshop,
            "meter": reading.meter,
            "carrier": reading.carrier,
            "register": reading.register,
        },
        {
            "value": float(reading.value),
            "raw_value": float(reading.raw_value),
            "gateway_seq": int(reading.seq),
        },
        to_ns(reading.time),
    )


class UniqueClock:
    """Receive-time nanoseconds that never repeat, so no two quarantine points overwrite each other."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return self._last


def _tag(value: str) -> str:
    """A topic-derived id as a tag only if it looks like an id; anything else stays in the fields."""
    return value if _SAFE_TAG.match(value) else ("?" if value else "")


def _clip(text: str) -> tuple[str, bool]:
    return (text[:MAX_STRING_FIELD], True) if len(text) > MAX_STRING_FIELD else (text, False)


def quarantine_point(rejection: Rejection, topic: str, payload: bytes, received_ns: int) -> Point:
    """A :data:`QUARANTINE` point: reason and what was known as tags; the raw payload and the detail as fields."""
    if rejection.raw:
        text = rejection.raw
    else:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = payload.decode("utf-8", errors="backslashreplace")
    text, truncated = _clip(text)
    return QUARANTINE.point(
        {
            "reason": rejection.reason.value,
            "enterprise": _tag(rejection.enterprise),
            "gateway": _tag(rejection.gateway),
        },
        {
            "payload": text,
            "payload_bytes": len(payload),
            "payload_truncated": truncated,
            "detail": _clip(rejection.detail)[0],
            "topic": _clip(topic)[0],
            "meter": _clip(rejection.meter)[0],
        },
        received_ns,
    )
