"""The whole path on real services: simulated park → Mosquitto → collector process → InfluxDB →
carbon_monthly with dag.test() → results, checked against the simulator's ground truth."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from park.measurements import ACTIVITY_MONTHLY, CREDITS, EMISSIONS_BY_SOURCE, EMISSIONS_MONTHLY, NEAR_ZERO_PROGRESS
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
