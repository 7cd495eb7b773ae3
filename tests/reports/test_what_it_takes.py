"""The monthly report as a decision document, read as a park official reads it: rendered by headless
Chromium at A4 width, each "what it takes" figure read back from the DOM and checked against a
computation done here, independently of ``reports.actions``: the industry means from the credits rows,
the emissions at the next grade's K bound, the deficit, the biggest source from the month's activity and
the factors' published values, and the CNY at the ledger's last trade price.

January 2025 of the demo park at 15 minutes, written as the collector stores it, one meter with five
days missing and one register reset; then the pipeline's own steps compute the month."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import date, datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from ledger.settlement import book_settlement, open_ledger
from park.measurements import ACTIVITY_MONTHLY, CREDITS, DATA_QUALITY, Measurement
from park.month import Month, read_month
from park.registry import Registry, park_timezone
from park.settings import DEMO_REGISTRY, Settings
from park.store import InfluxStore
from pipeline.monthly import compute_activity, compute_scores
from reports.html import FONTS, SOURCE_NAMES, near_zero_status
from reports.monthly import write_month_report
from reports.svg import bar_chart, nice_ceiling
from scoring.policy import load_policy
from simulators.history import write_registers
from simulators.park import simulate
from tests.browser import render

PERIOD = "2025-01"
GAS_T_PER_10K_NM3 = 389.31 * 0.0153 * 0.99 * 44 / 12  # NDRC defaults, GB/T 32150 formula
GRID_T_PER_MWH = 0.5306  # MEE/NBS 2023 national average (cn-national-2023)
HEAT_T_PER_GJ = 0.11  # NDRC guideline default
PRICES = ("58.50", "61.20")  # two trades: the later one is the last price
A4 = (794, 1123)  # A4 at 96 dpi, in CSS pixels


class Figures(HTMLParser):
    """Every ``<span data-what=…>`` of a page: (enterprise, what) → (exact value, shown text)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: dict[tuple[str, str], tuple[str, str]] = {}
        self._open: tuple[str, str, str] | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        data = dict(attrs)
        if tag == "span" and "data-what" in data:
            self._open = (data["data-enterprise"] or "", data["data-what"] or "", data.get("data-value") or "")
            self._text = ""

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._open is not None:
            enterprise, what, value = self._open
            self.found[(enterprise, what)] = (value, self._text)
            self._open = None


def figures(dom: str) -> dict[tuple[str, str], tuple[str, str]]:
    parser = Figures()
    parser.feed(dom)
    return parser.found


@pytest.fixture
def january(settings: Settings, demo_registry: Registry, tmp_path: Path) -> Iterator[tuple[Settings, Path]]:
    tz = ZoneInfo(demo_registry.park.timezone)
    start, end = datetime(2025, 1, 1, tzinfo=tz), datetime(2025, 2, 1, tzinfo=tz)
    park = simulate(demo_registry, start, end, pd.Timedelta("15min"), 11)
    registers = park.registers.copy()
    main = {m.id for m in demo_registry.meters if m.role.value == "main"}
    gap, reset = [c for c in registers.columns if c[0] in main and c[1] == "active_energy_import"][:2]
    registers.loc["2025-01-10":"2025-01-15", gap] = np.nan  # five days unread: completeness about 0.82
    late = registers.index >= "2025-01-20"
    registers.loc[late, reset] = registers.loc[late, reset] - registers.loc[late, reset].iloc[0] + 1.0  # a reset
    with InfluxStore(settings.influx) as store:
        write_registers(store, demo_registry, registers)
    compute_activity(settings, PERIOD)
    compute_scores(settings, PERIOD)
    credits = read_month_of(settings, CREDITS)
    earners = credits.sort_values("credits_tco2", ascending=False)["enterprise"].tolist()
    with open_ledger(settings) as ledger:
        issued = pd.DataFrame(
            {
                "enterprise": [earners[0]],
                "credits_tco2": [100.0],
                "inputs_sha256": ["a" * 64],
                "policy_version": ["test"],
                "factor_set": ["cn-national-2023"],
            }
        )
        book_settlement(ledger, 2024, issued, date(2025, 6, 30), "test")
        for n, price in enumerate(PRICES):
            ledger.transfer(earners[0], earners[1], "10", 2024, f"deal-{n}", "test", price)
    reports = settings.model_copy(update={"run_dir": tmp_path})
    yield reports, write_month_report(reports, PERIOD)


