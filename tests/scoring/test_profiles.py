"""Near-zero / zero-carbon profiles: thresholds against their documents, energy in tce by GB/T 2589-2020,
and every profile's indicators against values worked out by hand (rtol 1e-9), workshops on their
sub-meter boundary."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from scoring.accounting import Source, account
from scoring.energy import load_coefficients, tce, tce_from_ncv
from scoring.evaluation import Evaluation, evaluate, yearly_series
from scoring.factors import factor_set
from scoring.profiles import Fact, Facts, FactsError, ProfileError, load_facts, load_profile, profile_ids

RTOL = 1e-9
FACTORS = factor_set("cn-national-2023")  # grid 0.5306, residual 0.6096 t/MWh
EF_LOC, EF_RES = 0.5306, 0.6096
GAS_T_PER_10K_NM3 = 389.31 * 15.3 / 1000 * 0.99 * 44 / 12  # NCV x CC x OF x 44/12 = 21.6219 t/10^4 Nm3
HEAT_T_PER_GJ = 0.11
KGCE_KWH, KGCE_NM3, KGCE_MJ = 0.1229, 1.3300, 0.03412  # GB/T 2589 Annex A


# -- thresholds against the documents -------------------------------------------------------------------


def thresholds(profile_id: str) -> dict[str, object]:
    return {
        i.id: (i.thresholds_by_year if i.thresholds_by_year is not None else i.threshold)
        for i in load_profile(profile_id).indicators
    }


class TestThresholdsAgainstDocuments:
    def test_the_four_profiles_are_packaged(self):
        assert profile_ids() == [
            "hunan-zc-factory-2025",
            "jiangsu-nzc-park-2024",
            "sip-zc-factory-2026",
            "suzhou-nzc-factory-2023",
        ]

    def test_suzhou_2023(self):
        """Notice 申报条件 (二): 80 % of the year's GHG offset, three years of decline; (三) national or provincial."""
        t = thresholds("suzhou-nzc-factory-2023")
        assert t["offset_share"] == 0.80
        assert t["ghg_decline_3y"] == 3
        assert t["green_factory"] == ["national", "provincial"]
        assert t["management_systems"] is True and t["no_major_incidents_3y"] is True
        assert t["indicator_system"] is None  # 《苏州市"近零碳"工厂评价指标体系》 not retrieved
        profile = load_profile("suzhou-nzc-factory-2023")
        assert "80%" in profile.indicator("offset_share").clause
        assert "近三年" in profile.indicator("ghg_decline_3y").clause

    def test_sip_2026(self):
        """SIP notice: 100 % of categories 1 and 2 offset, provincial-or-better green factory."""
        t = thresholds("sip-zc-factory-2026")
        assert t["offset_share"] == 1.00
        assert t["green_factory"] == ["national", "provincial"]
        assert t["energy_efficiency"] == "yes" and t["zero_carbon_plan"] is True and t["clean_record_3y"] is True
        profile = load_profile("sip-zc-factory-2026")
        assert "100%" in profile.indicator("offset_share").clause
        assert "类别1和类别2" in profile.indicator("offset_share").clause
        assert profile.indicator("energy_efficiency").not_applicable_values == ["not_applicable"]

    def test_hunan(self):
        """湘工信节能〔2025〕458号 附件1: ≤ 1.25 / 0.87 / 0.37 tCO2e/tce, ≥ 35 / 55 / 80 %, footprint ≥ 6 % down."""
        t = thresholds("hunan-zc-factory-2025")
        assert t["emissions_per_energy"] == {2027: 1.25, 2030: 0.87, 2035: 0.37}
        assert t["renewable_share"] == {2027: 0.35, 2030: 0.55, 2035: 0.80}
        assert t["key_product_footprint"] == 0.06
        assert t["revenue_growth"] is True
        assert t["unit_product_energy"] is None  # annex row 5 cut off in the retrieved copy
        profile = load_profile("hunan-zc-factory-2025")
        clause = profile.indicator("emissions_per_energy").clause
        assert all(n in clause for n in ("1.25", "0.87", "0.37"))
        assert profile.documents["scheme"].date == "2025-12-19"

    def test_jiangsu_park(self):
        """Guide 绩效参考值: ≤ 0.35 tce/万元 (当量值), ≤ 0.6 tCO2/万元, ≥ 30 % renewable power incl. certificates,
        ≥ 50 % electrification."""
        t = thresholds("jiangsu-nzc-park-2024")
        assert t == {
            "energy_per_value_added": 0.35,
            "co2_per_value_added": 0.6,
            "renewable_electricity_share": 0.30,
            "electrification_rate": 0.50,
        }
        assert "当量值" in load_profile("jiangsu-nzc-park-2024").indicator("energy_per_value_added").clause

    @pytest.mark.parametrize("profile_id", profile_ids())
    def test_every_indicator_is_cited(self, profile_id):
        profile = load_profile(profile_id)
        for ind in profile.indicators:
            doc = profile.documents[ind.source]
            assert doc.found_at and doc.title and doc.date
            assert ind.clause
            assert (ind.threshold is None and ind.thresholds_by_year is None) == (ind.not_found is not None)

    def test_targets_by_year(self):
        ind = load_profile("hunan-zc-factory-2025").indicator("emissions_per_energy")
        assert [ind.threshold_for(y) for y in (2024, 2027, 2028, 2031, 2036)] == [
            (1.25, 2027),
            (1.25, 2027),
            (0.87, 2030),
            (0.37, 2035),
            (0.37, 2035),
        ]

    def test_a_profile_without_a_threshold_or_reason_is_refused(self, tmp_path):
        text = (
            (load_profile("jiangsu-nzc-park-2024").model_dump_json())
            .replace('"threshold":0.35', '"threshold":null')
            .replace(',"sha256":"', ',"x":"')
        )
        path = tmp_path / "p.yaml"
        path.write_text(text.split(',"x":"')[0] + "}")
        with pytest.raises(ProfileError, match="exactly one of threshold"):
            load_profile(path)


