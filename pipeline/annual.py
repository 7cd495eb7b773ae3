"""Task body of the ``carbon_annual`` DAG: settle a year's credits, grades and ratings, and book
them into the credit ledger (surplus issued, deficit owed by the deadline), and book out the credits
past the policy's banking validity at the year's end (``ledger.credit_validity_years``).

Every settlement records a result version (``ledger.results``; a new one only when the rows changed),
which the platform publishes (公示) and finalises. With ``ledger.issuance = reviewed`` settlement books
no credits and no obligations: the ledger books the version's when a park admin approves its issuance,
and COMPLIANCE of the year is written from what the ledger holds then (before approval: nothing owed
for the year yet). The default, ``on_settlement``, books at once as a park without the platform needs.

Monthly results are year-to-date and provisional. Settlement scores the whole year once every one
of its twelve months has run and no month has readings that arrived after it ran (``LATE_DATA``);
otherwise it refuses and names the months to run again, so a settled figure never rests on a month
that the data has since moved under. A month without data for an enterprise (``MONTH_COVERAGE``) is
refused too, unless the operator settles the year with that month explicitly accepted as missing;
a year without any data is never settled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import pandas as pd

from ledger.book import Ledger, SettlementReport
from ledger.results import ISSUANCE_OF_MODE, ResultVersion, record_version, row_of
from ledger.settlement import book_settlement, expire_after_year, open_ledger, operator, write_compliance
from park.measurements import CREDITS_ANNUAL, DATA_QUALITY, LATE_DATA, MONTH_COVERAGE, Measurement
from park.month import Month
from park.registry import Registry, metering_start_of
from park.settings import Settings
from park.store import InfluxStore
from pipeline.checks import WrongInputError
from pipeline.monthly import credit_points, score_through
from pipeline.registry_source import registry_of_period
from reports.annual import write_year_report
from scoring.policy import load_policy


class SettlementError(WrongInputError):
    """The year cannot be settled as it stands; the message says what to run or decide first."""


@dataclass(frozen=True)
class YearBooking:
    """What booking a settled year did: the settlement, and the kg expired by (enterprise, vintage)."""

    settlement: SettlementReport
    expired_kg: dict[tuple[str, int], int]


def credit_validity_years(settings: Settings) -> int | None:
    """The policy's banking validity (years after a vintage), None when the policy sets none."""
    return load_policy(settings.policy).credit_validity_years


def book_year(ledger: Ledger, year: int, credits: pd.DataFrame, deadline: date, requested_by: str) -> YearBooking:
    """Book the settled credits (rows of ``CREDITS_ANNUAL``) of ``year`` (deficits due by ``deadline``),
    then book out what is held of vintages past their validity on 31 December of ``year``. Run again,
    it books only differences."""
    settlement = book_settlement(ledger, year, credits, deadline, requested_by)
    return YearBooking(settlement, expire_after_year(ledger, year, requested_by))


def record_result_version(
    ledger: Ledger, registry: Registry, year: int, credits: pd.DataFrame, settings: Settings
) -> tuple[ResultVersion, bool]:
    """Record the settled rows of ``year`` as a result version (``ledger.results``): a new one only when
    they differ from the year's newest. Its issuance is booked at once (``ledger.issuance =
    on_settlement``) or proposed for a park admin's approval (``reviewed``). Each row keeps the
    enterprise's workshops with a near-zero target, so that lists drawn from the version need nothing else."""
    nearzero: dict[str, list[str]] = {}
    for workshop in registry.workshops:
        if workshop.near_zero is not None:
            nearzero.setdefault(workshop.enterprise, []).append(workshop.id)
    rows = [row_of(r, nearzero.get(str(r["enterprise"]), [])) for r in credits.to_dict("records")]
    return record_version(
        ledger.engine,
        year,
        rows,
        settings.ledger.deadline_for(year),
        ISSUANCE_OF_MODE[settings.ledger.issuance],
        operator(settings),
    )


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


def months_without_data(store: InfluxStore, year: int, timezone: str) -> dict[str, list[str]]:
    """Per month of ``year`` that ran: the enterprises without data in it (``MONTH_COVERAGE``)."""
    months = months_of(year, timezone)
    frame = store.query(
        f'SELECT "status" FROM {MONTH_COVERAGE.q} WHERE time >= {months[0].start_ns} '
        f'AND time <= {months[-1].start_ns} GROUP BY "enterprise"'
    )
    lacking: dict[str, list[str]] = {}
    for when, enterprise, status in zip(
        frame.get("time", []), frame.get("enterprise", []), frame.get("status", []), strict=True
    ):
        if status == "no_data":
            lacking.setdefault(when.tz_convert(timezone).strftime("%Y-%m"), []).append(str(enterprise))
    return {period: sorted(names) for period, names in sorted(lacking.items())}