def read_month_of(settings: Settings, measurement: Measurement) -> pd.DataFrame:
    with InfluxStore(settings.influx) as store:
        return read_month(store, measurement, Month.of(PERIOD, park_timezone(DEMO_REGISTRY)))


def expected(settings: Settings) -> tuple[dict[tuple[str, str], float], dict[str, str]]:
    """Each figure, computed here from the stored credits and activity: (enterprise, what) → value, and
    each enterprise's biggest source."""
    policy = load_policy(None)
    credits = read_month_of(settings, CREDITS)
    valid = credits[np.isfinite(credits["intensity_t_per_10k_cny"].astype(float))]
    park_mean = valid["emissions_tco2"].sum() / valid["value_added_used_10k_cny"].sum()
    means = {}
    for industry, group in valid.groupby("industry"):
        mean = group["emissions_tco2"].sum() / group["value_added_used_10k_cny"].sum()
        means[industry] = mean if len(group) >= policy.min_enterprises_per_industry else park_mean
    activity = read_month_of(settings, ACTIVITY_MONTHLY)
    own = activity[activity["workshop"].fillna("") == ""]
    assert set(own["unit"]) <= {"kWh", "Nm3", "GJ"}, set(own["unit"])
    price = float(PRICES[-1])
    out: dict[tuple[str, str], float] = {}
    biggest: dict[str, str] = {}
    for c in credits.to_dict("records"):
        e, emitted, va = c["enterprise"], float(c["emissions_tco2"]), float(c["value_added_used_10k_cny"])
        mean = means[c["industry"]]
        assert float(c["intensity_t_per_10k_cny"]) / mean == pytest.approx(float(c["k_ratio"]), rel=1e-9)
        grade = int(c["grade"])
        if grade > 1:  # the emissions at which K is the upper bound of the next better grade
            at_next = policy.grade_k_upper[grade - 2] * mean * va
            out[(e, "to_next_grade_t")] = emitted - at_next
            out[(e, "to_next_grade_cny")] = (emitted - at_next) * price
        balance = float(c["benchmark_t_per_10k_cny"]) * va - emitted
        assert balance == pytest.approx(float(c["credits_tco2"]), rel=1e-9)
        out[(e, "to_break_even_t")] = max(-balance, 0.0)
        out[(e, "to_break_even_cny")] = max(-balance, 0.0) * price
        if balance >= 0:
            out[(e, "surplus_t")] = balance
            out[(e, "surplus_cny")] = balance * price
        mine = own[own["enterprise"] == e].groupby("source")["quantity"].sum()
        sources = {
            "grid_electricity": (mine.get("grid_electricity", 0.0) - mine.get("exported_electricity", 0.0))
            / 1000
            * GRID_T_PER_MWH,
            "natural_gas": mine.get("natural_gas", 0.0) / 10_000 * GAS_T_PER_10K_NM3,
            "purchased_heat": (mine.get("purchased_heat", 0.0) - mine.get("exported_heat", 0.0)) * HEAT_T_PER_GJ,
        }
        biggest[e] = max(sources, key=lambda s: sources[s])
        out[(e, "biggest_source_t")] = sources[biggest[e]]
        out[(e, "biggest_source_cny")] = sources[biggest[e]] * price
    return out, biggest


PARK_FIGURES = ("to_next_grade_t", "to_break_even_t", "to_break_even_cny", "biggest_source_t")