# -- energy (GB/T 2589-2020) ----------------------------------------------------------------------------


class TestEnergy:
    def test_coefficients_are_the_annex_values(self):
        c = load_coefficients().coefficients
        published = {
            "electricity": 0.1229,
            "natural_gas": 1.3300,
            "diesel": 1.4571,
            "gasoline": 1.4714,
            "lpg": 1.7143,
            "fuel_oil": 1.4286,
            "coal_bituminous": 0.7143,
            "coke": 0.9714,
            "heat": 0.03412,
        }
        assert {k: v.kgce_per_unit for k, v in c.items()} == published
        assert load_coefficients().kj_per_kgce == 29307
        assert load_coefficients().electricity_method == "equivalent"

    def test_each_coefficient_is_its_calorific_value_over_7000_kcal(self):
        """Annex A's coefficients are net calorific value / 7 000 kcal, rounded to 4 places."""
        for key, c in load_coefficients().coefficients.items():
            if c.ncv_kcal_per_unit is not None:
                assert round(c.ncv_kcal_per_unit / 7000, 4) == pytest.approx(c.kgce_per_unit, abs=1e-12), key
        assert round(1000 / 29307, 5) == 0.03412  # heat: 1 MJ over 29 307 kJ/kgce

    def test_tce_by_hand(self):
        assert_allclose(tce("grid_electricity", 1_000_000.0), 1_000_000 * 0.1229 / 1000, rtol=RTOL)
        assert_allclose(tce("natural_gas", 2.5), 2.5 * 10_000 * 1.3300 / 1000, rtol=RTOL)  # 10^4 Nm3
        assert_allclose(tce("natural_gas", 25_000.0, "Nm3"), 33.25, rtol=RTOL)
        assert_allclose(tce("diesel", 3.0), 3 * 1000 * 1.4571 / 1000, rtol=RTOL)
        assert_allclose(tce("lpg", 500.0, "kg"), 0.5 * 1.7143, rtol=RTOL)
        assert_allclose(tce("purchased_heat", 250.0), 250 * 1000 * 0.03412 / 1000, rtol=RTOL)  # GJ
        assert_allclose(tce("exported_heat", 10.0), -0.3412, rtol=RTOL)
        assert tce(Source.GREEN_ELECTRICITY_CERTIFIED, 1e6) == 0.0
        assert tce(Source.PV_EXPORTED, 1e6) == 0.0
        assert_allclose(tce("pv_self_consumed", 8137.0), 8137 * 0.1229 / 1000, rtol=RTOL)

    def test_measured_calorific_value(self):
        assert_allclose(tce_from_ncv(10_000.0, 36_000.0), 10_000 * 36_000 / 29_307 / 1000, rtol=RTOL)
        with pytest.raises(ValueError):
            tce_from_ncv(1.0, 0.0)