def check_year(
    store: InfluxStore, registry: Registry, year: int, accept_missing: Sequence[str] = ()
) -> dict[str, list[str]]:
    """Raise :class:`SettlementError` unless every month of ``year`` from the park's metering start ran,
    none has late data, and every month without data for an enterprise (months before the metering
    start included) is one the operator accepted as missing. Returns the months without data, each
    with its enterprises."""
    timezone = registry.park.timezone
    try:
        start = metering_start_of(registry.park)
    except ValueError as exc:
        raise SettlementError(str(exc)) from None
    metered = [m for m in months_of(year, timezone) if m.end.date() > start]
    ran = _sum_by_month(store, DATA_QUALITY, "readings", year, timezone)
    late = _sum_by_month(store, LATE_DATA, "late_readings", year, timezone)
    missing = [m.period for m in metered if m.start_ns not in ran]
    stale = [f"{m.period} ({late[m.start_ns]:.0f} late readings)" for m in metered if late.get(m.start_ns, 0) > 0]
    everyone = sorted(registry.enterprise_by_id)
    unmetered = {m.period: everyone for m in months_of(year, timezone) if m not in metered}
    lacking = dict(sorted((unmetered | months_without_data(store, year, timezone)).items()))
    if not missing and len(lacking) == 12 and all(names == everyone for names in lacking.values()):
        raise SettlementError(f"cannot settle {year}: the park has no data for any month of it; nothing to settle")
    problems = []
    if missing:
        problems.append(f"carbon_monthly has not run for {', '.join(missing)}")
    if stale:
        problems.append(f"readings arrived after these months ran; clear and re-run them: {', '.join(stale)}")
    unaccepted = [
        f"{period} ({'all enterprises' if names == everyone else ', '.join(names)})"
        for period, names in lacking.items()
        if period not in accept_missing
    ]
    if unaccepted:
        problems.append(
            f"no data for {'; '.join(unaccepted)}: collect it and re-run those months, or settle with them accepted "
            'as missing (trigger carbon_annual with {"accept_missing_months": ["YYYY-MM", ...]})'
        )
    if problems:
        raise SettlementError(f"cannot settle {year}: " + "; ".join(problems))
    return lacking


def settle_year(settings: Settings, year: int, accept_missing: Sequence[str] = ()) -> dict[str, object]:
    """Check the year, score it through December, write ``CREDITS_ANNUAL`` at the year's start and book
    it (``book_year``: credits past the policy's banking validity are booked out). ``accept_missing``
    lists the months (``YYYY-MM``) the operator settles without data: the enterprises lacking them are
    scored on the months they have, value added prorated."""
    registry = registry_of_period(settings, f"{year:04d}-12")  # with the database: as the year ended
    timezone = registry.park.timezone
    december = Month.of(f"{year:04d}-12", timezone)
    january = Month.of(f"{year:04d}-01", timezone)
    validity_years = credit_validity_years(settings)
    with InfluxStore(settings.influx) as store, open_ledger(settings, validity_years) as ledger:
        lacking = check_year(store, registry, year, accept_missing)
        result = score_through(settings, store, december)
        if result is None:
            raise SettlementError(f"cannot settle {year}: no data for {december.period}")
        credits = result.credits.copy()
        accepted = {e: [p for p, names in lacking.items() if e in names] for e in credits["enterprise"]}
        unexplained = credits[
            credits["provisional"].astype(bool)
            & (credits["months_covered"] + credits["enterprise"].map(lambda e: len(accepted[e])) < 12)
        ]
        if len(unexplained):
            raise SettlementError(
                f"cannot settle {year}: data for fewer than 12 months: "
                + ", ".join(f"{r.enterprise} ({int(r.months_covered)})" for r in unexplained.itertuples())
            )
        for index, enterprise in credits["enterprise"].items():
            if accepted[enterprise]:
                note = f"settled without data for {', '.join(accepted[enterprise])} (accepted by the operator)"
                credits.at[index, "note"] = "; ".join(n for n in (str(credits.at[index, "note"] or ""), note) if n)
        result = replace(result, credits=credits)
        store.replace_at(CREDITS_ANNUAL, january.start_ns, credit_points(result, CREDITS_ANNUAL, january.start_ns))
        # An enterprise without value added has no credits: nothing of it is booked.
        bookable = credits[np.isfinite(credits["credits_tco2"].astype(float))]
        deadline = settings.ledger.deadline_for(year)
        version, new_version = record_result_version(ledger, registry, year, credits, settings)
        if settings.ledger.issuance == "on_settlement":
            booked = book_year(ledger, year, bookable, deadline, operator(settings))
        else:  # reviewed: the ledger books the version's credits when a park admin approves them
            booked = YearBooking(SettlementReport(year), expire_after_year(ledger, year, operator(settings)))
        # The new year's obligations are open; last year's deadline has passed: its compliance is final.
        as_of = date(year + 1, 1, 1)
        compliance = pd.concat([write_compliance(ledger, store, y, as_of) for y in (year - 1, year)])
    report = write_year_report(settings.run_dir, year, credits)
    return {
        "year": year,
        "enterprises": len(credits),
        "base_year": result.base_year,
        "months_accepted_without_data": sorted(p for p in lacking if p in accept_missing),
        "result_version": version.version,
        "result_version_new": new_version,
        "issuance": version.issuance,
        "credits_tco2": float(bookable["credits_tco2"].sum()) if len(bookable) else 0.0,
        "issued_tco2": sum(booked.settlement.issued_kg.values()) / 1000,
        "obligations_tco2": sum(booked.settlement.obligation_kg.values()) / 1000,
        "expired_tco2": sum(booked.expired_kg.values()) / 1000,
        "compliance": {f"{y} {s}": int(n) for (y, s), n in compliance.groupby(["year", "status"]).size().items()},
        "report": str(report),
    }
