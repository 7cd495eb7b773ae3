"""The publication journey in Debian's headless Chromium, on the test park (SQLite and PostgreSQL):
a year settled → published (公示) → ALPHA's admin objects → finalising refused → the analyst upholds →
the corrected value added submitted and approved → re-settled as version 2 → published → after the
window final → the park admin approves issuance → ALPHA holds the credits; the auditor sees both versions.

Settlement here is the step that turns settled figures into a result version (``ledger.results
.record_version``, as ``pipeline.annual.settle_year`` calls it), fed with credits derived in this test
from the platform's approved value added: credits = benchmark × value added − emissions."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine

from ledger.db import make_engine
from ledger.manual import approved
from ledger.results import ResultRow, record_version
from tests.portal.park import PNG
from tests.portal.test_browser import _log_in, _open_request, _submit, browser, served

__all__ = ["browser", "served"]
pytestmark = [pytest.mark.services, pytest.mark.browser]

EMISSIONS_T = 1000.0
BENCHMARK_T_PER_10K_CNY = 0.25
YEAR = 2026


def _settle(engine: Engine, alpha_value_added: float) -> int:
    """Record the year's results as settlement does; ALPHA's value added as given; the version's id."""
    rows = [
        ResultRow(
            enterprise_id=enterprise,
            industry="C39",
            grade=grade,
            rating="B",
            rating_score=70.0,
            credits_t=BENCHMARK_T_PER_10K_CNY * value_added - EMISSIONS_T,
            emissions_tco2=EMISSIONS_T,
            value_added_10k_cny=value_added,
            intensity_t_per_10k_cny=EMISSIONS_T / value_added,
            benchmark_t_per_10k_cny=BENCHMARK_T_PER_10K_CNY,
            inputs_sha256=f"{value_added:064.0f}",
            policy_version="2026.1",
            factor_set="cn-national-2023",
        )
        for enterprise, grade, value_added in (("ALPHA", 2, alpha_value_added), ("BRAVO", 4, 3000.0))
    ]
    version, new = record_version(engine, YEAR, rows, date(YEAR + 1, 6, 30), "proposed", "airflow")
    assert new
    return version.id


def _listed(page) -> list[tuple[str, str]]:
    """(version number, state) of each version of the year the results page lists, newest first."""
    rows = page.locator(f'#versions tbody tr[data-year="{YEAR}"]')
    return [
        (str(rows.nth(i).get_attribute("data-number")), str(rows.nth(i).get_attribute("data-state")))
        for i in range(rows.count())
    ]


def _state(page) -> str:
    return page.inner_text("#state")


def test_an_objection_holds_the_result_and_the_decision_publishes_version_2(park, served, browser, tmp_path):
    engine = make_engine(park.config.ledger_url)
    try:
        v1 = _settle(engine, 5000.0)  # ALPHA: 0.25 × 5,000 − 1,000 = 250 t

        analyst = _log_in(browser, served, "ana-analyst", park.passwords["ana-analyst"])
        analyst.goto(f"{served}/park/results")
        analyst.click(f'#versions tr[data-version="{v1}"] a')
        analyst.wait_for_load_state("networkidle")
        analyst.click("#publish button")
        analyst.wait_for_load_state("networkidle")
        assert _state(analyst) == "published"

        alpha = _log_in(browser, served, "alpha-admin", park.passwords["alpha-admin"])
        alpha.click("text=公示 results")
        alpha.wait_for_load_state("networkidle")
        mine = alpha.locator(f'section.result[data-version="{v1}"]')
        assert mine.locator("td.credits").inner_text() == "250.000" and "BRAVO" not in alpha.content()
        mine.locator("textarea[name=reason]").fill("our 2026 value added is 6,000 (10k CNY): see the tax return")
        mine.locator("form.object button").click()
        alpha.wait_for_load_state("networkidle")
        assert alpha.get_attribute(f'section.result[data-version="{v1}"] p.objection', "data-state") == "open"

        analyst.reload()
        analyst.click("#finalise button")
        analyst.wait_for_load_state("networkidle")
        refusal = analyst.inner_text("main")
        assert "HTTP 409" in refusal and "of ALPHA is open" in refusal
        analyst.goto(f"{served}/park/results/{v1}")
        assert _state(analyst) == "published"
        analyst.fill("form.decide input[name=reason]", "the tax return shows 6,000")
        analyst.click("form.decide button.uphold")
        analyst.wait_for_load_state("networkidle")
        assert analyst.get_attribute("#objections tr[data-objection]", "data-state") == "upheld"
        analyst.screenshot(path=str(tmp_path / "objection-upheld.png"), full_page=True)

        # The correction goes through a data submission, approved, and a re-settlement.
        evidence = tmp_path / "tax-return.png"
        evidence.write_bytes(PNG)
        request = _open_request(analyst, served, "value_added", str(YEAR), str(date.today() + timedelta(days=7)))
        reporter = _log_in(browser, served, "alpha-reporter", park.passwords["alpha-reporter"])
        _submit(reporter, request, "6000", "万元", evidence)
        analyst.goto(request)
        analyst.click('#versions tr[data-version="1"] form.approve button[type=submit]')
        analyst.wait_for_load_state("networkidle")
        value_added = approved(engine).value_added.set_index(["enterprise", "year"])["value_added_10k_cny"]
        v2 = _settle(engine, float(value_added[("ALPHA", YEAR)]))  # 0.25 × 6,000 − 1,000 = 500 t

        analyst.goto(f"{served}/park/results")
        assert _listed(analyst) == [("2", "draft"), ("1", "superseded")]
        analyst.goto(f"{served}/park/results/{v2}")
        analyst.click("#publish button")
        analyst.wait_for_load_state("networkidle")
        window_ends = date.fromisoformat(analyst.inner_text("#window-ends"))
        analyst.click("#finalise button")  # during the window
        analyst.wait_for_load_state("networkidle")
        assert "HTTP 409" in analyst.inner_text("main") and "window runs until" in analyst.inner_text("main")

        park.app.state.publication_today = lambda: window_ends + timedelta(days=1)  # the window is over
        analyst.goto(f"{served}/park/results/{v2}")
        analyst.click("#finalise button")
        analyst.wait_for_load_state("networkidle")
        assert _state(analyst) == "final" and analyst.locator("#approve").count() == 0  # a park admin's step

        admin = _log_in(browser, served, "olga-admin", park.passwords["olga-admin"])
        admin.goto(f"{served}/park/results/{v2}")
        admin.click("#approve button")
        admin.wait_for_load_state("networkidle")
        assert admin.inner_text("#issuance").startswith("approved")

        alpha.goto(f"{served}/enterprises/ALPHA/offers")
        assert alpha.inner_text(f'#holdings tr[data-vintage="{YEAR}"] td.held') == "500.000"

        auditor = _log_in(browser, served, "aud-auditor", park.passwords["aud-auditor"])
        auditor.goto(f"{served}/park/results")
        assert _listed(auditor) == [("2", "final"), ("1", "superseded")]
        auditor.goto(f"{served}/park/results/{v1}")
        assert auditor.inner_text('#rows tr[data-enterprise="ALPHA"] td.credits') == "250.000"
        assert auditor.locator("#publish, #finalise, #approve, form.decide").count() == 0
        auditor.screenshot(path=str(tmp_path / "auditor-version-1.png"), full_page=True)
    finally:
        engine.dispose()
