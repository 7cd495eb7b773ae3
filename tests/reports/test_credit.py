"""The credit report (reports/credit.py): its JSON keeps numbers as numbers and missing figures as
null, the trend and validity follow their stated rules, and the HTML escapes every text and loads
nothing from anywhere."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from datetime import date

from reports.credit import SCHEMA, CreditInputs, MonthPoint, to_html, to_json, valid_until

BASE = CreditInputs(
    enterprise_id="ALPHA",
    enterprise_name="Alpha <script>alert(1)</script> Optics",
    industry="C39",
    year=2025,
    settled=True,
    latest_period="2025-12",
    grade=2,
    rating="B",
    rating_score=71.5,
    intensity_t_per_10k_cny=0.9,
    benchmark_t_per_10k_cny=1.2,
    emissions_tco2=820.0,
    credits_tco2=123.45,
    previous_year_intensity_t_per_10k_cny=1.0,
    months=[
        MonthPoint("2025-01", 1.1, 70.0),
        MonthPoint("2025-02", float("nan"), None),
        MonthPoint("2025-03", 0.95, 68.0),
    ],
    green_share=0.125,
    completeness=0.985,
    months_with_data=12,
    policy_version="p1",
    factor_set="cn-2024",
    inputs_sha256="ab" * 32,
    result_version=3,
    result_state="final",
    credit_validity_years=3,
)


class TestJson:
    def test_figures_are_numbers_and_missing_ones_null(self):
        """The JSON round-trips; a NaN month is null, not NaN (which JSON has not)."""
        data = json.loads(json.dumps(to_json(BASE), allow_nan=False))
        assert data["schema"] == SCHEMA and data["status"] == "settled"
        assert data["grade"] == 2 and data["credits_tco2"] == 123.45 and data["green_share"] == 0.125
        assert [m["intensity_ytd_t_per_10k_cny"] for m in data["intensity"]["monthly_ytd"]] == [1.1, None, 0.95]
        assert data["result_version"] == 3 and data["result_state"] == "final"
        assert data["provenance"]["inputs_sha256"] == "ab" * 32
        assert data["validity"]["credit_validity_years"] == 3

    def test_the_trend_is_against_the_previous_year_else_within_the_year(self):
        intensity = to_json(BASE)["intensity"]
        assert math.isclose(intensity["change_from_previous_year_pct"], (0.9 - 1.0) / 1.0 * 100)  # -10 %
        assert intensity["trend"] == "falling"
        within = to_json(replace(BASE, previous_year_intensity_t_per_10k_cny=None))["intensity"]
        assert within["change_from_previous_year_pct"] is None
        assert within["trend"] == "falling"  # 1.1 in January → 0.95 in March: -13.6 %
        rising = to_json(replace(BASE, previous_year_intensity_t_per_10k_cny=0.8))["intensity"]
        assert rising["trend"] == "rising"
        alone = to_json(
            replace(BASE, previous_year_intensity_t_per_10k_cny=None, months=[MonthPoint("2025-01", 1.0, 1.0)])
        )
        assert alone["intensity"]["trend"] is None

    def test_validity(self):
        """Settled: the end of the following year; provisional: the end of the month after the latest."""
        assert to_json(BASE)["validity"]["valid_until"] == "2026-12-31"
        assert valid_until(2026, False, "2026-01") == date(2026, 2, 28)
        assert valid_until(2028, False, "2028-01") == date(2028, 2, 29)
        assert valid_until(2026, False, "2026-12") == date(2027, 1, 31)


class TestHtml:
    def test_every_text_is_escaped_and_nothing_is_loaded(self):
        page = to_html(BASE)
        assert "<script>" not in page and "&lt;script&gt;" in page
        assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)
        assert 'id="inputs-sha256">' + "ab" * 32 in page
        assert '<span class="grade" id="grade">2</span>' in page
        assert "12.5 %" in page and "98.5 %" in page and "2026-12-31" in page
