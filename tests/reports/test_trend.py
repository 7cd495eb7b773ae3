"""The monthly report's last twelve months, its comparisons with last month and a year ago, and its
problem gateways, read back from the pages as headless Chromium (Playwright, Debian's ``chromium``)
renders them at A4 width, and checked against a computation done here from the points this test wrote,
independently of ``reports.trend`` and ``reports.actions``.

January 2025 of the demo park is simulated at 15 minutes and computed by the pipeline's own steps, with
the meters of one gateway unread for ten days. The twelve months before it are written as the monthly
DAG writes its results (MONTH_COVERAGE, EMISSIONS_MONTHLY, CREDITS): February 2024 never
ran, June 2024 has no data in the whole park, April 2024 is a real zero in every enterprise, one
enterprise has no data and another a real zero in December 2024, a third a real zero in January 2024.
The daily quality DAG's GATEWAY_QUALITY_DAILY has one gateway offline at the month's end and one
with a meter silent for a day."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from park.lineprotocol import Point
from park.measurements import CREDITS, DATA_QUALITY, EMISSIONS_MONTHLY, GATEWAY_QUALITY_DAILY, MONTH_COVERAGE
from park.month import Month, read_month
from park.registry import Registry
from park.settings import Settings
from park.store import InfluxStore
from pipeline.monthly import compute_activity, compute_scores
from reports.monthly import write_month_report
from simulators.history import write_registers
from simulators.park import simulate
from tests.browser import FLAGS, chromium

pytestmark = [pytest.mark.services, pytest.mark.browser]

PERIOD, PREVIOUS, YEAR_AGO = "2025-01", "2024-12", "2024-01"
HISTORY = [f"2024-{m:02d}" for m in range(1, 13)]
TREND = [*HISTORY[1:], PERIOD]  # the last twelve months of the report
NOT_RUN, PARK_NO_DATA, PARK_ZERO = "2024-02", "2024-06", "2024-04"
OFFLINE_GATEWAY, STALE_GATEWAY, UNREAD_GATEWAY = "gw-e05-1", "gw-e11-1", "gw-e08-2"
A4 = {"width": 794, "height": 1123}  # A4 at 96 dpi, in CSS pixels
PARK = "(park)"
METRICS = {"emissions_tco2": 1, "credits_ytd_tco2": 1, "intensity_ytd_t_per_10k_cny": 4}  # and digits shown


@dataclass
class Written:
    """What one enterprise's month holds: its status and figures (None: no figure)."""

    status: str
    emissions_tco2: float | None = None
    credits_ytd_tco2: float | None = None
    intensity_ytd_t_per_10k_cny: float | None = None
    emissions_ytd_tco2: float | None = None
    value_added_ytd_10k_cny: float | None = None


def history(ids: list[str]) -> dict[tuple[str, str], Written]:
    """The twelve months of 2024 per enterprise, as this test writes them."""
    rng = np.random.default_rng(20)
    no_data_in_december, zero_in_december, zero_in_january = ids[2], ids[3], ids[4]
    months: dict[tuple[str, str], Written] = {}
    for period in HISTORY:
        if period == NOT_RUN:
            continue
        for enterprise in ids:
            if period == PARK_NO_DATA:
                months[(enterprise, period)] = Written("no_data")  # the park's month writes nothing else
                continue
            ytd, value_added = float(rng.uniform(500, 5000)), float(rng.uniform(1000, 9000))
            credits = Written(
                "data",
                credits_ytd_tco2=round(float(rng.uniform(-300, 300)), 3),
                intensity_ytd_t_per_10k_cny=ytd / value_added,
                emissions_ytd_tco2=ytd,
                value_added_ytd_10k_cny=value_added,
            )
            if (enterprise, period) == (no_data_in_december, PREVIOUS):
                credits.status = "no_data"  # no data this month; its year-to-date credits stand
            elif period == PARK_ZERO or (enterprise, period) in {
                (zero_in_december, PREVIOUS),
                (zero_in_january, YEAR_AGO),
            }:
                credits.emissions_tco2 = 0.0
            else:
                credits.emissions_tco2 = round(float(rng.uniform(50, 900)), 3)
            months[(enterprise, period)] = credits
    return months


