"""The ``parkcarbon score`` contract: files in, CSVs and run.json out, every bad row reported."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from parkcarbon.cli import main

ENTERPRISES = """enterprise,name,industry,year,value_added_10k_cny
E1,One,C39,2023,1000
E2,Two,C39,2023,2000
E3,Three,C39,2023,1500
E4,Four,C26,2023,800
"""


def write_activity(path: Path, extra: str = "") -> Path:
    rows = ["enterprise,period,source,quantity,unit,workshop"]
    for m in (1, 2):
        rows += [
            f"E1,2023-0{m},grid_electricity,100,MWh,",
            f"E1,2023-0{m},natural_gas,10000,Nm3,",
            f"E1,2023-0{m},grid_electricity,40000,kWh,E1-W1",
            f"E1,2023-0{m},green_electricity_certified,50000,kWh,E1-W1",
            f"E2,2023-0{m},grid_electricity,300000,kWh,",
            f"E3,2023-0{m},diesel,5,t,",
            f"E3,2023-0{m},grid_electricity,0.2,GWh,",
            f"E4,2023-0{m},purchased_heat,500,GJ,",
        ]
    path.write_text("\n".join(rows) + "\n" + extra)
    return path


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    e = tmp_path / "E.csv"
    e.write_text(ENTERPRISES)
    return write_activity(tmp_path / "A.csv"), e


def score(a: Path, e: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "score",
            "--activity",
            str(a),
            "--enterprises",
            str(e),
            "--year",
            "2023",
            "--factor-set",
            "cn-national-2023",
            "--out",
            str(out),
            *extra,
        ]
    )


class TestScoreCommand:
    def test_outputs(self, inputs, tmp_path):
        """emissions.csv has the contract's columns, hand-checked values and every month of the year."""
        out = tmp_path / "out"
        assert score(*inputs, out) == 0
        em = pd.read_csv(out / "emissions.csv")
        assert list(em.columns[:7]) == [
            "enterprise",
            "period",
            "scope1_tco2",
            "scope2_location_tco2",
            "scope2_market_tco2",
            "total_location_tco2",
            "total_market_tco2",
        ]
        e1 = em[(em.enterprise == "E1") & (em.period == "2023-01")].iloc[0]
        assert_allclose(e1.scope2_location_tco2, 100 * 0.5306, rtol=1e-12)
        assert_allclose(e1.scope1_tco2, 389.31 * 0.0153 * 0.99 * 44 / 12, rtol=1e-12)
        assert sorted(em.period.unique()) == ["2023-01", "2023-02"]
        cr = pd.read_csv(out / "credits.csv", dtype={"policy_version": str})
        assert list(cr.columns[:12]) == [
            "enterprise",
            "year",
            "industry",
            "emissions_tco2",
            "value_added_10k_cny",
            "intensity_t_per_10k_cny",
            "benchmark_t_per_10k_cny",
            "credits_tco2",
            "k_ratio",
            "grade",
            "rating_score",
            "rating",
        ]
        assert set(cr.rating) <= set("ABCDE") and cr.grade.between(1, 5).all()
        assert (cr.policy_version == "2026.1").all() and (cr.factor_set == "cn-national-2023").all()
        ws = pd.read_csv(out / "near_zero.csv").set_index("workshop", drop=False)
        # E1-W1: 40 MWh drawn, 50 MWh certified → offset (50 x 0.5306) / (40 x 0.5306) = 1.25
        assert_allclose(ws.loc["E1-W1", "offset_ratio"], 1.25, rtol=1e-12)
        assert ws.loc["E1-W1", "status"] == "zero-carbon"

    def test_deterministic(self, inputs, tmp_path):
        """Two runs on the same inputs write byte-identical files."""
        assert score(*inputs, tmp_path / "a") == 0
        assert score(*inputs, tmp_path / "b") == 0
        for name in ("emissions.csv", "credits.csv", "near_zero.csv", "workshop_emissions.csv", "run.json"):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    def test_bad_rows_all_reported(self, inputs, tmp_path, capsys):
        """Every bad row is printed with file, row, column and reason; exit 2; nothing written."""
        a, e = inputs
        write_activity(
            a,
            "E1,2023-13,grid_electricity,1,kWh,\nE9,2023-01,grid_electricity,1,kWh,\n"
            "E1,2023-01,coal,1,t,\nE1,2023-01,grid_electricity,-5,kWh,\nE1,2023-01,natural_gas,7,kWh,\n"
            "E1,2023-01,grid_electricity,abc,kWh,\nE1,2023-01,natural_gas,10,m3,\n",
        )
        assert score(a, e, tmp_path / "out") == 2
        err = capsys.readouterr().err
        for expected in (
            "A.csv: row 18: period: '2023-13' is not a month",
            "row 19: enterprise: unknown enterprise 'E9'",
            "row 20: source: unknown source 'coal'",
            "row 21: quantity: negative",
            "row 22: unit: cannot convert kWh",
            "row 23: quantity: 'abc' is not a number",
            "row 24: unit: gas in m3 as metered needs",
            "7 bad row(s)",
        ):
            assert expected in err
        assert not (tmp_path / "out" / "credits.csv").exists()

    def test_skip_bad_rows(self, inputs, tmp_path):
        """--skip-bad-rows scores the rest and lists what it skipped in run.json."""
        a, e = inputs
        write_activity(a, "E1,2023-13,grid_electricity,1,kWh,\n")
        assert score(a, e, tmp_path / "out", "--skip-bad-rows") == 0
        assert "row 18: period" in (tmp_path / "out" / "run.json").read_text()

    def test_excel_equals_csv(self, inputs, tmp_path):
        """The same rows from Excel (periods typed as dates, as Excel does) give the same emissions."""
        a, e = inputs
        frame = pd.read_csv(a, dtype=str, keep_default_na=False)
        frame["period"] = pd.to_datetime(frame["period"] + "-01")
        frame["quantity"] = frame["quantity"].astype(float)
        frame.to_excel(tmp_path / "A.xlsx", index=False)
        assert score(a, e, tmp_path / "csv") == 0
        assert score(tmp_path / "A.xlsx", e, tmp_path / "xlsx") == 0
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "csv" / "emissions.csv").drop(columns="inputs_sha256"),
            pd.read_csv(tmp_path / "xlsx" / "emissions.csv").drop(columns="inputs_sha256"),
        )

    def test_bad_enterprise_rows(self, inputs, tmp_path, capsys):
        """A bad industry code or year in E.csv is reported like an activity row."""
        a, e = inputs
        e.write_text(ENTERPRISES + "E5,Five,chemical,20x3,12\n")
        assert score(a, e, tmp_path / "out") == 2
        err = capsys.readouterr().err
        assert "E.csv: row 6: industry: 'chemical' is not a GB/T 4754" in err
        assert "E.csv: row 6: year: '20x3' is not a year" in err


