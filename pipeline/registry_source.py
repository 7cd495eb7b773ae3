"""Where the pipeline reads the registry: the file (``settings.registry``, as a park without the
platform keeps it) or the platform's versioned registry (``settings.registry_source = "database"``).

With the database, a month is computed with the registry as it was on the month's first day
(``ledger.registry_store``: changes apply from a month's start, a replacement inside a month carries
its instant), so re-running an old month reads the registry it was computed with, whatever changed
since. A day is read with its month's registry, so the daily rollups agree with the month that sums
them.

Value added is not read as of the month: a year's value added is known only after the year (and
corrected by approved submissions), so scoring reads the newest version of each year's figure, as it
reads the newest enterprises file.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from ledger.db import make_engine
from ledger.registry_store import VALUE_ADDED_COLUMNS, registry_as_of, value_added_as_of
from park.registry import Registry, load_registry
from park.settings import Settings
from scoring.inputs import Table, read_enterprises

FAR_FUTURE = date(9999, 1, 1)  # "as of the newest version": every version in force now or from a later month


def registry_of_day(settings: Settings, day: date) -> Registry:
    """The registry that computes ``day`` (a local date of the park): the file, or the database's as of
    the first day of ``day``'s month."""
    if settings.registry_source == "file":
        return load_registry(settings.registry)
    engine = make_engine(settings.ledger_url, read_only=True)
    try:
        with engine.connect() as conn:
            return registry_as_of(conn, day.replace(day=1))
    finally:
        engine.dispose()


def registry_of_period(settings: Settings, period: str) -> Registry:
    """The registry that computes month ``period`` (``YYYY-MM``)."""
    if settings.registry_source == "file":
        return load_registry(settings.registry)
    return registry_of_day(settings, _first_day(period))


def registries_of_periods(settings: Settings, periods: Sequence[str]) -> dict[str, Registry]:
    """:func:`registry_of_period` of each of ``periods`` in one pass (the late-data checks look at 13
    months every day): the file read once, or the database's registries through one connection."""
    if settings.registry_source == "file":
        return dict.fromkeys(periods, load_registry(settings.registry))
    firsts = {period: _first_day(period) for period in periods}
    engine = make_engine(settings.ledger_url, read_only=True)
    try:
        with engine.connect() as conn:
            return {period: registry_as_of(conn, first) for period, first in firsts.items()}
    finally:
        engine.dispose()


def _first_day(period: str) -> date:
    try:
        year, month = (int(part) for part in period.split("-"))
        return date(year, month, 1)
    except ValueError:
        raise ValueError(f"month {period!r} is not YYYY-MM") from None


def enterprises_table(settings: Settings) -> Table:
    """The enterprises file's rows (value added by year), read and checked as ``read_enterprises`` does:
    the file, or the database's newest version of each row, written to a file of the same columns."""
    if settings.registry_source == "file":
        return read_enterprises(settings.enterprises)
    engine = make_engine(settings.ledger_url, read_only=True)
    try:
        with engine.connect() as conn:
            rows = value_added_as_of(conn, FAR_FUTURE)
    finally:
        engine.dispose()
    with tempfile.TemporaryDirectory(prefix="parkcarbon-enterprises-") as folder:
        path = Path(folder) / settings.enterprises.name
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(VALUE_ADDED_COLUMNS), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return read_enterprises(path)