def history_points(registry: Registry, months: dict[tuple[str, str], Written]) -> list[Point]:
    """The points the monthly DAG would have written for ``months``: coverage, emissions by scope
    (and a workshop's, which the enterprise's trend must not add), year-to-date credits."""
    tz = registry.park.timezone
    industry = {e.id: e.industry for e in registry.enterprises}
    points = []
    for (enterprise, period), m in months.items():
        at = Month.of(period, tz).start_ns
        points.append(MONTH_COVERAGE.point({"enterprise": enterprise}, {"status": m.status, "meters": 4.0}, at))
        if m.emissions_tco2 is not None:
            for workshop, scope, share in (
                ("", "scope1", 0.3),
                ("", "scope2", 0.7),
                ("", "total", 1.0),
                ("W", "total", 0.4),
            ):
                tags = {"enterprise": enterprise, "workshop": workshop, "scope": scope}
                tco2 = m.emissions_tco2 * share
                points.append(EMISSIONS_MONTHLY.point(tags, {"tco2_location": tco2, "tco2_market": tco2}, at))
        if m.credits_ytd_tco2 is not None:
            fields = {
                "credits_tco2": m.credits_ytd_tco2,
                "intensity_t_per_10k_cny": float(m.intensity_ytd_t_per_10k_cny or math.nan),
                "emissions_tco2": float(m.emissions_ytd_tco2 or math.nan),
                "value_added_used_10k_cny": float(m.value_added_ytd_10k_cny or math.nan),
            }
            points.append(CREDITS.point({"enterprise": enterprise, "industry": industry[enterprise]}, fields, at))
    return points


def gateway_days(registry: Registry) -> tuple[list[Point], dict[str, set[str]]]:
    """January's GATEWAY_QUALITY_DAILY: every gateway online with every meter read, but for one
    offline from the 28th and one with a meter silent on the 15th; the problems each day gives."""
    tz = ZoneInfo(registry.park.timezone)
    points, problems = [], {g.id: set() for g in registry.gateways}
    for day in range(1, 32):
        at = int(datetime(2025, 1, day, tzinfo=tz).timestamp()) * 10**9
        for gateway in registry.gateways:
            offline = gateway.id == OFFLINE_GATEWAY and day >= 28
            silent = 1.0 if gateway.id == STALE_GATEWAY and day == 15 else 0.0
            fields = {
                "readings": 96.0,
                "meters_silent": silent,
                "offline": offline,
                "announced_online": 0.0 if offline else 1.0,
            }
            points.append(
                GATEWAY_QUALITY_DAILY.point({"enterprise": gateway.enterprise, "gateway": gateway.id}, fields, at)
            )
            if offline:
                problems[gateway.id].add("offline")
            if silent:
                problems[gateway.id].add("stale")
    return points, problems


@pytest.fixture
def report(
    settings: Settings, demo_registry: Registry, tmp_path: Path
) -> Iterator[tuple[Path, dict[tuple[str, str], Written], dict[str, set[str]]]]:
    tz = ZoneInfo(demo_registry.park.timezone)
    start, end = datetime(2025, 1, 1, tzinfo=tz), datetime(2025, 2, 1, tzinfo=tz)
    registers = simulate(demo_registry, start, end, pd.Timedelta("15min"), 5).registers.copy()
    unread = {m.id for m in demo_registry.meters_of_gateway(UNREAD_GATEWAY)}
    registers.loc["2025-01-05":"2025-01-14", [c for c in registers.columns if c[0] in unread]] = np.nan
    ids = [e.id for e in demo_registry.enterprises]
    months = history(ids)
    days, problems = gateway_days(demo_registry)
    with InfluxStore(settings.influx) as store:
        write_registers(store, demo_registry, registers)
        compute_activity(settings, PERIOD)
        compute_scores(settings, PERIOD)
        store.write([*history_points(demo_registry, months), *days])
        january = {
            m: read_month(store, m, Month.of(PERIOD, str(tz)))
            for m in (MONTH_COVERAGE, EMISSIONS_MONTHLY, CREDITS, DATA_QUALITY)
        }
    months |= january_as_written(january)
    problems = low_completeness(demo_registry, january[DATA_QUALITY], problems)
    reports = settings.model_copy(update={"run_dir": tmp_path})
    yield write_month_report(reports, PERIOD), months, problems


def _float(value: Any) -> float | None:
    number = float(value) if value is not None and not pd.isna(value) else math.nan
    return number if math.isfinite(number) else None


def january_as_written(frames: dict[Any, pd.DataFrame]) -> dict[tuple[str, str], Written]:
    """January's stored results (what the pipeline wrote from the registers this test wrote)."""
    coverage, emissions, credits = (
        frames[MONTH_COVERAGE],
        frames[EMISSIONS_MONTHLY],
        frames[CREDITS].set_index("enterprise"),
    )
    own = emissions[(emissions["scope"] == "total") & (emissions["workshop"] == "")].set_index("enterprise")
    months = {}
    for enterprise, status in zip(coverage["enterprise"], coverage["status"], strict=True):
        c = credits.loc[enterprise] if enterprise in credits.index else {}
        months[(enterprise, PERIOD)] = Written(
            status,
            emissions_tco2=_float(own["tco2_location"].get(enterprise)) if status == "data" else None,
            credits_ytd_tco2=_float(c.get("credits_tco2")),
            intensity_ytd_t_per_10k_cny=_float(c.get("intensity_t_per_10k_cny")),
            emissions_ytd_tco2=_float(c.get("emissions_tco2")),
            value_added_ytd_10k_cny=_float(c.get("value_added_used_10k_cny")),
        )
    return months


