"""Readings and rejections as InfluxDB points of the contract in ``park.measurements``."""

from __future__ import annotations

import re
import threading
import time

from collectors.model import Reading, Rejection
from park.lineprotocol import Point, to_ns
from park.measurements import METER_REGISTER, QUARANTINE

# InfluxDB 1.x refuses string fields over 64 KiB: every quarantine text is cut to this many UTF-8 bytes.
MAX_STRING_FIELD = 60_000
# A reading-level row keeps this much of the reading's JSON (a real reading has ~150 bytes): a message
# of many bad readings makes rows of this size, not 60 kB each.
MAX_READING_PAYLOAD = 2_000
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
    """An id as a tag only if it looks like one (the callers pass registry ids); anything else is left out."""
    return value if _SAFE_TAG.match(value) else ""


def safe_text(text: str, limit: int = MAX_STRING_FIELD) -> tuple[str, bool]:
    """``text`` as a string field can carry it, and whether it was cut: valid UTF-8 (a lone surrogate,
    which JSON's ``"\\ud800"`` makes, becomes its escape), no line break (``\\n`` as two characters:
    line protocol is one point a line) and at most ``limit`` bytes."""
    if "\n" in text or "\r" in text:
        text = text.replace("\r", "\\r").replace("\n", "\\n")
    if text.isascii():
        return (text[:limit], True) if len(text) > limit else (text, False)
    data = text.encode("utf-8", "backslashreplace")
    if len(data) <= limit:
        return data.decode("utf-8"), False
    return data[:limit].decode("utf-8", "ignore"), True


def payload_text(payload: bytes) -> tuple[str, bool]:
    """The message payload as a quarantine row's text, and whether it was cut; only its first
    :data:`MAX_STRING_FIELD` bytes are decoded, however large it is."""
    head = payload[:MAX_STRING_FIELD]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("utf-8", errors="backslashreplace")
    text, cut = safe_text(text)
    return text, cut or len(payload) > MAX_STRING_FIELD


def quarantine_point(
    rejection: Rejection,
    topic: str,
    payload: bytes,
    received_ns: int,
    *,
    enterprise: str = "",
    gateway: str = "",
    text: tuple[str, bool] | None = None,
) -> Point:
    """A :data:`QUARANTINE` point: the reason and the registry's enterprise and gateway as tags (never
    what a payload or topic claims: a tag value from outside would let a gateway file rows under
    another enterprise or make series without bound); the raw payload (the reading's JSON for a
    reading-level rejection), the detail, the topic and the claimed meter as fields.

    ``text`` is :func:`payload_text` of ``payload``, when the caller made it once for many rows.
    """
    if rejection.raw:
        body, truncated = safe_text(rejection.raw, MAX_READING_PAYLOAD)
    else:
        body, truncated = text if text is not None else payload_text(payload)
    return QUARANTINE.point(
        {"reason": rejection.reason.value, "enterprise": _tag(enterprise), "gateway": _tag(gateway)},
        {
            "payload": body,
            "payload_bytes": len(payload),
            "payload_truncated": truncated,
            "detail": safe_text(rejection.detail)[0],
            "topic": safe_text(topic)[0],
            "meter": safe_text(rejection.meter)[0],
        },
        received_ns,
    )
