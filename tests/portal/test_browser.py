"""The platform in Debian's headless Chromium (Playwright, ``executable_path``; no browser download),
served by uvicorn as ``parkcarbon platform serve`` serves it: an enterprise's person logs in and sees its
credits equal to InfluxDB's; the park admin sees every enterprise; a reporter submits figures with
evidence and an analyst rejects and approves them, and the approved figures reach the monthly step.
Screenshots are kept under the
test's temporary directory (pytest keeps the last runs' directories)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
import uvicorn
from pydantic import SecretStr

from park.measurements import CREDITS
from park.registry import load_registry
from park.settings import LedgerSettings
from pipeline.monthly import read_manual_activity, score_inputs
from tests.browser import FLAGS, chromium
from tests.portal.park import FIGURES, PDF, PNG

pytestmark = [pytest.mark.services, pytest.mark.browser]


@pytest.fixture
def served(park) -> Iterator[str]:
    """The park's application served by uvicorn on a free port; its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(park.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium(), args=[f for f in FLAGS if f != "--headless"], headless=True
        )
        yield launched
        launched.close()


def _log_in(browser, base: str, username: str, password: str):
    page = browser.new_page(viewport={"width": 1280, "height": 1600})
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#login button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page


def test_an_enterprise_sees_its_credits_as_influxdb_has_them(park, served, browser, store, tmp_path):
    page = _log_in(browser, served, "alpha-reporter", park.passwords["alpha-reporter"])
    assert page.url == f"{served}/enterprises/ALPHA"
    shown = page.inner_text("#credits-tco2")
    stored = store.query(f'SELECT last("credits_tco2") FROM {CREDITS.q} WHERE "enterprise" = $e', {"e": "ALPHA"})
    assert float(shown.replace(",", "")) == round(float(stored["last"].iloc[0]), 1) == 123.5
    assert page.get_attribute("#credits-tco2", "data-value") == str(float(stored["last"].iloc[0]))
    assert "alpha-reporter" in page.inner_text("#who")
    # The vendored ECharts drew the trend from the page's JSON chart data: the same figures.
    page.wait_for_selector("#trend-chart[data-drawn=true] canvas")
    drawn = page.evaluate(
        "echarts.getInstanceByDom(document.getElementById('trend-chart')).getOption().series.map(s => s.data)"
    )
    assert drawn == [[102.625, 108.0625], [307.875, 324.1875], [61.25, 123.45]]
    bars = page.locator("svg.chart rect.bar[data-series='credits YTD']")  # the static SVG charts say the same
    assert [float(bars.nth(i).get_attribute("data-value")) for i in range(bars.count())] == [61.25, 123.45]
    assert "bravo" not in page.content().lower()
    page.screenshot(path=str(tmp_path / "enterprise-ALPHA.png"), full_page=True)
    other = page.goto(f"{served}/enterprises/BRAVO")
    assert other is not None and other.status == 404
    page.screenshot(path=str(tmp_path / "enterprise-BRAVO-refused.png"))
    assert (tmp_path / "enterprise-ALPHA.png").stat().st_size > 10_000


def test_the_park_admin_sees_every_enterprise(park, served, browser, tmp_path):
    page = _log_in(browser, served, "olga-admin", park.passwords["olga-admin"])
    assert page.url == f"{served}/park"
    rows = page.locator("#enterprises tbody tr")
    shown = {rows.nth(i).get_attribute("data-enterprise") for i in range(rows.count())}
    assert shown == set(FIGURES)
    for enterprise, months in FIGURES.items():
        cell = page.locator(f'#enterprises tr[data-enterprise="{enterprise}"] td.credits')
        assert float(cell.get_attribute("data-value")) == months["2026-03"][0]
    page.wait_for_selector("#grades-chart[data-drawn=true] canvas")
    drawn = page.evaluate(
        "echarts.getInstanceByDom(document.getElementById('grades-chart')).getOption().series[0].data"
    )
    assert drawn == [0, 1, 1, 0, 1, 0]  # grades 1–5 and none: ALPHA 2, CHARLIE 3, BRAVO 5
    page.screenshot(path=str(tmp_path / "park.png"), full_page=True)
    page.click('#enterprises a:text("BRAVO")')
    page.wait_for_load_state("networkidle")
    assert "Bravo Hidden Steel" in page.inner_text("h1")
    page.screenshot(path=str(tmp_path / "park-BRAVO.png"), full_page=True)