def low_completeness(registry: Registry, quality: pd.DataFrame, problems: dict[str, set[str]]) -> dict[str, set[str]]:
    """Add "low_completeness" to each gateway whose meters' registers average below 90 % in January."""
    for gateway in registry.gateways:
        meters = {m.id for m in registry.meters_of_gateway(gateway.id)}
        completeness = quality.loc[quality["meter"].isin(meters), "completeness"].astype(float)
        if len(completeness) and completeness.mean() < 0.9:
            problems[gateway.id].add("low_completeness")
    return problems


def park_month(months: dict[tuple[str, str], Written], ids: list[str], period: str) -> Written:
    """The park's month: emissions of the enterprises with data, their credits, Σ YTD emissions / Σ value added."""
    mine = [months[(e, period)] for e in ids if (e, period) in months]
    if not mine:
        return Written("not_run")
    with_data = [m for m in mine if m.status == "data"]
    credited = [m for m in mine if m.credits_ytd_tco2 is not None]
    scored = [m for m in mine if m.intensity_ytd_t_per_10k_cny is not None]
    return Written(
        "data" if with_data else "no_data",
        emissions_tco2=sum(m.emissions_tco2 or 0.0 for m in with_data) if with_data else None,
        credits_ytd_tco2=sum(m.credits_ytd_tco2 or 0.0 for m in credited) if credited else None,
        intensity_ytd_t_per_10k_cny=sum(m.emissions_ytd_tco2 or 0.0 for m in scored)
        / sum(m.value_added_ytd_10k_cny or 0.0 for m in scored)
        if scored
        else None,
    )


def figure(months: dict[tuple[str, str], Written], subject: str, period: str) -> Written:
    return months.get((subject, period), Written("not_run"))


def shown(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def signed(value: float, digits: int, suffix: str = "") -> str:
    """A change as the report shows it: with its sign, none for 0."""
    text = f"{abs(value):,.{digits}f}{suffix}"
    return text if value == 0 else ("+" if value > 0 else "-") + text


def spans(page: Any, css: str) -> list[dict[str, str]]:
    """Every element matching ``css``: its data attributes and its rendered text."""
    return page.eval_on_selector_all(css, "els => els.map(e => Object.assign({text: e.textContent}, e.dataset))")


def check_trend(found: list[dict[str, str]], months: dict[tuple[str, str], Written], subject: str) -> None:
    """Each trend figure of ``subject`` shown as computed here; no data as "no data", zero as 0."""
    got = {(s["metric"], s["period"]): s for s in found if s["subject"] == subject}
    assert {p for _, p in got} == set(TREND)
    for period in TREND:
        want = figure(months, subject, period)
        for metric, digits in METRICS.items():
            span, value = got[(metric, period)], getattr(want, metric)
            assert span["status"] == want.status, (subject, period)
            if value is None:
                assert span["value"] == "", (subject, metric, period)
                assert ("no data" in span["text"]) == (want.status != "data"), (subject, metric, period, span["text"])
            else:
                assert float(span["value"]) == pytest.approx(value, rel=1e-9, abs=1e-12), (subject, metric, period)
                assert span["text"] == shown(value, digits), (subject, metric, period)


def check_comparisons(found: list[dict[str, str]], months: dict[tuple[str, str], Written], subject: str) -> int:
    """Each comparison of ``subject`` as computed here; returns how many had no data to compare with."""
    got = {(s["metric"], s["basis"], s["field"]): s for s in found if s["subject"] == subject}
    now_month = figure(months, subject, PERIOD)
    without = 0
    for metric, digits in METRICS.items():
        now = getattr(now_month, metric)
        assert now is not None, (subject, metric)  # January has every figure
        assert float(got[(metric, "now", "now")]["value"]) == pytest.approx(now, rel=1e-9), (subject, metric)
        assert got[(metric, "now", "now")]["text"] == shown(now, digits)
        for basis, then_period in (("previous_month", PREVIOUS), ("year_ago", YEAR_AGO)):
            then = getattr(figure(months, subject, then_period), metric)
            cells = {field: got[(metric, basis, field)] for field in ("then", "change", "change_pct")}
            assert cells["then"]["period"] == then_period
            if then is None:
                without += 1
                assert all(c["value"] == "" and "no data" in c["text"] for c in cells.values()), (
                    subject,
                    metric,
                    basis,
                )
                continue
            change = now - then
            assert float(cells["then"]["value"]) == pytest.approx(then, rel=1e-9, abs=1e-12)
            assert cells["then"]["text"] == shown(then, digits)
            assert float(cells["change"]["value"]) == pytest.approx(change, rel=1e-9, abs=1e-9), (
                subject,
                metric,
                basis,
            )
            assert cells["change"]["text"] == signed(change, digits), (subject, metric, basis)
            if then == 0:
                assert cells["change_pct"]["value"] == "" and cells["change_pct"]["text"] == "– (from 0)"
            else:
                pct = change / abs(then) * 100
                assert float(cells["change_pct"]["value"]) == pytest.approx(pct, rel=1e-9), (subject, metric, basis)
                assert cells["change_pct"]["text"] == signed(pct, 1, " %"), (subject, metric, basis)
    return without


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium(), args=[f for f in FLAGS if f != "--headless"], headless=True
        )
        yield launched
        launched.close()


