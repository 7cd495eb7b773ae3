"""Intensity, benchmark, credits, grades and ratings against numbers worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from scoring.credits import score_credits
from scoring.policy import load_policy
from scoring.rating import rate

POLICY = load_policy()  # r = 3.89 %/yr, min 3 per industry, K bands 0.6/0.8/1.2/2.0


def monthly(annual: dict[str, float], year: int, months: int = 12) -> pd.DataFrame:
    """Spread annual tCO2 evenly over the first ``months`` months of ``year``."""
    rows = []
    for ent, total in annual.items():
        for m in range(1, months + 1):
            rows.append(
                {
                    "enterprise": ent,
                    "workshop": "",
                    "period": f"{year}-{m:02d}",
                    "total_location_tco2": total / 12,
                    "total_market_tco2": 0.0,
                }
            )
    return pd.DataFrame(rows)


def firms(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["enterprise", "industry", "year", "value_added_10k_cny"])


# C39 has 3 firms with value added (its own mean); C38 has 2 (park-wide mean); X39 has none.
EMISSIONS_2023 = {"A": 100.0, "B": 200.0, "C": 300.0, "D": 50.0, "E": 150.0, "X": 80.0}
FIRMS_2023 = firms(
    [
        ("A", "C39", 2023, 100.0),
        ("B", "C39", 2023, 100.0),
        ("C", "C39", 2023, 200.0),
        ("D", "C38", 2023, 100.0),
        ("E", "C38", 2023, 100.0),
        ("X", "C39", 2023, math.nan),
    ]
)


class TestCredits:
    def test_base_year(self):
        """Base year: C39 mean 600/400 = 1.5; C38 falls back to the park mean 800/600."""
        result = score_credits(monthly(EMISSIONS_2023, 2023), FIRMS_2023, 2023, 2023, POLICY).set_index("enterprise")
        park = 800 / 600
        assert_allclose(result.loc[list("ABCDE"), "benchmark_t_per_10k_cny"], [1.5, 1.5, 1.5, park, park], rtol=1e-12)
        assert_allclose(result.loc[list("ABCDE"), "intensity_t_per_10k_cny"], [1.0, 2.0, 1.5, 0.5, 1.5], rtol=1e-12)
        assert_allclose(
            result.loc[list("ABCDE"), "credits_tco2"],
            [50.0, -50.0, 0.0, park * 100 - 50, park * 100 - 150],
            rtol=1e-12,
        )
        assert_allclose(result.loc[list("ABCDE"), "k_ratio"], [1 / 1.5, 2 / 1.5, 1.0, 0.5 / park, 1.5 / park])
        assert list(result.loc[list("ABCDE"), "grade"]) == [2, 4, 3, 1, 3]
        assert list(result.loc[["A", "D"], "benchmark_scope"]) == ["industry", "park"]
        assert "fewer than 3" in result.loc["D", "note"]
        # An industry's credits add up to zero in the base year when its mean is its own.
        assert_allclose(result.loc[list("ABC"), "credits_tco2"].sum(), 0.0, atol=1e-9)

    def test_year_without_value_added(self):
        """X has emissions but no value added: no intensity, credits or grade; left out of the means."""
        row = (
            score_credits(monthly(EMISSIONS_2023, 2023), FIRMS_2023, 2023, 2023, POLICY)
            .set_index("enterprise")
            .loc["X"]
        )
        assert math.isnan(row.intensity_t_per_10k_cny) and math.isnan(row.credits_tco2)
        assert pd.isna(row.grade)
        assert "no value added" in row.note

    def test_benchmark_declines(self):
        """A year after the base: benchmark 1.5 x (1 - 0.0389) = 1.44165 for C39."""
        later = firms([(e, i, 2024, va) for e, i, _, va in FIRMS_2023.itertuples(index=False)])
        emissions = pd.concat([monthly(EMISSIONS_2023, 2023), monthly(EMISSIONS_2023, 2024)])
        result = score_credits(emissions, pd.concat([FIRMS_2023, later]), 2024, 2023, POLICY).set_index("enterprise")
        assert_allclose(result.loc["A", "benchmark_t_per_10k_cny"], 1.44165, rtol=1e-12)
        assert_allclose(result.loc["A", "credits_tco2"], 1.44165 * 100 - 100, rtol=1e-12)

    def test_provisional_prorates_value_added(self):
        """With 3 months of data, value added counts 3/12: A's intensity stays 25/25 = 1.0."""
        result = score_credits(monthly(EMISSIONS_2023, 2023, months=3), FIRMS_2023, 2023, 2023, POLICY)
        a = result.set_index("enterprise").loc["A"]
        assert a.months_covered == 3 and a.provisional
        assert_allclose([a.value_added_used_10k_cny, a.emissions_tco2, a.intensity_t_per_10k_cny], [25.0, 25.0, 1.0])
        assert_allclose(a.credits_tco2, 1.5 * 25 - 25, rtol=1e-12)


