"""Task body of the ``carbon_annual`` DAG: settle a year's credits, grades and ratings, and book
them into the credit ledger (surplus issued, deficit owed by the deadline).

Monthly results are year-to-date and provisional. Settlement scores the whole year once every one
of its twelve months has run and no month has readings that arrived after it ran (``LATE_DATA``);
otherwise it refuses and names the months to run again, so a settled figure never rests on a month
that the data has since moved under.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from ledger.settlement import book_settlement, open_ledger, operator, write_compliance
from park.measurements import CREDITS_ANNUAL, DATA_QUALITY, LATE_DATA, Measurement
from park.month import Month
from park.registry import park_timezone
from park.settings import Settings
from park.store import InfluxStore
from pipeline.monthly import credit_points, score_through
from reports.annual import write_year_report


class SettlementError(RuntimeError):
    pass


def months_of(year: int, timezone: str) -> list[Month]:
    return [Month.of(f"{year:04d}-{m:02d}", timezone) for m in range(1, 13)]


def _sum_by_month(
    store: InfluxStore, measurement: Measurement, field: str, year: int, timezone: str
) -> dict[int, float]:
    """Per month start [ns] of ``year``: the sum of ``field`` in ``measurement`` (months without points left out)."""
    months = months_of(year, timezone)
    frame = store.query(
        f'SELECT "{field}" FROM {measurement.q} WHERE time >= {months[0].start_ns} AND time <= {months[-1].start_ns}'
    )
    if frame.empty:
        return {}
    sums = frame.groupby(frame["time"].dt.as_unit("ns").astype("int64"))[field].sum()
    return {int(t): float(v) for t, v in sums.items()}


def check_year(store: InfluxStore, year: int, timezone: str) -> None:
    """Raise :class:`SettlementError` unless every month of ``year`` ran and none has late data."""
    months = months_of(year, timezone)
    ran = _sum_by_month(store, DATA_QUALITY, "readings", year, timezone)
    late = _sum_by_month(store, LATE_DATA, "late_readings", year, timezone)
    missing = [m.period for m in months if m.start_ns not in ran]
    stale = [f"{m.period} ({late[m.start_ns]:.0f} late readings)" for m in months if late.get(m.start_ns, 0) > 0]
    problems = []
    if missing:
        problems.append(f"carbon_monthly has not run for {', '.join(missing)}")
    if stale:
        problems.append(f"readings arrived after these months ran; clear and re-run them: {', '.join(stale)}")
    if problems:
        raise SettlementError(f"cannot settle {year}: " + "; ".join(problems))


def settle_year(settings: Settings, year: int) -> dict[str, object]:
    """Check the year, score it through December and write ``CREDITS_ANNUAL`` at the year's start."""
    timezone = park_timezone(settings.registry)
    december = Month.of(f"{year:04d}-12", timezone)
    january = Month.of(f"{year:04d}-01", timezone)
    with InfluxStore(settings.influx) as store, open_ledger(settings) as ledger:
        check_year(store, year, timezone)
        result = score_through(settings, store, december)
        if len(result.credits) and result.credits["provisional"].astype(bool).any():
            raise SettlementError(
                f"cannot settle {year}: the park has data for {int(result.credits['months_covered'].iloc[0])} "
                "months of it, not 12"
            )
        store.replace_at(CREDITS_ANNUAL, january.start_ns, credit_points(result, CREDITS_ANNUAL, january.start_ns))
        booked = book_settlement(ledger, year, result.credits, settings.ledger.deadline_for(year), operator(settings))
        # The new year's obligations are open; last year's deadline has passed: its compliance is final.
        as_of = date(year + 1, 1, 1)
        compliance = pd.concat([write_compliance(ledger, store, y, as_of) for y in (year - 1, year)])
    report = write_year_report(settings.run_dir, year, result.credits)
    return {
        "year": year,
        "enterprises": len(result.credits),
        "base_year": result.base_year,
        "credits_tco2": float(result.credits["credits_tco2"].sum()) if len(result.credits) else 0.0,
        "issued_tco2": sum(booked.issued_kg.values()) / 1000,
        "obligations_tco2": sum(booked.obligation_kg.values()) / 1000,
        "compliance": {f"{y} {s}": int(n) for (y, s), n in compliance.groupby(["year", "status"]).size().items()},
        "report": str(report),
    }