def open_a4(browser: Any, page_file: Path, screenshot: Path) -> Any:
    """``page_file`` at A4 width, with a full-page screenshot, and one as printed (print stylesheet)."""
    page = browser.new_page(viewport=A4)
    page.goto(page_file.resolve().as_uri())
    page.screenshot(path=str(screenshot), full_page=True)
    page.emulate_media(media="print")
    page.screenshot(path=str(screenshot.with_name(screenshot.stem + "-print.png")), full_page=True)
    page.emulate_media(media="screen")
    return page


def test_trend_comparisons_and_gateways_read_back_from_the_rendered_pages(report, demo_registry, browser):
    out, months, problems = report
    artifacts = out.parent.parent / "artifacts"  # the A4 screenshots, kept next to the reports
    artifacts.mkdir()
    ids = [e.id for e in demo_registry.enterprises]
    for period in [YEAR_AGO, *TREND]:
        months[(PARK, period)] = park_month(months, ids, period)
    # The cases this test is about are there: a month never run, a month without data, a real zero.
    assert months[(PARK, NOT_RUN)].status == "not_run" and months[(PARK, PARK_NO_DATA)].emissions_tco2 is None
    assert months[(PARK, PARK_ZERO)].emissions_tco2 == 0.0 and months[(PARK, PERIOD)].emissions_tco2
    assert months[(ids[2], PREVIOUS)].status == "no_data" and months[(ids[3], PREVIOUS)].emissions_tco2 == 0.0

    park = open_a4(browser, out / "index.html", artifacts / "park-trend-a4.png")
    check_trend(spans(park, "span.trend"), months, PARK)
    comparisons = spans(park, "span.cmp")
    without = sum(check_comparisons(comparisons, months, subject) for subject in [PARK, *ids])
    assert without == 1  # the enterprise without data last month: its emissions
    assert {s["subject"] for s in comparisons} == {PARK, *ids}

    # The park's emission chart: a bar per month with data (a zero one for the zero month), "no data" drawn
    # where there is none, never a bar.
    series = "园区 park 排放 emissions"
    bars = {b["label"]: float(b["value"]) for b in spans(park, f'svg rect.bar[data-series="{series}"]')}
    marks = {m["label"] for m in spans(park, f'svg text.nodata[data-series="{series}"]')}
    with_figure = {p for p in TREND if months[(PARK, p)].emissions_tco2 is not None}
    assert set(bars) == with_figure and marks == set(TREND) - with_figure == {NOT_RUN, PARK_NO_DATA}
    assert bars[PARK_ZERO] == 0.0
    for period, value in bars.items():
        assert value == pytest.approx(months[(PARK, period)].emissions_tco2, rel=1e-9)

    listed = {g["gateway"]: set(g["problems"].split()) for g in spans(park, "span.gw")}
    assert listed == {g: p for g, p in problems.items() if p}
    assert listed[OFFLINE_GATEWAY] == {"offline"} and listed[STALE_GATEWAY] == {"stale"}
    assert "low_completeness" in listed[UNREAD_GATEWAY]
    assert next(iter(listed)) == OFFLINE_GATEWAY  # offline on the month's last day: first
    park.close()

    for enterprise in (ids[2], ids[3], demo_registry.gateway_by_id[OFFLINE_GATEWAY].enterprise):
        page = open_a4(browser, out / "enterprises" / f"{enterprise}.html", artifacts / f"{enterprise}-trend-a4.png")
        check_trend(spans(page, "span.trend"), months, enterprise)
        check_comparisons(spans(page, "span.cmp"), months, enterprise)
        mine = {g["gateway"] for g in spans(page, "span.gw")}
        assert mine == {g for g, p in problems.items() if p and demo_registry.gateway_by_id[g].enterprise == enterprise}
        page.close()
    for png in artifacts.iterdir():
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 20_000, png
