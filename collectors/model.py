"""What a payload becomes: a decoder's device readings, then typed readings, or typed rejections
that go to quarantine."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final


class Reason(StrEnum):
    """Why a message or a reading was quarantined: the reason tag of its :data:`~park.measurements.QUARANTINE` point."""

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
    DECODER_ERROR = "decoder_error"  # handling the message raised: a bug met by hostile input, isolated
    CONFLICT = "conflict"  # another value for a meter register and time InfluxDB already holds
    SUMMARISED = "summarised"  # a message's rejections beyond the per-message row limit, counted per reason


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


# DeviceReading.sent when the decoder kept nothing: the quarantine gets the decoded fields instead.
NOT_KEPT: Final = object()


@dataclass(frozen=True, slots=True)
class DeviceReading:
    """One register value as a decoder read it, in the gateway's own terms, before any registry lookup."""

    device_ref: str  # the meter id (native) or the device's own id on its gateway (channel, emdata:0 …)
    register: str
    when: datetime | None
    value: object  # checked later: a number, or whatever the device sent
    unit: str
    problem: tuple[Reason, str] | None = None  # the decoder already knows the reading is bad
    sent: object = NOT_KEPT  # the reading as the payload had it, if the decoder kept it

    def raw(self) -> str:
        """The reading as JSON for its quarantine point: as sent if kept, else its decoded fields."""
        body = self.sent
        if body is NOT_KEPT:
            when = self.when.isoformat() if self.when else None
            body = {"device": self.device_ref, "register": self.register, "value": self.value, "time": when}
        return json.dumps(body, default=str, ensure_ascii=False)


@dataclass
class Decoded:
    """A decoder's result: device readings and what the message says about itself, or why it is bad."""

    readings: list[DeviceReading] = field(default_factory=list)
    problem: tuple[Reason, str] | None = None  # the whole message is bad
    gateway: str | None = None  # the gateway the payload says it is from, where the format says one (native)
    seq: int = 0  # the gateway's message counter, where the format has one (native)