# -- evaluation against hand computations ---------------------------------------------------------------

# E1's year (totals; spread evenly over the months): grid 1.2 GWh, 2.4 x 10^4 Nm3 gas, 500 GJ heat,
# 300 MWh certificates, 100 MWh self-consumed PV. Grid draw falls by 100 MWh a year from 1.5 GWh in 2021.
# Workshop E1-W1 (sub-meters): 600 MWh grid with 100 MWh of its own certificates in 2024.
# E2: 100 MWh grid in six months of 2024 only.
E1_GRID = {2021: 1.5e6, 2022: 1.4e6, 2023: 1.3e6, 2024: 1.2e6}
W1_GRID = {2021: 0.8e6, 2022: 0.7e6, 2023: 0.65e6, 2024: 0.6e6}


def activity_rows() -> pd.DataFrame:
    rows = []
    for year, grid in E1_GRID.items():
        for m in range(1, 13):
            p = f"{year}-{m:02d}"
            rows += [
                ("E1", "", p, "grid_electricity", grid / 12, "kWh"),
                ("E1", "", p, "natural_gas", 24_000 / 12, "Nm3"),
                ("E1", "", p, "purchased_heat", 500 / 12, "GJ"),
                ("E1", "", p, "green_electricity_certified", 300_000 / 12, "kWh"),
                ("E1", "", p, "pv_self_consumed", 100_000 / 12, "kWh"),
                ("E1", "E1-W1", p, "grid_electricity", W1_GRID[year] / 12, "kWh"),
            ]
            if year == 2024:
                rows.append(("E1", "E1-W1", p, "green_electricity_certified", 100_000 / 12, "kWh"))
    for m in range(1, 7):
        rows.append(("E2", "", f"2024-{m:02d}", "grid_electricity", 100_000 / 6, "kWh"))
    return pd.DataFrame(rows, columns=["enterprise", "workshop", "period", "source", "quantity", "unit"])


EMISSIONS = account(activity_rows(), FACTORS)
FIRMS = pd.DataFrame(
    {"enterprise": ["E1", "E2"], "year": [2024, 2024], "value_added_10k_cny": [5000.0, 800.0]},
)

# Hand computation of E1 in 2024:
E1_S1 = 2.4 * GAS_T_PER_10K_NM3  # 51.89 t
E1_LOC = E1_S1 + 1200 * EF_LOC + 500 * HEAT_T_PER_GJ  # + 636.72 + 55
E1_MKT = E1_S1 + (1200 - 300) * EF_RES + 500 * HEAT_T_PER_GJ  # + 548.64 + 55
E1_TCE = (1_200_000 + 100_000) * KGCE_KWH / 1000 + 24_000 * KGCE_NM3 / 1000 + 500_000 * KGCE_MJ / 1000  # 208.75
E1_RENEWABLE_TCE = (100_000 + 300_000) * KGCE_KWH / 1000  # PV + certificates (≤ grid draw)
W1_LOC, W1_MKT = 600 * EF_LOC, (600 - 100) * EF_RES
W1_TCE = 600_000 * KGCE_KWH / 1000


def fact(enterprise: str, name: str, value: object, workshop: str = "", year: int = 2024) -> Fact:
    return Fact(
        enterprise=enterprise,
        workshop=workshop,
        year=year,
        fact=name,
        value=value,
        reviewed_by="park energy office",
        reviewed_on=dt.date(2025, 2, 1),
        evidence="test fixture",
    )


def row(evaluation: Evaluation, indicator: str, enterprise: str = "E1", workshop: str = "") -> pd.Series:
    t = evaluation.indicators
    match = t[(t["indicator"] == indicator) & (t["enterprise"] == enterprise) & (t["workshop"] == workshop)]
    assert len(match) == 1
    return match.iloc[0]


