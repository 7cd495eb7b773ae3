"""InfluxDB line protocol, written by hand so that every escaping rule is ours and tested.

Rules (InfluxDB 1.x line protocol reference):

- measurement: escape ``,`` and space;
- tag keys, tag values and field keys: escape ``,``, ``=`` and space;
- string field values: double-quoted, escape ``"`` and ``\\``;
- floats are written with ``repr`` (shortest text that reads back to the same float), integers get
  an ``i`` suffix, booleans are ``true``/``false``;
- a tag with an empty value is left out (line protocol cannot carry it).

What line protocol cannot carry raises :class:`LineProtocolError` instead of writing something
else: a newline in a name or tag value, a name or tag value ending in a backslash (it would escape
the separator), NaN or infinity, a point without fields.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

FieldValue = float | int | str | bool


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LineProtocolError(ValueError):
    """A point that line protocol cannot represent faithfully."""


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ns: int


_NAME_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


def _check_text(kind: str, text: str) -> None:
    if not text:
        raise LineProtocolError(f"empty {kind}")
    if "\n" in text or "\r" in text:
        raise LineProtocolError(f"{kind} {text!r} contains a line break")
    if text.endswith("\\"):
        raise LineProtocolError(f"{kind} {text!r} ends with a backslash")


# Names and tag values repeat endlessly (meter ids, enterprises, registers): escape each once.
@lru_cache(maxsize=65_536)
def _name(text: str) -> str:
    _check_text("measurement", text)
    return text.translate(_NAME_ESCAPES)


@lru_cache(maxsize=65_536)
def _key(kind: str, text: str) -> str:
    _check_text(kind, text)
    return text.translate(_KEY_ESCAPES)


def _field_value(key: str, value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise LineProtocolError(f"field {key!r} is {value}, which InfluxDB cannot store")
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise LineProtocolError(f"field {key!r} has unsupported type {type(value).__name__}")


def encode(point: Point) -> str:
    """Return one line of line protocol (without the trailing newline) for ``point``."""
    parts = [_name(point.measurement)]
    for key in sorted(point.tags):  # sorted tags: the order InfluxDB recommends for write speed
        value = point.tags[key]
        if value == "":
            continue
        parts.append(f"{_key('tag key', key)}={_key('tag value', value)}")
    if not point.fields:
        raise LineProtocolError(f"point of {point.measurement!r} has no fields")
    fields = ",".join(f"{_key('field key', k)}={_field_value(k, v)}" for k, v in point.fields.items())
    return f"{','.join(parts)} {fields} {point.time_ns}"


def to_ns(when: datetime) -> int:
    """Nanoseconds since the epoch for an aware datetime, exactly (no float rounding)."""
    if when.tzinfo is None:
        raise LineProtocolError(f"naive datetime {when.isoformat()} has no time zone")
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