class TestPolicy:
    def test_market_based_basis(self, inputs, tmp_path):
        """A policy with credits_basis: market scores E1's market-based total (certificates count)."""
        from importlib import resources

        text = resources.files("scoring").joinpath("data/policy.yaml").read_text(encoding="utf-8")
        policy = tmp_path / "p.yaml"
        policy.write_text(text.replace("credits_basis: location", "credits_basis: market").replace('"2026.1"', '"m-1"'))
        assert score(*inputs, tmp_path / "loc") == 0
        assert score(*inputs, tmp_path / "mkt", "--policy", str(policy)) == 0
        em = pd.read_csv(tmp_path / "mkt" / "emissions.csv").set_index(["enterprise", "period"])
        market = pd.read_csv(tmp_path / "mkt" / "credits.csv").set_index("enterprise")
        location = pd.read_csv(tmp_path / "loc" / "credits.csv").set_index("enterprise")
        assert_allclose(market.loc["E1", "emissions_tco2"], em.loc["E1", "total_market_tco2"].sum(), rtol=1e-12)
        assert market.loc["E1", "emissions_tco2"] != location.loc["E1", "emissions_tco2"]
        assert (market["policy_version"].astype(str) == "m-1").all()

    def test_invalid_policy(self, inputs, tmp_path, capsys):
        """Rating weights that do not add up to 100 are refused with the reason."""
        policy = tmp_path / "bad.yaml"
        policy.write_text("version: x\nbenchmark_decline_rate: 0.03\n")
        assert score(*inputs, tmp_path / "o", "--policy", str(policy)) == 2
        assert "invalid policy" in capsys.readouterr().err


class TestOneBaseYearRule:
    def test_base_year_is_the_first_year_with_activity_and_value_added(self, inputs, tmp_path):
        """Value added from 2021 on, activity only in 2023: the base year is 2023, as in the pipeline
        (scoring.credits.base_year_of), not the earliest year of the enterprises file."""
        import json

        activity, enterprises = inputs
        earlier = "".join(line.replace(",2023,", ",2021,") + "\n" for line in ENTERPRISES.splitlines()[1:])
        enterprises.write_text(ENTERPRISES + earlier)
        assert score(activity, enterprises, tmp_path / "out") == 0
        assert json.loads((tmp_path / "out" / "run.json").read_text())["base_year"] == 2023

    def test_a_year_before_the_base_year_is_refused(self, inputs, tmp_path, capsys):
        activity, enterprises = inputs
        code = score(activity, enterprises, tmp_path / "out", "--base-year", "2024")
        assert code == 2
        assert "2023 is before the base year 2024" in capsys.readouterr().err
