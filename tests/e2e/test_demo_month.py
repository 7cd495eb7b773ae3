"""The whole path on real services: simulated park → Mosquitto → collector process → InfluxDB →
carbon_monthly with dag.test() → results, checked against the simulator's ground truth."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from park.measurements import (
    ACTIVITY_MONTHLY,
    CREDITS,
    EMISSIONS_BY_SOURCE,
    EMISSIONS_MONTHLY,
    NEAR_ZERO_PROGRESS,
    NEARZERO_EVALUATION,
)
from park.month import Month, read_month
from park.registry import DEFAULT_TIMEZONE
from park.settings import Settings
from park.store import InfluxStore
from parkcarbon.demo import DemoResult, run_demo, truth_by_enterprise
from parkcarbon.runtime import settings_for_run_dir
from parkcarbon.services import LocalServices
from pipeline.monthly import compute_activity, compute_scores
from tests.browser import render

pytestmark = [pytest.mark.services, pytest.mark.airflow]

PERIOD = "2026-02"  # 28 days with the Spring Festival holiday in it
GAS_T_PER_10K_NM3 = 389.31 * 0.0153 * 0.99 * 44 / 12  # NDRC defaults, GB/T 32150 formula
GRID_T_PER_MWH = 0.5306  # MEE/NBS 2023 national average (cn-national-2023)
HEAT_T_PER_GJ = 0.11  # NDRC guideline default


@pytest.fixture(scope="module")
def demo(tmp_path_factory, airflow_home) -> Iterator[tuple[DemoResult, Settings]]:
    import os

    saved = dict(os.environ)
    settings = Settings(run_dir=tmp_path_factory.mktemp("demo"))
    try:
        yield run_demo(settings, PERIOD, seed=7), settings_for_run_dir(settings)
    finally:
        LocalServices(settings.run_dir).down()
        os.environ.clear()
        os.environ.update(saved)


def test_every_reading_was_published_and_stored(demo):
    """64 registers (4 of them from Tasmota, Shelly and DL/T 645 gateways) x (28 days x 96 + 1) readings
    went through MQTT and the collector."""
    result, _ = demo
    assert result.readings == 64 * (28 * 96 + 1)


def test_the_demo_writes_the_platforms_logins(demo):
    """After the demo a person can log in: a park admin, a viewer and an admin per enterprise, private."""
    import json
    import stat

    result, _ = demo
    logins = json.loads(result.logins.path.read_text())
    assert stat.S_IMODE(result.logins.path.stat().st_mode) == 0o600
    assert set(logins) == {"park-admin", "park-viewer", *(f"e{n:02d}-admin" for n in range(1, 13))}
    assert all(len(login["password"]) >= 16 for login in logins.values())


def test_activity_matches_ground_truth(demo):
    """Each enterprise's grid kWh and gas Nm3 equal the simulator's main-meter truth."""
    result, _ = demo
    truth = truth_by_enterprise(result.truth, PERIOD)
    table = result.table.set_index("enterprise")
    assert_allclose(table["grid_kwh"], truth["grid_kwh"].reindex(table.index), rtol=1e-12)
    assert_allclose(table["gas_nm3"], truth["gas_nm3"].reindex(table.index).fillna(0.0), rtol=1e-12)


def test_emissions_match_hand_formula(demo):
    """tCO2 = kWh/1000 x 0.5306 + Nm3/10^4 x 21.6219 + GJ x 0.11, from the truth, per enterprise."""
    result, _ = demo
    main = result.truth[(result.truth["month"] == PERIOD) & (result.truth["role"] == "main")]
    heat = main[main["carrier"] == "heat"].groupby("enterprise")["consumption"].sum()
    truth = truth_by_enterprise(result.truth, PERIOD)
    expected = (
        truth["grid_kwh"] / 1000 * GRID_T_PER_MWH
        + truth["gas_nm3"] / 1e4 * GAS_T_PER_10K_NM3
        + heat.reindex(truth.index).fillna(0.0) * HEAT_T_PER_GJ
    )
    table = result.table.set_index("enterprise")
    assert_allclose(table["tco2_month"], expected.reindex(table.index), rtol=1e-12)
    assert heat.index.tolist() == ["E08"]


def test_emissions_by_source_trace_every_tonne(demo):
    """Each enterprise's lines per source (emissions_by_source) carry the truth's quantities at the cited
    factors, and add up to emissions_monthly's scopes."""
    result, settings = demo
    truth = truth_by_enterprise(result.truth, PERIOD)
    with InfluxStore(settings.influx) as store:
        month = Month.of(PERIOD, DEFAULT_TIMEZONE)
        lines = read_month(store, EMISSIONS_BY_SOURCE, month)
        scopes = read_month(store, EMISSIONS_MONTHLY, month)
    own = lines[lines["workshop"] == ""]
    grid = own[own["source"] == "grid_electricity"].set_index("enterprise")
    assert_allclose(grid["quantity"], truth["grid_kwh"].reindex(grid.index) / 1000, rtol=1e-12)  # MWh, no export
    assert set(grid["factor_location_t_per_unit"]) == {GRID_T_PER_MWH} and set(grid["unit"]) == {"MWh"}
    gas = own[own["source"] == "natural_gas"].set_index("enterprise")
    assert_allclose(gas["tco2_location"], truth["gas_nm3"].reindex(gas.index) / 1e4 * GAS_T_PER_10K_NM3, rtol=1e-12)
    summed = lines.groupby(["enterprise", "workshop", "scope"])[["tco2_location", "tco2_market"]].sum()
    stored = scopes[scopes["scope"] != "total"].set_index(["enterprise", "workshop", "scope"])
    summed = summed.reindex(stored.index).fillna(0.0)
    assert_allclose(summed["tco2_location"], stored["tco2_location"], rtol=1e-9, atol=1e-9)
    assert_allclose(summed["tco2_market"], stored["tco2_market"], rtol=1e-9, atol=1e-9)


