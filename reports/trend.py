"""The park's last twelve months and how the month compares, from the results the monthly DAG wrote.

- **Per enterprise and month**: its status (``data``; ``no_data`` when MONTH_COVERAGE says none of
  its meters sent a reading; ``not_run`` when the month has no results at all), the month's emissions
  (location-based, the enterprise's own total), and the year-to-date credits and intensity as the
  month's CREDITS row has them. A month without data has NaN emissions, never 0; the
  year-to-date figures are what was stored (an enterprise without data this month still has the
  credits of its months with data).
- **The park per month**: emissions summed over the enterprises with data (NaN when none has data,
  or when one of them has no emissions row), credits summed over the enterprises with credits,
  intensity = Σ year-to-date emissions / Σ value added used, over the enterprises with an intensity.
- **Comparisons** with the month before and the same month a year earlier: the change as
  now − then and as a percentage of |then| (so a rise is positive whatever the sign of then); no
  percentage from 0; NaN (shown as "no data") when either month has no figure.

Pure functions on the frames :func:`park.month.read_months` gives, separate from the HTML, so the
platform can show the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from reports.actions import number

PARK = "(park)"  # the subject of the park's rows: not a valid enterprise id, so never one of theirs
DATA, NO_DATA, NOT_RUN = "data", "no_data", "not_run"
METRICS = ("emissions_tco2", "credits_ytd_tco2", "intensity_ytd_t_per_10k_cny")
PREVIOUS_MONTH, YEAR_AGO = "previous_month", "year_ago"
FIGURE_COLUMNS = [
    "subject",
    "period",
    "status",
    "enterprises_with_data",
    *METRICS,
    "emissions_ytd_tco2",
    "value_added_ytd_10k_cny",
]
COMPARISON_COLUMNS = ["subject", "metric", "basis", "period_then", "now", "then", "change", "change_pct"]


def shift_period(period: str, months: int) -> str:
    """``period`` (YYYY-MM) moved by ``months`` (negative: earlier).

    >>> shift_period("2025-01", -1), shift_period("2025-01", -12), shift_period("2024-11", 2)
    ('2024-12', '2024-01', '2025-01')
    """
    year, month = (int(p) for p in period.split("-"))
    index = year * 12 + month - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def periods_through(period: str, count: int) -> list[str]:
    """The ``count`` periods ending with ``period``, oldest first."""
    return [shift_period(period, -n) for n in range(count - 1, -1, -1)]


def _statuses(coverage: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(enterprise, period) → ``data`` or ``no_data``, from MONTH_COVERAGE rows."""
    if not len(coverage):
        return {}
    return {
        (str(e), str(p)): DATA if s == DATA else NO_DATA
        for e, p, s in zip(coverage["enterprise"], coverage["period"], coverage["status"], strict=True)
    }


def _own_totals(emissions: pd.DataFrame) -> dict[tuple[str, str], float]:
    """(enterprise, period) → the enterprise's own total tCO2, location-based, from EMISSIONS_MONTHLY."""
    if not len(emissions):
        return {}
    own = emissions[(emissions["scope"] == "total") & (emissions["workshop"] == "")]
    sums = own.groupby(["enterprise", "period"])["tco2_location"].sum()
    return {(str(e), str(p)): float(t) for (e, p), t in sums.items()}


def _credit_rows(credits: pd.DataFrame) -> dict[tuple[str, str], dict[str, float]]:
    """(enterprise, period) → the year-to-date figures of its CREDITS row."""
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for r in credits.to_dict("records") if len(credits) else []:
        rows[(str(r["enterprise"]), str(r["period"]))] = {
            "credits_ytd_tco2": number(r.get("credits_tco2")),
            "intensity_ytd_t_per_10k_cny": number(r.get("intensity_t_per_10k_cny")),
            "emissions_ytd_tco2": number(r.get("emissions_tco2")),
            "value_added_ytd_10k_cny": number(r.get("value_added_used_10k_cny")),
        }
    return rows