class TestSuzhou2023:
    FACTS = Facts(
        facts=[
            fact("E1", "offsets_retired_tco2", 200.0),
            fact("E1", "green_factory", "provincial"),
            fact("E1", "management_systems", True),
            fact("E1", "no_major_incidents_3y", False),
            fact("E2", "green_factory", "city"),
        ]
    )

    def evaluation(self) -> Evaluation:
        return evaluate(EMISSIONS, FIRMS, 2024, load_profile("suzhou-nzc-factory-2023"), FACTORS, self.FACTS)

    def test_offset_share_and_gap(self):
        """(300 MWh x 0.5306 + 200 t retired) / E_loc = 359.18 / 743.61; gap 0.8 E_loc − 359.18 = 235.7 t,
        or 235.7 / 0.5306 = 444.2 MWh of certificates."""
        r = row(self.evaluation(), "offset_share")
        offsets = 300 * EF_LOC + 200.0
        assert_allclose(r["value"], offsets / E1_LOC, rtol=RTOL)
        assert r["status"] == "fail"
        need = 0.8 * E1_LOC - offsets
        assert_allclose(r["gap_tco2"], need, rtol=RTOL)
        assert_allclose(r["gap"], 0.8 - offsets / E1_LOC, rtol=RTOL)
        assert r["action"] == f"offset {need:,.0f} t more, or add {need / EF_LOC:,.1f} MWh of certified green power"

    def test_decline_three_years(self):
        """E_loc falls by 100 MWh x 0.5306 = 53.06 t every year 2021-2024: three declines."""
        r = row(self.evaluation(), "ghg_decline_3y")
        assert r["value"] == 3.0 and r["status"] == "pass"

    def test_an_incomplete_year_is_unknown_and_a_reviewed_year_fills_it(self):
        ev = self.evaluation()
        r = row(ev, "ghg_decline_3y", "E2")
        assert r["status"] == "unknown" and "no complete year 2024 (6 months" in r["note"]
        # a reviewed history that does not decline fails, with the gap to last year
        facts = Facts(
            facts=[
                fact("E2", "annual_emissions_tco2", 60.0, year=2024),
                fact("E2", "annual_emissions_tco2", 50.0, year=2023),
            ]
        )
        r = row(
            evaluate(EMISSIONS, FIRMS, 2024, load_profile("suzhou-nzc-factory-2023"), FACTORS, facts),
            "ghg_decline_3y",
            "E2",
        )
        assert r["status"] == "fail" and r["value"] == 0.0
        assert_allclose(r["gap_tco2"], 60.0 - 50.0, rtol=RTOL)

    def test_facts(self):
        ev = self.evaluation()
        assert row(ev, "green_factory")["status"] == "pass"
        assert row(ev, "green_factory", "E2")["status"] == "fail"  # city level is not enough
        assert row(ev, "management_systems")["status"] == "pass"
        assert row(ev, "no_major_incidents_3y")["status"] == "fail"
        missing = row(ev, "management_systems", "E2")
        assert missing["status"] == "unknown" and missing["manual"]
        assert row(ev, "indicator_system")["status"] == "unknown"

    def test_summary(self):
        summary = self.evaluation().summary.set_index(["enterprise", "workshop"])
        assert summary.loc[("E1", ""), "status"] == "fail"
        assert summary.loc[("E1", ""), "threshold_not_found"] == 1

    def test_workshop_on_its_sub_meter_boundary(self):
        """E1-W1: its own 600 MWh and its own 100 MWh of certificates; no offsets retired for the workshop, so
        the share is a lower bound and unknown: 100 x 0.5306 / (600 x 0.5306)."""
        ev = self.evaluation()
        r = row(ev, "offset_share", "E1", "E1-W1")
        assert_allclose(r["value"], 100 / 600, rtol=RTOL)
        assert r["status"] == "unknown"
        assert_allclose(r["gap_tco2"], 0.8 * W1_LOC - 100 * EF_LOC, rtol=RTOL)
        assert "sub-meters" in r["boundary"]
        decline = row(ev, "ghg_decline_3y", "E1", "E1-W1")  # 800 > 700 > 650 > 600 MWh
        assert decline["status"] == "pass"
        inherited = row(ev, "green_factory", "E1", "E1-W1")
        assert inherited["status"] == "pass" and inherited["boundary"].startswith("the enterprise's")
        assert row(ev, "indicator_system", "E1", "E1-W1")["status"] == "n/a"


