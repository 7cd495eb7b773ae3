"""The trend, comparison and gateway figures on frames alone, without services: months without results,
a park without data, a gateway without daily quality rows."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reports.actions import LOW_COMPLETENESS, OFFLINE, STALE, gateway_month, problem_gateways
from reports.trend import NOT_RUN, PARK, comparisons, monthly_figures, periods_through, shift_period


def _frame(rows: list[dict[str, object]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def test_months_without_results_are_not_run_and_have_no_figures():
    empty = pd.DataFrame(columns=["enterprise", "period", "status", "workshop", "scope", "tco2_location"])
    figures = monthly_figures(["A", "B"], periods_through("2025-01", 13), empty, empty, empty)
    assert len(figures) == 3 * 13 and set(figures["status"]) == {NOT_RUN}
    assert figures[["emissions_tco2", "credits_ytd_tco2", "intensity_ytd_t_per_10k_cny"]].isna().all().all()
    compared = comparisons(figures, "2025-01")
    assert len(compared) == 3 * 2 * 3 and compared[["now", "then", "change", "change_pct"]].isna().all().all()


def test_no_data_is_not_zero_and_a_missing_part_leaves_no_total():
    coverage = _frame(
        [
            {"enterprise": "A", "period": "2024-12", "status": "data"},
            {"enterprise": "B", "period": "2024-12", "status": "no_data"},
            {"enterprise": "A", "period": "2025-01", "status": "data"},
            {"enterprise": "B", "period": "2025-01", "status": "data"},
        ],
        ["enterprise", "period", "status"],
    )
    emissions = _frame(
        [
            {"enterprise": "A", "period": "2024-12", "workshop": "", "scope": "total", "tco2_location": 0.0},
            {"enterprise": "A", "period": "2024-12", "workshop": "W", "scope": "total", "tco2_location": 5.0},
            {"enterprise": "A", "period": "2025-01", "workshop": "", "scope": "total", "tco2_location": 10.0},
        ],
        ["enterprise", "period", "workshop", "scope", "tco2_location"],
    )
    credits = pd.DataFrame(columns=["enterprise", "period", "credits_tco2"])
    figures = monthly_figures(["A", "B"], ["2024-12", "2025-01"], coverage, emissions, credits).set_index(
        ["subject", "period"]
    )
    assert figures.at[("A", "2024-12"), "emissions_tco2"] == 0.0  # a real zero; the workshop is not added
    assert math.isnan(figures.at[("B", "2024-12"), "emissions_tco2"])  # no data
    assert figures.at[(PARK, "2024-12"), "emissions_tco2"] == 0.0  # the park: its enterprises with data
    assert math.isnan(figures.at[(PARK, "2025-01"), "emissions_tco2"])  # B has data but no emissions row
    compared = comparisons(figures.reset_index(), "2025-01").set_index(["subject", "metric", "basis"])
    a = compared.loc[("A", "emissions_tco2", "previous_month")]
    assert a["change"] == 10.0 and math.isnan(a["change_pct"])  # no percentage from 0


@pytest.mark.parametrize(("period", "months", "shifted"), [("2025-01", -1, "2024-12"), ("2025-03", -14, "2024-01")])
def test_shift_period(period, months, shifted):
    assert shift_period(period, months) == shifted


def test_problem_gateways_without_daily_rows_still_show_low_completeness():
    daily = pd.DataFrame(columns=["time", "enterprise", "gateway", "readings", "meters_silent", "offline"])
    quality = _frame(
        [
            {"meter": "m1", "completeness": 0.5},
            {"meter": "m2", "completeness": 1.0},
            {"meter": "m3", "completeness": 1.0},
        ],
        ["meter", "completeness"],
    )
    gateways = gateway_month(daily, quality, {"g1": "A", "g2": "B"}, {"g1": ["m1", "m2"], "g2": ["m3"]})
    problems = problem_gateways(gateways)
    assert problems["gateway"].tolist() == ["g1"] and problems["problems"].iloc[0] == [LOW_COMPLETENESS]
    assert gateways.set_index("gateway").at["g1", "completeness"] == pytest.approx(0.75)


def test_problem_gateways_offline_at_the_end_come_first():
    days = pd.to_datetime(["2025-01-01", "2025-01-02"], utc=True)
    daily = _frame(
        [
            {"time": days[0], "gateway": "g1", "meters_silent": 1.0, "offline": False},
            {"time": days[1], "gateway": "g1", "meters_silent": 0.0, "offline": False},
            {"time": days[0], "gateway": "g2", "meters_silent": 0.0, "offline": False},
            {"time": days[1], "gateway": "g2", "meters_silent": 2.0, "offline": True},
            {"time": days[0], "gateway": "g3", "meters_silent": 0.0, "offline": float("nan")},
        ],
        ["time", "gateway", "meters_silent", "offline"],
    )
    quality = pd.DataFrame(columns=["meter", "completeness"])
    gateways = gateway_month(daily, quality, {"g1": "A", "g2": "A", "g3": "B"}, {})
    problems = problem_gateways(gateways)
    assert problems["gateway"].tolist() == ["g2", "g1"]  # g3: no problem, a missing offline field is not offline
    assert problems["problems"].tolist() == [[OFFLINE, STALE], [STALE]]
