"""The platform in Debian's headless Chromium (Playwright, ``executable_path``; no browser download),
served by uvicorn as ``parkcarbon platform serve`` serves it: an enterprise's person logs in and sees its
credits equal to InfluxDB's; the park admin sees every enterprise. Screenshots are kept under the
test's temporary directory (pytest keeps the last runs' directories)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from park.measurements import CREDITS
from tests.browser import FLAGS, chromium
from tests.portal.park import FIGURES

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
