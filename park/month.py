"""A calendar month in the park's time zone, as InfluxDB time bounds, and the month's stored results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pandas as pd

from park.lineprotocol import to_ns
from park.measurements import Measurement
from park.store import InfluxStore


@dataclass(frozen=True)
class Month:
    period: str  # YYYY-MM
    start: datetime  # local midnight of the 1st, aware
    end: datetime  # local midnight of the 1st of the next month

    @classmethod
    def of(cls, period: str, timezone: str) -> Month:
        year, month = (int(p) for p in period.split("-"))
        tz = ZoneInfo(timezone)
        start = datetime(year, month, 1, tzinfo=tz)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
        return cls(f"{year:04d}-{month:02d}", start, end)

    @classmethod
    def containing(cls, when: datetime, timezone: str) -> Month:
        local = when.astimezone(ZoneInfo(timezone))
        return cls.of(f"{local.year:04d}-{local.month:02d}", timezone)

    @property
    def year(self) -> int:
        return self.start.year

    @property
    def start_ns(self) -> int:
        return to_ns(self.start)

    @property
    def end_ns(self) -> int:
        return to_ns(self.end)

    def previous(self) -> Month:
        year, month = (self.year - 1, 12) if self.start.month == 1 else (self.year, self.start.month - 1)
        return Month.of(f"{year:04d}-{month:02d}", str(self.start.tzinfo))


def rfc3339(when: datetime) -> str:
    """An InfluxQL time literal (UTC, nanosecond precision)."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond * 1000:09d}Z"


def _with_tags(frame: pd.DataFrame, measurement: Measurement) -> pd.DataFrame:
    """Every tag of ``measurement`` as a column, "" where a point has none."""
    for tag in measurement.tags:
        frame[tag] = frame[tag].fillna("").astype(str) if tag in frame else ""
    return frame


def read_month(store: InfluxStore, measurement: Measurement, month: Month) -> pd.DataFrame:
    """The points of ``measurement`` stamped at the month's start (its monthly results), without ``time``.

    Every tag of the measurement is a column, "" where a point has none: line protocol cannot store
    an empty tag, so a park without workshops has no ``workshop`` column in InfluxDB's answer.
    """
    frame = store.query(f"SELECT * FROM {measurement.q} WHERE time = {month.start_ns}").drop(columns="time")
    return _with_tags(frame, measurement)


def months_through(last: Month, count: int) -> list[Month]:
    """The ``count`` months ending with ``last`` (included), oldest first."""
    months = [last]
    while len(months) < count:
        months.append(months[-1].previous())
    return months[::-1]


def read_months(store: InfluxStore, measurement: Measurement, first: Month, last: Month) -> pd.DataFrame:
    """The monthly results of ``measurement`` from ``first`` to ``last`` (both included), each row with
    its ``period`` (YYYY-MM in the months' time zone) instead of ``time``; tags as :func:`read_month`
    gives them."""
    frame = store.query(f"SELECT * FROM {measurement.q} WHERE time >= {first.start_ns} AND time <= {last.start_ns}")
    if "time" in frame and len(frame):
        frame["period"] = frame["time"].dt.tz_convert(str(last.start.tzinfo)).dt.strftime("%Y-%m")
    else:
        frame["period"] = pd.Series(dtype=str)
    return _with_tags(frame.drop(columns="time"), measurement)


def read_within(store: InfluxStore, measurement: Measurement, month: Month) -> pd.DataFrame:
    """The points of ``measurement`` stamped inside the month (daily results, for instance), with
    ``time`` (UTC); tags as :func:`read_month` gives them."""
    frame = store.query(f"SELECT * FROM {measurement.q} WHERE time >= {month.start_ns} AND time < {month.end_ns}")
    return _with_tags(frame, measurement)