class TestSip2026:
    def test_offset_share_with_certificates_that_cannot_close_the_gap(self):
        """100 %: need E_loc − 300 x 0.5306 − 0 retired; certificates can still cover (1200 − 300) MWh x 0.5306."""
        facts = Facts(facts=[fact("E1", "offsets_retired_tco2", 0.0)])
        ev = evaluate(EMISSIONS, FIRMS, 2024, load_profile("sip-zc-factory-2026"), FACTORS, facts)
        r = row(ev, "offset_share")
        assert_allclose(r["value"], 300 * EF_LOC / E1_LOC, rtol=RTOL)
        need = E1_LOC - 300 * EF_LOC
        cover = 900 * EF_LOC
        assert need > cover
        assert_allclose(r["gap_tco2"], need, rtol=RTOL)
        assert f"at most {cover:,.0f} t" in r["action"]

    def test_workshop_gap_exactly_coverable_by_certificates(self):
        """E1-W1: 600 x 0.5306 − 100 x 0.5306 = 265.3 t = its 500 MWh of uncovered grid draw."""
        facts = Facts(facts=[fact("E1", "offsets_retired_tco2", 10.0, workshop="E1-W1")])
        ev = evaluate(EMISSIONS, FIRMS, 2024, load_profile("sip-zc-factory-2026"), FACTORS, facts)
        r = row(ev, "offset_share", "E1", "E1-W1")
        assert_allclose(r["value"], (100 * EF_LOC + 10.0) / W1_LOC, rtol=RTOL)
        assert r["status"] == "fail"
        assert_allclose(r["gap_tco2"], W1_LOC - 100 * EF_LOC - 10.0, rtol=RTOL)
        assert r["action"].endswith(f"or add {(500 * EF_LOC - 10.0) / EF_LOC:,.1f} MWh of certified green power")

    def test_not_applicable_efficiency(self):
        facts = Facts(facts=[fact("E1", "energy_efficiency_advanced", "not_applicable")])
        ev = evaluate(EMISSIONS, FIRMS, 2024, load_profile("sip-zc-factory-2026"), FACTORS, facts, enterprise="E1")
        assert row(ev, "energy_efficiency")["status"] == "n/a"
        assert set(ev.indicators["enterprise"]) == {"E1"}


class TestHunan:
    def evaluation(self, facts: Facts | None = None) -> Evaluation:
        return evaluate(EMISSIONS, FIRMS, 2024, load_profile("hunan-zc-factory-2025"), FACTORS, facts)

    def test_emissions_per_energy(self):
        """E_mkt / tce = 655.53 / 208.75 against 1.25 (2027 target); gap E_mkt − 1.25 x 208.75, or that over
        0.6096 t/MWh of certificates."""
        r = row(self.evaluation(), "emissions_per_energy")
        assert_allclose(r["value"], E1_MKT / E1_TCE, rtol=RTOL)
        assert r["threshold"] == 1.25 and r["target_year"] == 2027
        excess = E1_MKT - 1.25 * E1_TCE
        assert_allclose(r["gap_tco2"], excess, rtol=RTOL)
        assert r["action"].endswith(f"or add {excess / EF_RES:,.1f} MWh of certified green power")

    def test_renewable_share(self):
        """(100 MWh PV + 300 MWh certificates) x 0.1229 / 208.75 tce; missing (0.35 x 208.75 − 49.16) tce."""
        r = row(self.evaluation(), "renewable_share")
        assert_allclose(r["value"], E1_RENEWABLE_TCE / E1_TCE, rtol=RTOL)
        assert r["status"] == "fail"
        missing_kwh = (0.35 * E1_TCE - E1_RENEWABLE_TCE) / (KGCE_KWH / 1000)
        assert r["action"].startswith(f"add {missing_kwh / 1000:,.1f} MWh")

    def test_footprint(self):
        """1 − 9.3 / 10.0 = 7 % ≥ 6 %."""
        facts = Facts(
            facts=[fact("E1", "key_product_footprint_base", 10.0), fact("E1", "key_product_footprint_current", 9.3)]
        )
        r = row(self.evaluation(facts), "key_product_footprint")
        assert_allclose(r["value"], 1 - 9.3 / 10.0, rtol=RTOL)
        assert r["status"] == "pass"
        assert row(self.evaluation(), "key_product_footprint")["status"] == "unknown"

    def test_workshop(self):
        """E1-W1: (600 − 100) MWh x 0.6096 over 600 MWh x 0.1229 kgce/kWh."""
        r = row(self.evaluation(), "emissions_per_energy", "E1", "E1-W1")
        assert_allclose(r["value"], W1_MKT / W1_TCE, rtol=RTOL)
        share = row(self.evaluation(), "renewable_share", "E1", "E1-W1")
        assert_allclose(share["value"], 100_000 * KGCE_KWH / 1000 / W1_TCE, rtol=RTOL)