@pytest.mark.services
def test_what_it_takes_read_back_from_the_rendered_pages(january, settings, tmp_path):
    reports, out = january
    artifacts = Path(reports.run_dir) / "artifacts"  # the A4 screenshots, kept with the report
    artifacts.mkdir()
    want, biggest = expected(settings)
    enterprises = sorted(biggest)
    assert len(enterprises) >= 10
    in_deficit = [e for e in enterprises if want[(e, "to_break_even_t")] > 0]
    to_gain = [e for e in enterprises if (e, "to_next_grade_t") in want]
    assert in_deficit and to_gain and len(in_deficit) < len(enterprises)  # every kind of figure is exercised

    shown = figures(render(out / "index.html", artifacts / "park-a4.png", *A4))
    for enterprise in enterprises:
        for what in PARK_FIGURES:
            if (enterprise, what) not in want:
                assert (enterprise, what) not in shown, (enterprise, what)
                continue
            value, text = shown[(enterprise, what)]
            assert float(value) == pytest.approx(want[(enterprise, what)], rel=1e-9), (enterprise, what)
            digits = 0 if what.endswith("cny") else 1
            assert text.replace(",", "") == f"{want[(enterprise, what)]:.{digits}f}", (enterprise, what, text)

    surplus = next(e for e in enterprises if e not in in_deficit)
    for enterprise in enterprises:
        page_file = out / "enterprises" / f"{enterprise}.html"
        if enterprise in (in_deficit[0], surplus):  # two pages through Chromium, the rest as written
            dom = render(page_file, artifacts / f"{enterprise}-a4.png", *A4)
        else:
            dom = page_file.read_text(encoding="utf-8")
        page = figures(dom)
        for (e, what), number in want.items():
            if e != enterprise or (what.startswith("to_break_even") and number == 0):
                continue  # in surplus, the page says by how much instead
            value, _ = page[(e, what)]
            assert float(value) == pytest.approx(number, rel=1e-9), (e, what)
        assert page[(enterprise, "biggest_source")][1] == SOURCE_NAMES[biggest[enterprise]]
        assert float(page[(enterprise, "price_cny_per_t")][0]) == float(PRICES[-1])
    for png in artifacts.iterdir():
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 20_000, png


@pytest.mark.services
def test_the_park_page_points_to_action(january, settings):
    """Benchmark and K on the park table, market-based Scope 1, no empty header row, the problem meters,
    a CJK font stack and an A4 print layout."""
    _, out = january
    park = (out / "index.html").read_text(encoding="utf-8")
    assert FONTS in park and "WenQuanYi Micro Hei" in FONTS and "@media print" in park and "size:A4" in park
    assert "基准 benchmark</th><th" in park and '<th class="">K</th>' in park
    assert not re.search(r"<tr><th[^>]*></th><th[^>]*></th></tr>", park)
    quality = read_month_of(settings, DATA_QUALITY)
    problems = quality[(quality["completeness"] < 0.9) | (quality["resets"] > 0)]
    assert 2 <= len(problems) < len(quality)  # the gap and the reset, not every meter
    listed = park[park.index("问题计量表 Problem meters") :]
    for row in problems.itertuples():
        assert f'<td class="t">{row.meter}</td>' in listed
    page = (out / "enterprises" / f"{sorted(problems['enterprise'])[0]}.html").read_text(encoding="utf-8")
    scope1 = re.search(r"范围一 Scope 1[^<]*</td><td[^>]*>([^<]*)</td><td[^>]*>([^<]*)</td>", page)
    assert scope1 is not None and scope1.group(1) == scope1.group(2) and scope1.group(2) != "–"
    assert not re.search(r"<tr><th[^>]*></th><th[^>]*></th></tr>", page)
    assert "问题计量表 Problem meters" in page


def test_behind_is_said_behind():
    """A workshop at 0.144 of a required 0.429 is behind, not "not yet"."""
    text = near_zero_status({"offset_ratio": 0.144, "required_ratio": 0.429, "status": "not yet"})
    assert "落后 behind" in text and "not yet" not in text and "0.144" in text and "0.429" in text
    assert near_zero_status({"offset_ratio": 0.5, "required_ratio": 0.4, "status": "not yet"}) == "按期 on track"
    no_target = {"offset_ratio": 0.0, "required_ratio": None, "status": "not yet"}
    assert near_zero_status(no_target) == "无目标 no target set"
    assert "近零碳 near-zero" in near_zero_status({"offset_ratio": 0.85, "required_ratio": 1.0, "status": "near-zero"})
    assert "落后 behind" in near_zero_status({"offset_ratio": 0.85, "required_ratio": 1.0, "status": "near-zero"})


@pytest.mark.parametrize("peak", [7.0, 101.0, 2434.0, 0.034, 352.1, 5.1, 1.0])
def test_charts_are_scaled_to_their_data(peak):
    """The axis ends at the data's maximum rounded up to a round number: at most 1.25 × it, never twice."""
    svg = bar_chart("t", ["a", "b"], {"s": [peak, peak / 3]}, "tCO2")
    ticks = [float(t.replace(",", "")) for t in re.findall(r'text-anchor="end">([^<]+)<', svg)]
    top = max(ticks)
    assert top == nice_ceiling(peak) and peak <= top <= 1.25 * peak + 1e-12
    assert math.isclose(min(ticks), 0.0)
