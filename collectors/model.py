"""What a payload becomes: typed readings, or typed rejections that go to quarantine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Reason(StrEnum):
    """Why a message or a reading was quarantined; the tag value in ``quarantine``."""

    NOT_UTF8 = "not_utf8"
    MALFORMED_JSON = "malformed_json"
    SCHEMA = "schema"
    OVERSIZED = "oversized"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_GATEWAY = "unknown_gateway"
    SPOOFED = "spoofed"
    UNKNOWN_METER = "unknown_meter"
    UNKNOWN_REGISTER = "unknown_register"
    WRONG_UNIT = "wrong_unit"
    NOT_FINITE = "not_finite"
    NEGATIVE = "negative"
    ABSURD = "absurd"
    NO_TIMEZONE = "no_timezone"
    NO_TIMESTAMP = "no_timestamp"
    WRONG_FORMAT = "wrong_format"
    FUTURE = "future"
    TOO_OLD = "too_old"


@dataclass(frozen=True, slots=True)
class Reading:
    gateway: str
    seq: int
    enterprise: str
    workshop: str
    meter: str
    carrier: str
    register: str
    time: datetime
    raw_value: float
    value: float  # multiplier applied, in the meter's unit


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    detail: str
    enterprise: str = ""
    gateway: str = ""
    meter: str = ""
    raw: str = ""  # the offending reading as JSON, for a reading-level rejection


@dataclass(frozen=True, slots=True)
class Parsed:
    readings: list[Reading]
    rejections: list[Rejection]