class TestJiangsuPark:
    def test_park_indicators(self):
        """Park = E1 (12 months, VA 5000) + E2 (6 months, VA 800 prorated to 400)."""
        ev = evaluate(EMISSIONS, FIRMS, 2024, load_profile("jiangsu-nzc-park-2024"), FACTORS)
        assert list(ev.summary["enterprise"]) == ["PARK"]
        va = 5000 + 800 * 6 / 12
        e2_tce = 100_000 * KGCE_KWH / 1000
        assert_allclose(row(ev, "energy_per_value_added", "PARK")["value"], (E1_TCE + e2_tce) / va, rtol=RTOL)
        assert_allclose(row(ev, "co2_per_value_added", "PARK")["value"], (E1_LOC + 100 * EF_LOC) / va, rtol=RTOL)
        share = row(ev, "renewable_electricity_share", "PARK")
        assert_allclose(share["value"], (100_000 + 300_000) / (1_200_000 + 100_000 + 100_000), rtol=RTOL)
        assert share["status"] == "fail"  # 28.6 % < 30 %: 0.30 x 1.4 GWh − 400 MWh = 20 MWh short
        assert share["action"].startswith("add 20.0 MWh of certified green power")
        electrification = row(ev, "electrification_rate", "PARK")
        electricity_tce = (1_200_000 + 100_000 + 100_000) * KGCE_KWH / 1000
        assert_allclose(electrification["value"], electricity_tce / (E1_TCE + e2_tce), rtol=RTOL)
        assert electrification["status"] == "pass"

    def test_one_enterprise_against_the_park_values(self):
        ev = evaluate(EMISSIONS, FIRMS, 2024, load_profile("jiangsu-nzc-park-2024"), FACTORS, enterprise="E1")
        r = row(ev, "co2_per_value_added")
        assert_allclose(r["value"], E1_LOC / 5000, rtol=RTOL)


class TestSeriesAndInputs:
    def test_yearly_series(self):
        from scoring.evaluation import annual_totals

        series = yearly_series(annual_totals(EMISSIONS))
        e1 = series[(series["enterprise"] == "E1") & (series["workshop"] == "")]
        assert_allclose(e1["change_tco2"].iloc[1:], [-100 * EF_LOC] * 3, rtol=RTOL)
        assert list(e1["declined"].iloc[1:]) == [True, True, True]

    def test_mixed_factor_sets_are_refused(self):
        with pytest.raises(ValueError, match="no mixed factors"):
            evaluate(EMISSIONS, FIRMS, 2024, load_profile("sip-zc-factory-2026"), factor_set("cn-national-2022"))

    def test_facts_must_be_reviewed_and_typed(self, tmp_path):
        path = tmp_path / "facts.yaml"
        path.write_text("facts:\n  - {enterprise: E1, year: 2024, fact: green_factory, value: provincial}\n")
        with pytest.raises(FactsError, match="reviewed_by"):
            load_facts(path)
        path.write_text(
            "facts:\n  - {enterprise: E1, year: 2024, fact: green_factory, value: gold, reviewed_by: ab,"
            " reviewed_on: 2025-01-01, evidence: list}\n"
        )
        with pytest.raises(FactsError, match="one of national"):
            load_facts(path)
        path.write_text(
            "facts:\n" + "  - {enterprise: E1, year: 2024, fact: offsets_retired_tco2, value: 5, reviewed_by: ab,"
            " reviewed_on: 2025-01-01, evidence: cert}\n" * 2
        )
        with pytest.raises(FactsError, match="given twice"):
            load_facts(path)