def test_nearzero_evaluation_follows_the_registry(demo):
    """The monthly DAG evaluates the registry's profiles (demo: Suzhou for every enterprise but E05, which
    names Hunan's; Jiangsu's park set for the park) and stores exactly what scoring.evaluation gives."""
    from pipeline.monthly import score_inputs, score_through
    from scoring.evaluation import PARK, evaluate
    from scoring.profiles import load_profile

    _, settings = demo
    month = Month.of(PERIOD, DEFAULT_TIMEZONE)
    with InfluxStore(settings.influx) as store:
        stored = read_month(store, NEARZERO_EVALUATION, month)
        inputs = score_inputs(settings)
        result = score_through(settings, store, month, inputs)
    assert result is not None
    own = stored[stored["workshop"] == ""]
    by_profile = own.groupby("profile")["enterprise"].agg(lambda e: sorted(set(e))).to_dict()
    enterprises = sorted(e.id for e in inputs.registry.enterprises)
    assert by_profile == {
        "suzhou-nzc-factory-2023": [e for e in enterprises if e != "E05"],
        "hunan-zc-factory-2025": ["E05"],
        "jiangsu-nzc-park-2024": [""],  # the park
    }
    for profile_id in by_profile:
        expected = evaluate(result.emissions, inputs.enterprises, 2026, load_profile(profile_id), inputs.factors)
        rows = expected.indicators.replace({"enterprise": {PARK: ""}})
        mine = stored[stored["profile"] == profile_id]
        rows = rows[rows["enterprise"].isin(set(mine["enterprise"]))]
        key = ["enterprise", "workshop", "indicator"]
        assert len(mine) == len(rows)
        merged = mine.merge(rows, on=key, suffixes=("", "_expected"))
        assert (merged["status"] == merged["status_expected"]).all()
        numeric = merged["value_expected"].map(lambda v: isinstance(v, float) and v == v)
        assert_allclose(merged.loc[numeric, "value"], merged.loc[numeric, "value_expected"].astype(float), rtol=1e-12)
    assert set(stored["status"]) <= {"pass", "fail", "unknown", "n/a"}
    assert (stored["provisional"]).all() and set(stored["months"]) == {1}  # the demo simulates February only
    # The report's pages show them: each enterprise its own profile with the stored counts, the park its set.
    for enterprise, profile_id in (("E01", "suzhou-nzc-factory-2023"), ("E05", "hunan-zc-factory-2025")):
        rows = stored[(stored["enterprise"] == enterprise) & (stored["profile"] == profile_id)]
        page = (result_dir(demo) / "enterprises" / f"{enterprise}.html").read_text(encoding="utf-8")
        failed, unknown = int((rows["status"] == "fail").sum()), int((rows["status"] == "unknown").sum())
        assert f"{profile_id}: {failed} failed, {unknown} unknown of {len(rows)}" in page
    assert "jiangsu-nzc-park-2024" in (result_dir(demo) / "index.html").read_text(encoding="utf-8")
    # ... and `parkcarbon nearzero --profile ID --enterprise E` prints them, from InfluxDB, without files.
    import subprocess
    import sys

    rows = stored[(stored["enterprise"] == "E01") & (stored["profile"] == "suzhou-nzc-factory-2023")]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKCARBON_")}
    shown = subprocess.run(
        [sys.executable, "-m", "parkcarbon", "nearzero", "--profile", "suzhou-nzc-factory-2023", "--enterprise", "E01"],
        env=env | {"PARKCARBON_RUN_DIR": str(settings.run_dir)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    own = rows[rows["workshop"] == ""]["status"].value_counts()
    assert f"E01: {own.get('pass', 0)} pass, {own.get('fail', 0)} fail, {own.get('unknown', 0)} unknown" in shown.stdout
    assert f"suzhou-nzc-factory-2023 — 2026 to {PERIOD}" in shown.stdout


def result_dir(demo):
    return demo[0].report_dir


def test_reviewed_facts_adjust_the_rating(demo, tmp_path):
    """A reviewed fact (E01 a national green factory in 2026, settings.facts) reaches the rating: +5 points
    and the reason; the month re-run without it goes back to the stored rating."""
    _, settings = demo
    month = Month.of(PERIOD, DEFAULT_TIMEZONE)
    facts = tmp_path / "facts.yaml"
    facts.write_text(
        "facts:\n- {enterprise: E01, year: 2026, fact: green_factory, value: national, reviewed_by: park office,"
        " reviewed_on: 2026-03-02, evidence: MIIT green factory list 2025}\n",
        encoding="utf-8",
    )

    def e01() -> dict:
        with InfluxStore(settings.influx) as store:
            credits = read_month(store, CREDITS, month)
        return credits.set_index("enterprise").loc["E01"].to_dict()

    before = e01()
    try:
        compute_scores(settings.model_copy(update={"facts": facts}), PERIOD)
        after = e01()
    finally:
        compute_scores(settings, PERIOD)
    assert after["rating_score"] == pytest.approx(min(before["rating_score"] + 5, 100), abs=1e-9)
    assert "green factory (national) +5" in after["rating_reasons"]
    assert "green factory" not in before["rating_reasons"] and e01()["rating_score"] == before["rating_score"]


def test_credits_grades_and_progress(demo):
    """Base year: an industry with its own mean has credits summing to zero; grades 1-5; progress rows."""
    result, settings = demo
    table = result.table
    for industry in ("C39", "C34", "C26"):
        assert_allclose(table.loc[table["industry"] == industry, "credits_tco2"].sum(), 0.0, atol=1e-6)
    assert set(table["grade"].astype(int)) <= {1, 2, 3, 4, 5}
    assert set(table["rating"]) <= set("ABCDE")
    with InfluxStore(settings.influx) as store:
        progress = read_month(store, NEAR_ZERO_PROGRESS, Month.of(PERIOD, DEFAULT_TIMEZONE))
    targets = progress[progress["target"].notna()]
    assert len(targets) == 5
    assert targets["offset_ratio"].between(0, 2).all()
    assert (result.report_dir / "summary.txt").exists()


def test_rerun_is_idempotent(demo):
    """Running the month's tasks again replaces its points with identical ones."""
    _, settings = demo
    month = Month.of(PERIOD, DEFAULT_TIMEZONE)
    with InfluxStore(settings.influx) as store:
        before = {m: read_month(store, m, month) for m in (ACTIVITY_MONTHLY, EMISSIONS_MONTHLY, CREDITS)}
    compute_activity(settings, PERIOD)
    compute_scores(settings, PERIOD)
    with InfluxStore(settings.influx) as store:
        for measurement, frame in before.items():
            after = read_month(store, measurement, month)
            key = [c for c in ("enterprise", "workshop", "source", "scope") if c in frame]
            pd.testing.assert_frame_equal(
                frame.sort_values(key).reset_index(drop=True), after.sort_values(key).reset_index(drop=True)
            )


def test_reports_open_in_a_browser(demo, tmp_path):
    """Headless Chromium renders the park report with its charts; the bars show the stored credits, and
    each enterprise page names the factor and its source and explains the rating."""
    result, _ = demo
    index = result.report_dir / "index.html"
    dom = render(index, tmp_path / "park.png")
    charts = re.findall(r'<svg[^>]*class="chart"', dom)
    assert len(charts) == 5  # emissions, credits, grades; the last 12 months' emissions and credits
    bars = re.findall(r'<rect class="bar" data-series="([^"]+)" data-label="([^"]+)" data-value="([^"]+)"', dom)
    credits = {label: float(value) for series, label, value in bars if series.startswith("credits")}
    stored = result.table.set_index("enterprise")["credits_tco2"]
    assert credits == pytest.approx(stored.to_dict(), rel=1e-12)
    grades = {label: float(value) for series, label, value in bars if series.startswith("enterprises")}
    assert sum(grades.values()) == len(stored)
    png = (tmp_path / "park.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000  # a rendered page, not a blank one
    assert 'href="enterprises/E01.html"' in dom

    page = render(result.report_dir / "enterprises" / "E08.html", tmp_path / "e08.png")
    assert "0.5306 tCO2/MWh" in page and "21.6219 tCO2/10^4 Nm3" in page  # cn-national-2023, NDRC gas defaults
    assert "MEE" in page or "生态环境部" in page  # the grid factor's publisher
    assert "carbon efficiency" in page and "×35%" in page  # the rating's dimensions and weights
    assert re.search(r'<svg[^>]*class="chart"', page)