def _open_request(page, base: str, item: str, period: str, due: str) -> str:
    """The analyst opens a request to ALPHA on its requests page; the request's URL."""
    page.goto(f"{base}/enterprises/ALPHA/requests")
    page.select_option("#open-request select[name=item]", item)
    page.fill("#open-request input[name=period_asked]", period)
    page.fill("#open-request input[name=due_on]", due)
    page.click("#open-request button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert re.fullmatch(rf"{base}/enterprises/ALPHA/requests/\d+", page.url), page.url
    return page.url


def _submit(page, url: str, quantity: str, unit: str, evidence: Path) -> None:
    page.goto(url)
    page.fill("#submit input[name=quantity]", quantity)
    page.fill("#submit input[name=unit]", unit)
    page.set_input_files("#submit input[name=evidence]", str(evidence))
    page.click("#submit button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.url == url


def _version_state(page, url: str, version: int) -> str:
    page.goto(url)
    return str(page.get_attribute(f'#versions tr[data-version="{version}"]', "data-state"))


def test_a_reporter_submits_and_an_analyst_rejects_then_approves(park, served, browser, settings, tmp_path):
    """Value added and a green certificate with evidence; a rejection without a reason is refused, one
    with a reason taken; a resubmission approved; then the monthly step's manual activity and value
    added are the approved figures."""
    pdf, png = tmp_path / "certificate.pdf", tmp_path / "value-added.png"
    pdf.write_bytes(PDF + b"% green electricity certificate\n")
    png.write_bytes(PNG)
    analyst = _log_in(browser, served, "ana-analyst", park.passwords["ana-analyst"])
    due = str(date.today() + timedelta(days=14))
    value_added = _open_request(analyst, served, "value_added", "2026", due)
    certificate = _open_request(analyst, served, "green_electricity_certified", "2026年3月", due)
    assert "2026-03" in analyst.inner_text("#request")

    reporter = _log_in(browser, served, "alpha-reporter", park.passwords["alpha-reporter"])
    reporter.click("text=数据填报 data requests")
    reporter.wait_for_load_state("networkidle")
    listed = reporter.locator("#requests tbody tr")
    assert listed.count() == 4 and "bravo" not in reporter.content().lower()
    _submit(reporter, value_added, "1,234.5", "万元", png)
    _submit(reporter, certificate, "20", "MWh", pdf)
    assert reporter.inner_text("#status") == "v1 submitted" and reporter.locator("#submit").count() == 0
    reporter.screenshot(path=str(tmp_path / "request-submitted.png"), full_page=True)

    analyst.goto(f"{served}/park/requests")
    queued = {analyst.locator("#submitted tbody tr").nth(i).get_attribute("data-request") for i in range(4)}
    assert {value_added.rsplit("/", 1)[1], certificate.rsplit("/", 1)[1]} <= queued
    analyst.screenshot(path=str(tmp_path / "review-queue.png"), full_page=True)
    analyst.goto(certificate)
    analyst.click("form.reject button[type=submit]")  # without a reason
    analyst.wait_for_load_state("networkidle")
    assert "HTTP 400" in analyst.inner_text("main") and "needs a reason" in analyst.inner_text("main")
    assert _version_state(analyst, certificate, 1) == "submitted"
    analyst.fill("form.reject input[name=reason]", "the certificate covers February, not March")
    analyst.click("form.reject button[type=submit]")
    analyst.wait_for_load_state("networkidle")
    assert _version_state(analyst, certificate, 1) == "rejected"

    reporter.goto(certificate)
    assert "the certificate covers February, not March" in reporter.inner_text("#versions")
    _submit(reporter, certificate, "25", "MWh", pdf)
    assert _version_state(reporter, certificate, 2) == "submitted"

    for url, version in ((certificate, 2), (value_added, 1)):
        analyst.goto(url)
        analyst.click(f'#versions tr[data-version="{version}"] form.approve button[type=submit]')
        analyst.wait_for_load_state("networkidle")
        assert _version_state(analyst, url, version) == "approved"
    assert analyst.inner_text("#approved").startswith("1,234.500 10k CNY")
    analyst.goto(certificate)
    assert [analyst.locator("#versions tbody tr").nth(i).get_attribute("data-state") for i in range(2)] == [
        "approved",
        "rejected",
    ]
    analyst.screenshot(path=str(tmp_path / "request-approved.png"), full_page=True)

    # The monthly step: its manual activity and its value added are the approved figures.
    enterprises = tmp_path / "enterprises.csv"
    enterprises.write_text(
        "enterprise,name,industry,year,value_added_10k_cny\nALPHA,Alpha Optics,C39,2026,999\n", encoding="utf-8"
    )
    monthly = settings.model_copy(
        update={
            "registry": park.config.registry,
            "enterprises": enterprises,
            "manual_activity": None,
            "ledger": LedgerSettings(url=SecretStr(park.config.ledger_url)),
        }
    )
    metered = pd.DataFrame(
        [{"enterprise": "ALPHA", "workshop": "", "period": "2026-03", "source": "grid_electricity",
          "quantity": 100.0, "unit": "kWh"}]
    )  # fmt: skip
    activity = read_manual_activity(monthly, load_registry(park.config.registry), metered, None)
    manual = activity[activity["source"] != "grid_electricity"]
    assert manual[["enterprise", "period", "source", "quantity", "unit"]].to_dict("records") == [
        {"enterprise": "ALPHA", "period": "2026-03", "source": "green_electricity_certified", "quantity": 25.0,
         "unit": "MWh"}
    ]  # fmt: skip
    inputs = score_inputs(monthly)
    assert inputs.enterprises.set_index(["enterprise", "year"]).loc[("ALPHA", 2026), "value_added_10k_cny"] == 1234.5
    assert len(inputs.notes) == 1 and "replaces enterprises.csv's 999.00" in inputs.notes[0]


def _held_shown(page, vintage: int) -> float:
    return float(page.inner_text(f'#holdings tr[data-vintage="{vintage}"] td.held').replace(",", ""))


def test_a_seller_offers_the_buyer_accepts_and_both_see_their_balances(park, served, browser, tmp_path):
    seller = _log_in(browser, served, "alpha-admin", park.passwords["alpha-admin"])
    seller.goto(f"{served}/enterprises/ALPHA")
    seller.click("#offers-link")
    seller.wait_for_load_state("networkidle")
    assert seller.url == f"{served}/enterprises/ALPHA/offers"
    assert _held_shown(seller, 2025) == 35.0
    seller.fill("#make-offer input[name=buyer]", "BRAVO")
    seller.fill("#make-offer input[name=vintage]", "2025")
    seller.fill("#make-offer input[name=amount_t]", "3.5")
    seller.fill("#make-offer input[name=price_cny_per_t]", "70")
    seller.fill("#make-offer input[name=expires_at]", "2099-01-01T12:00")
    seller.click("#make-offer button[type=submit]")
    seller.wait_for_load_state("networkidle")
    offer = seller.locator('#offers tr[data-state="open"]', has_text="BRAVO")
    assert offer.count() == 1
    offer_id = offer.get_attribute("data-offer")
    assert "245.00" in offer.inner_text()  # 3.5 t × 70 CNY
    buyer = _log_in(browser, served, "bravo-admin", park.passwords["bravo-admin"])
    buyer.goto(f"{served}/enterprises/BRAVO/offers")
    assert _held_shown(buyer, 2025) == 4000.0
    buyer.click(f'#offers tr[data-offer="{offer_id}"] button.accept')
    buyer.wait_for_load_state("networkidle")
    assert buyer.get_attribute(f'#offers tr[data-offer="{offer_id}"]', "data-state") == "accepted"
    assert _held_shown(buyer, 2025) == 4003.5
    buyer.screenshot(path=str(tmp_path / "offers-BRAVO.png"), full_page=True)
    seller.reload()
    seller.wait_for_load_state("networkidle")
    assert seller.get_attribute(f'#offers tr[data-offer="{offer_id}"]', "data-state") == "accepted"
    assert _held_shown(seller, 2025) == 31.5
    seller.screenshot(path=str(tmp_path / "offers-ALPHA.png"), full_page=True)