def enterprise_months(
    enterprises: Sequence[str],
    periods: Sequence[str],
    coverage: pd.DataFrame,
    emissions: pd.DataFrame,
    credits: pd.DataFrame,
) -> pd.DataFrame:
    """One row per enterprise and period (FIGURE_COLUMNS) from the MONTH_COVERAGE, EMISSIONS_MONTHLY and
    CREDITS rows of those periods (each with a ``period`` column)."""
    statuses, totals, credit_rows = _statuses(coverage), _own_totals(emissions), _credit_rows(credits)
    rows = []
    for enterprise in enterprises:
        for period in periods:
            key = (enterprise, period)
            status = statuses.get(key, NOT_RUN)
            credit = credit_rows.get(key, {})
            rows.append(
                {
                    "subject": enterprise,
                    "period": period,
                    "status": status,
                    "enterprises_with_data": 1 if status == DATA else 0,
                    "emissions_tco2": totals.get(key, math.nan) if status == DATA else math.nan,
                    "credits_ytd_tco2": credit.get("credits_ytd_tco2", math.nan),
                    "intensity_ytd_t_per_10k_cny": credit.get("intensity_ytd_t_per_10k_cny", math.nan),
                    "emissions_ytd_tco2": credit.get("emissions_ytd_tco2", math.nan),
                    "value_added_ytd_10k_cny": credit.get("value_added_ytd_10k_cny", math.nan),
                }
            )
    return pd.DataFrame(rows, columns=FIGURE_COLUMNS)


def _sum_or_nan(values: pd.Series) -> float:
    """The sum of the values; NaN when there is none or one is missing (no data is not 0, and a sum
    without one of its parts is not the total)."""
    return float(values.sum()) if len(values) and values.notna().all() else math.nan


def park_month(rows: pd.DataFrame, period: str) -> dict[str, object]:
    """The park's figures of one period from its enterprises' rows of it."""
    statuses = set(rows["status"])
    status = DATA if DATA in statuses else NO_DATA if NO_DATA in statuses else NOT_RUN
    with_data = rows[rows["status"] == DATA]
    scored = rows[rows["intensity_ytd_t_per_10k_cny"].notna()]
    value_added = float(scored["value_added_ytd_10k_cny"].sum()) if len(scored) else math.nan
    ytd_emissions = float(scored["emissions_ytd_tco2"].sum()) if len(scored) else math.nan
    return {
        "subject": PARK,
        "period": period,
        "status": status,
        "enterprises_with_data": len(with_data),
        "emissions_tco2": _sum_or_nan(with_data["emissions_tco2"]),
        "credits_ytd_tco2": _sum_or_nan(rows["credits_ytd_tco2"].dropna()),
        "intensity_ytd_t_per_10k_cny": ytd_emissions / value_added if value_added > 0 else math.nan,
        "emissions_ytd_tco2": ytd_emissions,
        "value_added_ytd_10k_cny": value_added,
    }


def park_months(enterprise_rows: pd.DataFrame) -> pd.DataFrame:
    """One park row per period (subject PARK) from :func:`enterprise_months`' rows."""
    periods = sorted(set(enterprise_rows["period"]))
    rows = [park_month(enterprise_rows[enterprise_rows["period"] == p], p) for p in periods]
    return pd.DataFrame(rows, columns=FIGURE_COLUMNS)


def monthly_figures(
    enterprises: Sequence[str],
    periods: Sequence[str],
    coverage: pd.DataFrame,
    emissions: pd.DataFrame,
    credits: pd.DataFrame,
) -> pd.DataFrame:
    """The park's rows (subject PARK) followed by every enterprise's, one per period."""
    rows = enterprise_months(enterprises, periods, coverage, emissions, credits)
    return pd.concat([park_months(rows), rows], ignore_index=True)


def change_pct(now: float, then: float) -> float:
    """The change from ``then`` to ``now`` in percent of |then|; NaN from 0 or without either.

    >>> change_pct(110.0, 100.0), change_pct(-50.0, -100.0), change_pct(5.0, 0.0)
    (10.0, 50.0, nan)
    """
    if not (math.isfinite(now) and math.isfinite(then)) or then == 0:
        return math.nan
    return (now - then) / abs(then) * 100


def comparisons(figures: pd.DataFrame, period: str) -> pd.DataFrame:
    """Each subject's METRICS in ``period`` against the month before and the same month a year
    earlier (COMPARISON_COLUMNS); ``now`` or ``then`` NaN where that month has no figure."""
    indexed = figures.set_index(["subject", "period"])
    rows = []
    for subject in dict.fromkeys(figures["subject"]):
        for basis, then_period in ((PREVIOUS_MONTH, shift_period(period, -1)), (YEAR_AGO, shift_period(period, -12))):
            for metric in METRICS:
                now = number(indexed[metric].get((subject, period)))
                then = number(indexed[metric].get((subject, then_period)))
                rows.append(
                    {
                        "subject": subject,
                        "metric": metric,
                        "basis": basis,
                        "period_then": then_period,
                        "now": now,
                        "then": then,
                        "change": now - then,  # NaN when either is
                        "change_pct": change_pct(now, then),
                    }
                )
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