class TestRating:
    def test_weighted_score(self):
        """Grade 2 (80), intensity -5 % (100), green 25 % (50), compliance 100, completeness 72.5 % (50):
        0.35 x 80 + 0.2 x 100 + 0.2 x 50 + 0.1 x 100 + 0.15 x 50 = 75.5 → B."""
        credits = pd.DataFrame(
            {
                "enterprise": ["A"],
                "grade": pd.array([2], dtype="Int64"),
                "intensity_t_per_10k_cny": [0.95],
                "rating_score": [math.nan],
                "rating": [""],
            }
        )
        out = rate(
            credits,
            POLICY,
            green_share=pd.Series({"A": 0.25}),
            previous_intensity=pd.Series({"A": 1.0}),
            completeness=pd.Series({"A": 0.725}),
        )
        assert_allclose(out.loc[0, "rating_score"], 75.5, rtol=1e-12)
        assert out.loc[0, "rating"] == "B"

    @pytest.mark.parametrize(("intensity", "expected"), [(1.0, 50.0), (1.0389, 0.0), (0.98055, 75.0)])
    def test_trend(self, intensity, expected):
        """Flat intensity scores 50, a rise by r scores 0, half of r's decline scores 75."""
        from scoring.rating import trend_score

        assert_allclose(trend_score(intensity, 1.0, POLICY), expected, atol=1e-9)


class TestNoSilentWrongNumber:
    """A month without data, value added 0 and a year before the base year, against hand computation."""

    def test_an_enterprise_missing_a_month_is_scored_on_its_months(self):
        """B has data for 11 months (no March): its value added is prorated to 11/12, its credits use
        the emissions of its 11 months, it is provisional and says which month it lacks; the others
        keep 12/12. Hand computation: C39 with A (100 t, VA 100), B (11/12 x 200 t, VA 100 x 11/12),
        C (300 t, VA 200): mean = (100 + 183.33 + 300) / (100 + 91.67 + 200)."""
        emissions = monthly(EMISSIONS_2023, 2023)
        emissions = emissions[~((emissions["enterprise"] == "B") & (emissions["period"] == "2023-03"))]
        result = score_credits(emissions, FIRMS_2023, 2023, 2023, POLICY).set_index("enterprise")
        e_b, va_b = 200.0 * 11 / 12, 100.0 * 11 / 12
        mean = (100.0 + e_b + 300.0) / (100.0 + va_b + 200.0)
        assert result.loc["B", "months_covered"] == 11 and result.loc["A", "months_covered"] == 12
        assert bool(result.loc["B", "provisional"]) and not bool(result.loc["A", "provisional"])
        assert_allclose(result.loc["B", "value_added_used_10k_cny"], va_b, rtol=1e-12)
        assert_allclose(result.loc["B", "credits_tco2"], mean * va_b - e_b, rtol=1e-12)
        assert_allclose(result.loc["A", "credits_tco2"], mean * 100.0 - 100.0, rtol=1e-12)
        assert "no data for 2023-03: scored on 11 months, value added prorated to 11/12" in result.loc["B", "note"]

    @pytest.mark.parametrize("value_added", [0.0, math.nan], ids=["zero", "missing"])
    def test_no_value_added_gives_no_credits(self, value_added):
        """Credits are never -E: without value added there is no intensity, no credits and no grade."""
        rows = FIRMS_2023.copy()
        rows.loc[rows["enterprise"] == "A", "value_added_10k_cny"] = value_added
        result = score_credits(monthly(EMISSIONS_2023, 2023), rows, 2023, 2023, POLICY).set_index("enterprise")
        assert math.isnan(result.loc["A", "credits_tco2"])
        assert pd.isna(result.loc["A", "grade"])
        assert "no value added for 2023" in result.loc["A", "note"]

    def test_a_year_before_the_base_year_is_an_error(self):
        emissions = pd.concat([monthly(EMISSIONS_2023, 2022), monthly(EMISSIONS_2023, 2023)])
        both = pd.concat([FIRMS_2023.assign(year=2022), FIRMS_2023])
        with pytest.raises(ValueError, match=r"^2022 is before the base year 2023: benchmarks start at the base year$"):
            score_credits(emissions, both, 2022, 2023, POLICY)
