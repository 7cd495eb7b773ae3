"""The month's reports as HTML pages a person can read: one for the park office and one per
enterprise, bilingual (中文 / English), with inline SVG charts, written under
``RUN/reports/YYYY-MM/`` (``index.html`` and ``enterprises/<id>.html``).

Every figure comes from InfluxDB as the monthly DAG wrote it; each emission line names the factor,
its value and the publication it comes from, each rating its dimensions and weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from html import escape
from pathlib import Path

import pandas as pd

from park.measurements import (
    ACTIVITY_MONTHLY,
    CREDITS,
    DATA_QUALITY,
    EMISSIONS_MONTHLY,
    GATEWAY_QUALITY_DAILY,
    MONTH_COVERAGE,
    NEAR_ZERO_PROGRESS,
    NEARZERO_EVALUATION,
    Measurement,
)
from park.month import Month, months_through, read_months, read_within
from park.registry import Registry, load_registry
from park.settings import Settings
from park.store import InfluxStore
from reports.actions import (
    GATEWAY_COLUMNS,
    LOW_COMPLETENESS,
    OFFLINE,
    STALE,
    TradePrice,
    WhatItTakes,
    gateway_month,
    last_trade_price,
    number,
    problem_gateways,
    problem_meters,
    source_emissions,
    what_it_takes,
)
from reports.svg import bar_chart
from reports.trend import (
    COMPARISON_COLUMNS,
    DATA,
    FIGURE_COLUMNS,
    METRICS,
    NOT_RUN,
    PARK,
    PREVIOUS_MONTH,
    YEAR_AGO,
    comparisons,
    monthly_figures,
    shift_period,
)
from scoring.factors import FactorSet, factor_set
from scoring.policy import Policy, load_policy

# A CJK font stack (without one, every Chinese string may render as boxes) and a print layout on A4:
# offices print these pages and file them.
FONTS = '"Noto Sans CJK SC","Source Han Sans SC","Microsoft YaHei","PingFang SC","WenQuanYi Micro Hei",sans-serif'
STYLE = f"""
body{{font-family:{FONTS};margin:2em auto;padding:0 1em;max-width:60em;color:#222}}
svg.chart{{max-width:100%;height:auto;font-family:{FONTS}}}
h1{{font-size:1.6em}}h2{{font-size:1.2em;border-bottom:1px solid #ccc;margin-top:1.6em}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:right}}
th{{background:#f3f5f4}}td.t,th.t{{text-align:left}}.note{{color:#666;font-size:.9em}}.neg{{color:#b8433c}}
.nodata{{color:#8a6d00;font-style:italic}}.behind{{color:#b8433c;font-weight:bold}}.todo td.t{{max-width:22em}}
.cmp,.trend{{white-space:nowrap}}
@page{{size:A4;margin:14mm 12mm}}
@media print{{
body{{max-width:none;margin:0;padding:0;font-size:9.5pt;color:#000}}
a{{color:inherit;text-decoration:none}}
h1{{font-size:15pt}}h2{{font-size:12pt;break-after:avoid}}
table,svg.chart,p{{break-inside:avoid}}
table{{width:100%}}td,th{{padding:.15em .4em}}
th{{background:#eee;-webkit-print-color-adjust:exact;print-color-adjust:exact}}
.noprint{{display:none}}
}}
"""
UNITS = {"grid_electricity": "kWh", "natural_gas": "Nm³", "purchased_heat": "GJ", "pv_self_consumed": "kWh"}
SOURCE_NAMES = {
    "grid_electricity": "电网电力 grid electricity",
    "pv_generation": "光伏发电 PV generation",
    "pv_self_consumed": "光伏自用 PV self-consumed",
    "pv_exported": "光伏上网 PV exported",
    "natural_gas": "天然气 natural gas",
    "purchased_heat": "外购热力 purchased heat",
    "green_electricity_certified": "绿证电量 certified green power",
}


NO_DATA = '<span class="nodata">无数据 no data</span>'
TREND_MONTHS = 12


def _num(value: object, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return "–"
    number = float(value)  # type: ignore[arg-type]
    text = f"{number:,.{digits}f}"
    return f'<span class="neg">{text}</span>' if number < 0 else text


def _table(headers: list[str] | None, rows: list[list[str]], text_columns: int = 1, css: str = "") -> str:
    """A table; ``headers`` None for one without a header row (label and value pairs)."""
    head = ""
    if headers is not None:
        cells = "".join(f'<th class="{"t" if i < text_columns else ""}">{h}</th>' for i, h in enumerate(headers))
        head = f"<tr>{cells}</tr>"
    body = "".join(
        "<tr>" + "".join(f'<td class="{"t" if i < text_columns else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    opening = f'<table class="{css}">' if css else "<table>"
    return f"{opening}{head}{body}</table>"


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def _figure(enterprise: str, what: str, value: float | None, text: str) -> str:
    """A "what it takes" figure, marked with what it is and its exact value (for tests and readers)."""
    exact = "" if value is None else repr(float(value))
    return (
        f'<span class="fig" data-enterprise="{escape(enterprise)}" data-what="{what}" data-value="{exact}">'
        f"{text}</span>"
    )


def _cny(w: WhatItTakes, what: str, tonnes: float | None) -> str:
    value = w.cny(tonnes)
    if value is None:
        return ""
    return " ≈ " + _figure(w.enterprise, what, value, f"{value:,.0f} CNY")


def _source_name(source: str | None) -> str:
    return escape(SOURCE_NAMES.get(source or "", source or "–"))


def what_it_takes_rows(w: WhatItTakes) -> list[list[str]]:
    """The enterprise page's "what it takes" lines: to the next grade, to break even, the biggest
    source, each in CNY at the last trade price."""
    e = w.enterprise
    if w.next_grade is not None and w.to_next_grade_t is not None:
        share = f" ({100 * w.to_next_grade_t / w.emissions_t:.1f} % of emissions)" if w.emissions_t > 0 else ""
        to_grade = (
            f"减排 cut {_figure(e, 'to_next_grade_t', w.to_next_grade_t, f'{w.to_next_grade_t:,.1f}')} tCO2{share}"
            + _cny(w, "to_next_grade_cny", w.to_next_grade_t)
        )
        label = f"到等级 {w.next_grade} To grade {w.next_grade} (now {w.grade})"
    elif w.grade == 1:
        to_grade, label = "已是最优等级 already grade 1, the best", "到下一等级 To the next grade"
    else:
        to_grade, label = "无等级 no grade (no value added or no industry mean)", "到下一等级 To the next grade"
    if w.to_break_even_t is None or w.credits_t is None:
        even = "无积分 no credits"
    elif w.to_break_even_t > 0:
        even = (
            f"减排 cut {_figure(e, 'to_break_even_t', w.to_break_even_t, f'{w.to_break_even_t:,.1f}')} tCO2"
            f" (deficit {_num(w.credits_t)})" + _cny(w, "to_break_even_cny", w.to_break_even_t)
        )
    else:
        even = f"盈余 in surplus by {_figure(e, 'surplus_t', w.credits_t, f'{w.credits_t:,.1f}')} tCO2" + _cny(
            w, "surplus_cny", w.credits_t
        )
    if w.biggest_source is None or w.biggest_source_t is None:
        biggest = "–"
    else:
        share = f" ({100 * w.biggest_source_t / w.emissions_t:.0f} % of emissions)" if w.emissions_t > 0 else ""
        biggest = (
            f"{_figure(e, 'biggest_source', None, _source_name(w.biggest_source))}: "
            f"{_figure(e, 'biggest_source_t', w.biggest_source_t, f'{w.biggest_source_t:,.1f}')} tCO2{share}"
            + _cny(w, "biggest_source_cny", w.biggest_source_t)
        )
    if w.price is None:
        price = "无成交价 no trade price yet in the credit ledger: no CNY figures"
    else:
        price = (
            f"{_figure(e, 'price_cny_per_t', w.price.cny_per_t, f'{w.price.cny_per_t:,.2f}')} CNY/t, the last trade"
            f" (ledger transaction {w.price.transaction_id}, {w.price.booked_at:%Y-%m-%d})"
        )
    return [
        [label, to_grade],
        ["到收支平衡 To break even (credits 0)", even],
        ["最大排放源 Biggest source (location-based)", biggest],
        ["碳价 Credit price", price],
    ]


def near_zero_status(r: Mapping[str, object]) -> str:
    """The workshop's level, and "behind" when its offset ratio is below what its plan requires by now."""
    ratio, required = number(r.get("offset_ratio")), number(r.get("required_ratio"))
    status = str(r.get("status") or "")
    level = {"zero-carbon": "零碳 zero-carbon", "near-zero": "近零碳 near-zero", "no emissions": "无排放 no emissions"}
    shown = level.get(status)
    if math.isfinite(ratio) and math.isfinite(required) and ratio < required:
        behind = f'<span class="behind">落后 behind</span> ({ratio:.3f} of the {required:.3f} required by now)'
        return f"{shown}, {behind}" if shown else behind
    if shown:
        return shown
    if math.isfinite(required):
        return "按期 on track"
    return "无目标 no target set" if math.isfinite(ratio) else escape(status or "–")


def problem_meter_rows(quality: pd.DataFrame, with_enterprise: bool) -> list[list[str]]:
    rows = []
    for r in problem_meters(quality).to_dict("records"):
        reasons = []
        if number(r.get("completeness")) < 0.9:
            reasons.append("完整率低 completeness below 90 %")
        if number(r.get("resets")) > 0:
            reasons.append("复位 reset")
        cells = [
            escape(str(r["meter"])),
            escape(str(r["register"])),
            _num(100 * number(r.get("completeness")), 1) + " %",
            _num(r.get("gaps"), 0),
            _num(r.get("resets"), 0),
            "; ".join(reasons),
        ]
        rows.append(([escape(str(r["enterprise"]))] if with_enterprise else []) + cells)
    return rows


PROBLEM_HEADERS = ["计量表 meter", "寄存器 register", "完整率 completeness", "缺口 gaps", "复位 resets", "问题 problem"]


def factor_lines(factors: FactorSet) -> list[list[str]]:
    """The factors the month's emissions were computed with, each with its source."""
    gas = factors.fuels["natural_gas"]
    grid = factors.electricity
    return [
        [
            "电网电力 grid electricity (location)",
            f"{grid.location_t_per_mwh} tCO2/MWh",
            escape(f"{grid.grid}, data year {grid.data_year}: {grid.location_source}"),
        ],
        [
            "电网电力 grid electricity (market, residual)",
            f"{grid.residual_t_per_mwh} tCO2/MWh",
            escape(grid.residual_source + (f". {grid.residual_note}" if grid.residual_note else "")),
        ],
        [
            "天然气 natural gas",
            f"{gas.factor_t_per_unit:.4f} tCO2/{gas.unit}",
            escape(
                f"NCV {gas.ncv_gj_per_unit:g} GJ/{gas.unit} × {gas.carbon_tc_per_tj:g} tC/TJ × {gas.oxidation:g}"
                f" × 44/12 (GB/T 32150); {gas.source}"
            ),
        ],
        ["外购热力 purchased heat", f"{factors.heat.t_per_gj} tCO2/GJ", escape(factors.heat.source)],
    ]


METRIC_NAMES = {
    "emissions_tco2": "排放 emissions, tCO2 (month, location-based)",
    "credits_ytd_tco2": "积分 credits, tCO2 (year to date)",
    "intensity_ytd_t_per_10k_cny": "强度 intensity, tCO2 / 10⁴ CNY (year to date)",
}
METRIC_DIGITS = {"emissions_tco2": 1, "credits_ytd_tco2": 1, "intensity_ytd_t_per_10k_cny": 4}
BASIS_NAMES = {PREVIOUS_MONTH: "上月 last month", YEAR_AGO: "去年同月 a year ago"}


def _marked(css: str, attrs: Mapping[str, str], value: float, text: str) -> str:
    """``text`` in a span of class ``css`` with ``data-*`` attributes and its exact value ("" when
    missing), for tests and readers."""
    data = "".join(f' data-{k}="{escape(v)}"' for k, v in attrs.items())
    exact = repr(float(value)) if math.isfinite(value) else ""
    return f'<span class="{css}"{data} data-value="{exact}">{text}</span>'


def _signed(value: float, digits: int, suffix: str = "") -> str:
    """``value`` with its sign (+, -; none for 0), red when negative."""
    text = f"{abs(value):,.{digits}f}{suffix}"
    if value < 0:
        return f'<span class="neg">-{text}</span>'
    return f"+{text}" if value > 0 else text


def trend_cell(subject: str, metric: str, period: str, value: float, status: str) -> str:
    """A trend figure: the number, "no data" for a month without data (or without results), "–" for
    a month with data but no such figure (no value added: no credits, no intensity); ``data-status``
    tells a month without data from one without results (``not_run``)."""
    missing = "–" if status == DATA else NO_DATA  # the line's status says whether the month was computed
    text = _num(value, METRIC_DIGITS[metric]) if math.isfinite(value) else missing
    attrs = {"subject": subject, "metric": metric, "period": period, "status": status}
    return _marked("trend", attrs, value, text)


def trend_table(rows: pd.DataFrame, enterprises: int | None = None) -> str:
    """One line per month: its status and the METRICS; for the park (``enterprises``: how many it
    has), how many enterprises had data."""
    lines = []
    for r in rows.to_dict("records"):
        status = str(r["status"])
        shown = {DATA: "有数据 data", NOT_RUN: "未计算 not computed"}.get(status, NO_DATA)
        if enterprises is not None and status == DATA:
            shown = f"{int(r['enterprises_with_data'])} / {enterprises}"
        cells = [str(r["period"]), shown]
        cells += [trend_cell(str(r["subject"]), m, str(r["period"]), float(r[m]), status) for m in METRICS]
        lines.append(cells)
    data = "数据 data" if enterprises is None else "有数据企业 enterprises with data"
    headers = ["月份 month", data, *(METRIC_NAMES[m] for m in METRICS)]
    return _table(headers, lines, text_columns=2)


def trend_charts(rows: pd.DataFrame, who: str) -> list[str]:
    """The month's emissions and the year-to-date credits over the trend's months, "no data" drawn."""
    periods = [str(p) for p in rows["period"]]
    return [
        bar_chart(
            f"{who} 近12个月排放 emissions, last 12 months (tCO2, location-based)",
            periods,
            {f"{who} 排放 emissions": [float(v) for v in rows["emissions_tco2"]]},
            "tCO2",
            missing="无数据 no data",
        ),
        bar_chart(
            f"{who} 近12个月积分 credits year to date, last 12 months (+ surplus / − deficit)",
            periods,
            {f"{who} 积分 credits YTD": [float(v) for v in rows["credits_ytd_tco2"]]},
            "tCO2",
            missing="无数据 no data",
        ),
    ]


def comparison_cells(c: Mapping[str, object]) -> list[str]:
    """This month, then the month compared with, the change and the change in percent."""
    metric, now, then = str(c["metric"]), number(c["now"]), number(c["then"])
    change, pct = number(c["change"]), number(c["change_pct"])
    digits = METRIC_DIGITS[metric]
    attrs = {"subject": str(c["subject"]), "metric": metric, "basis": str(c["basis"])}
    if not math.isfinite(then):
        then_text, change_text, pct_text = NO_DATA, NO_DATA, NO_DATA
    elif not math.isfinite(now):
        then_text, change_text, pct_text = _num(then, digits), NO_DATA, NO_DATA
    else:
        then_text, change_text = _num(then, digits), _signed(change, digits)
        pct_text = _signed(pct, 1, " %") if math.isfinite(pct) else "– (from 0)"
    return [
        _marked("cmp", attrs | {"field": "then", "period": str(c["period_then"])}, then, then_text),
        _marked("cmp", attrs | {"field": "change"}, change, change_text),
        _marked("cmp", attrs | {"field": "change_pct"}, pct, pct_text),
    ]


def comparison_row(label: str, previous: Mapping[str, object], year_ago: Mapping[str, object]) -> list[str]:
    """A subject's metric against last month and a year ago: label, now, then ×2 (then, change, %)."""
    metric, now = str(previous["metric"]), number(previous["now"])
    attrs = {"subject": str(previous["subject"]), "metric": metric, "basis": "now"}
    now_text = _num(now, METRIC_DIGITS[metric]) if math.isfinite(now) else NO_DATA
    now_cell = _marked("cmp", attrs | {"field": "now"}, now, now_text)
    return [label, now_cell, *comparison_cells(previous), *comparison_cells(year_ago)]


def comparison_table(comps: pd.DataFrame, labels: Mapping[tuple[str, str], str], period: str) -> str:
    """One line per (subject, metric) of ``labels``, in their order."""
    indexed = {(str(c["subject"]), str(c["metric"]), str(c["basis"])): c for c in comps.to_dict("records")}
    lines = [
        comparison_row(label, indexed[(subject, metric, PREVIOUS_MONTH)], indexed[(subject, metric, YEAR_AGO)])
        for (subject, metric), label in labels.items()
        if (subject, metric, PREVIOUS_MONTH) in indexed
    ]
    headers = ["", f"本月 this month {period}"]
    for basis, months in ((PREVIOUS_MONTH, -1), (YEAR_AGO, -12)):
        headers += [f"{BASIS_NAMES[basis]} {shift_period(period, months)}", "变化 change", "%"]
    return _table(headers, lines)


GATEWAY_PROBLEMS = {
    OFFLINE: "离线 offline",
    STALE: "停滞 stale (a meter silent a whole day)",
    LOW_COMPLETENESS: "完整率低 completeness below 90 %",
}
GATEWAY_HEADERS = [
    "网关 gateway",
    "离线天数 days offline",
    "末日离线 offline on the last day",
    "有静默表的天数 days with a silent meter",
    "完整率 completeness",
    "低于90%寄存器 registers below 90 %",
    "问题 problem",
]


def problem_gateway_rows(gateways: pd.DataFrame, with_enterprise: bool) -> list[list[str]]:
    """The gateways with a problem this month (:func:`reports.actions.problem_gateways`), worst first."""
    rows = []
    for r in problem_gateways(gateways).to_dict("records"):
        problems = list(r["problems"])
        marked = (
            f'<span class="gw" data-gateway="{escape(str(r["gateway"]))}" data-problems="{" ".join(problems)}">'
            f"{escape(str(r['gateway']))}</span>"
        )
        last_day = r["offline_last_day"]
        cells = [
            marked,
            f"{int(r['days_offline'])} / {int(r['days_reported'])}" if r["days_reported"] else "–",
            "–" if last_day is None else ("是 yes" if last_day else "否 no"),
            f"{int(r['days_with_silent_meters'])}" if r["days_reported"] else "–",
            _num(100 * number(r["completeness"]), 1) + " %" if math.isfinite(number(r["completeness"])) else "–",
            str(int(r["registers_below_90"])),
            "; ".join(GATEWAY_PROBLEMS[p] for p in problems),
        ]
        rows.append(([escape(str(r["enterprise"]))] if with_enterprise else []) + cells)
    return rows


def gateway_section(gateways: pd.DataFrame, days_recorded: int, with_enterprise: bool) -> list[str]:
    """The problem gateways next to the problem meters, or why there are none to show."""
    rows = problem_gateway_rows(gateways, with_enterprise)
    parts = []
    if rows:
        parts.append(
            f"<p><b>问题网关 Problem gateways</b> ({len(rows)}: offline on a day, stale, or completeness below 90 %)"
            "</p>"
        )
        headers = (["企业 enterprise"] if with_enterprise else []) + GATEWAY_HEADERS
        parts.append(_table(headers, rows, text_columns=2 if with_enterprise else 1))
    elif len(gateways):
        parts.append("<p>无问题网关 No problem gateways this month.</p>")
    if not days_recorded:
        parts.append(
            '<p class="note nodata">无网关日数据 No daily gateway quality for this month (the daily quality DAG '
            "did not run): offline and stale gateways cannot be told; completeness is the month's.</p>"
        )
    return parts


class MonthData:
    """The month's measurements, read once for the park and all enterprise pages."""

    def __init__(self, store: InfluxStore, month: Month, frames: Mapping[Measurement, pd.DataFrame]) -> None:
        """``frames``: the month's points per measurement, as :func:`park.month.read_month` gives them."""
        self.month = month
        self.activity = frames[ACTIVITY_MONTHLY].copy()
        self.emissions = frames[EMISSIONS_MONTHLY].copy()
        self.credits = frames[CREDITS]
        self.near_zero = frames[NEAR_ZERO_PROGRESS].copy()
        self.evaluation = frames.get(NEARZERO_EVALUATION, pd.DataFrame())
        self.quality = frames[DATA_QUALITY]
        coverage = frames.get(MONTH_COVERAGE, pd.DataFrame())
        self.without_data = set(coverage.loc[coverage["status"] == "no_data", "enterprise"]) if len(coverage) else set()
        timezone = str(month.start.tzinfo)
        january = Month.of(f"{month.year}-01", timezone)
        ytd = store.query(
            f'SELECT "tco2_location", "tco2_market" FROM {EMISSIONS_MONTHLY.q} '
            f"WHERE \"workshop\" = '' AND time >= {january.start_ns} AND time <= {month.start_ns} "
            'GROUP BY "enterprise", "scope"'
        )
        if len(ytd):
            ytd["period"] = ytd["time"].dt.tz_convert(timezone).dt.strftime("%Y-%m")
        self.year_to_date = ytd
        # The year's activity by enterprise and source: the biggest emission sources, year to date as
        # the credits are.
        self.activity_year_to_date = store.query(
            f'SELECT "quantity", "unit" FROM {ACTIVITY_MONTHLY.q} '
            f"WHERE \"workshop\" = '' AND time >= {january.start_ns} AND time <= {month.start_ns} "
            'GROUP BY "enterprise", "source"'
        )
        self.actions: dict[str, WhatItTakes] = {}
        # The trend's months, and a year back from this one for the comparison: thirteen months of results.
        self.trend_periods = [m.period for m in months_through(month, TREND_MONTHS)]
        self.history_periods = [m.period for m in months_through(month, TREND_MONTHS + 1)]
        first = Month.of(self.history_periods[0], timezone)
        self.history = {m: read_months(store, m, first, month) for m in (MONTH_COVERAGE, EMISSIONS_MONTHLY, CREDITS)}
        self.gateway_days = read_within(store, GATEWAY_QUALITY_DAILY, month)
        self.figures = pd.DataFrame(columns=FIGURE_COLUMNS)
        self.comparisons = pd.DataFrame(columns=COMPARISON_COLUMNS)
        self.gateways = pd.DataFrame(columns=GATEWAY_COLUMNS)

    def take_history(self, registry: Registry) -> None:
        """The months' figures and the comparisons (:mod:`reports.trend`), and each gateway's month
        (:func:`reports.actions.gateway_month`)."""
        ids = [e.id for e in registry.enterprises]
        coverage, emissions, credits = (self.history[m] for m in (MONTH_COVERAGE, EMISSIONS_MONTHLY, CREDITS))
        self.figures = monthly_figures(ids, self.history_periods, coverage, emissions, credits)
        self.comparisons = comparisons(self.figures, self.month.period)
        meters = {g.id: [m.id for m in registry.meters_of_gateway(g.id)] for g in registry.gateways}
        self.gateways = gateway_month(
            self.gateway_days, self.quality, {g.id: g.enterprise for g in registry.gateways}, meters
        )

    def trend_of(self, subject: str) -> pd.DataFrame:
        """The subject's (PARK or an enterprise) rows of the trend's months, oldest first."""
        rows = self.figures[(self.figures["subject"] == subject) & self.figures["period"].isin(self.trend_periods)]
        return rows.sort_values("period")

    @staticmethod
    def rows_of(frame: pd.DataFrame, enterprise: str) -> pd.DataFrame:
        """Every row of ``enterprise`` (its own totals and its workshops')."""
        return frame[frame["enterprise"] == enterprise] if len(frame) else frame

    def enterprise_rows(self, frame: pd.DataFrame, enterprise: str) -> pd.DataFrame:
        """The enterprise's own totals: its rows without a workshop."""
        rows = self.rows_of(frame, enterprise)
        return rows[rows["workshop"] == ""] if "workshop" in rows else rows

    def has_data(self, enterprise: str) -> bool:
        """False for an enterprise none of whose meters sent a reading this month ("no data", not zero)."""
        return enterprise not in self.without_data

    def take_actions(self, factors: FactorSet, policy: Policy, price: TradePrice | None) -> None:
        """What it takes, per enterprise with credits (:mod:`reports.actions`)."""
        sources = source_emissions(self.activity_year_to_date, factors)
        for credit in self.credits.to_dict("records") if len(self.credits) else []:
            mine = sources[sources["enterprise"] == credit["enterprise"]]
            by_source = dict(zip(mine["source"], mine["tco2"].astype(float), strict=True))
            self.actions[str(credit["enterprise"])] = what_it_takes(credit, policy.grade_k_upper, by_source, price)

    def total(self, enterprise: str, scope: str, field: str = "tco2_location") -> float:
        """The month's tCO2 of ``scope``; NaN for an enterprise without data this month."""
        if not self.has_data(enterprise):
            return math.nan
        rows = self.enterprise_rows(self.emissions, enterprise)
        rows = rows[rows["scope"] == scope] if len(rows) else rows
        return float(rows[field].sum()) if len(rows) else 0.0


def enterprise_comparison_and_trend(data: MonthData, enterprise_id: str) -> list[str]:
    """The enterprise against last month and a year ago, and its last twelve months."""
    labels = {(enterprise_id, metric): METRIC_NAMES[metric] for metric in METRICS}
    rows = data.trend_of(enterprise_id)
    return [
        "<h2>对比 Compared with last month and a year ago</h2>",
        comparison_table(data.comparisons, labels, data.month.period),
        '<p class="note">Change = this month − then; % of |then|; "no data" where a month has none.</p>',
        "<h2>趋势 The last 12 months</h2>",
        *trend_charts(rows, enterprise_id),
        trend_table(rows),
    ]


def enterprise_page(registry: Registry, data: MonthData, enterprise_id: str, factors: FactorSet, policy: Policy) -> str:
    enterprise = registry.enterprise_by_id[enterprise_id]
    period = data.month.period
    parts = [
        f"<h1>{escape(enterprise.name)}</h1>",
        f"<p>碳排放月报 Monthly carbon report <b>{period}</b> · 行业 industry {enterprise.industry} · "
        f'<a href="../index.html">园区 park report</a></p>',
    ]
    if not data.has_data(enterprise_id):
        parts.append(
            '<p class="neg nodata">本月无数据 No data this month: none of the enterprise\'s meters sent a reading. '
            "Its figures are missing, not zero; its year-to-date results rest on the months with data.</p>"
        )
    parts += [
        "<h2>活动数据 Activity data</h2>",
    ]
    activity = data.enterprise_rows(data.activity, enterprise_id)
    rows = [
        [
            escape(SOURCE_NAMES.get(r["source"], r["source"])),
            _num(r["quantity"]),
            escape(str(r.get("unit", ""))),
            escape(str(r.get("origin", ""))),
            _num(100 * r["completeness"], 1) + " %" if pd.notna(r.get("completeness")) else "–",
        ]
        for r in activity.to_dict("records")
    ]
    parts.append(_table(["能源 source", "数量 quantity", "单位 unit", "来源 origin", "完整率 completeness"], rows))

    parts.append("<h2>排放 Emissions (GB/T 32150)</h2>")
    scope_rows = [
        [
            "范围一 Scope 1 (燃烧 combustion; market-based = location-based)",
            _num(data.total(enterprise_id, "scope1")),
            _num(data.total(enterprise_id, "scope1", "tco2_market")),
        ],
        [
            "范围二 Scope 2 (外购电力、热力 purchased electricity, heat)",
            _num(data.total(enterprise_id, "scope2")),
            _num(data.total(enterprise_id, "scope2", "tco2_market")),
        ],
        [
            "<b>合计 Total</b>",
            f"<b>{_num(data.total(enterprise_id, 'total'))}</b>",
            f"<b>{_num(data.total(enterprise_id, 'total', 'tco2_market'))}</b>",
        ],
    ]
    parts.append(_table(["", "tCO2 位置法 location-based", "tCO2 市场法 market-based"], scope_rows))
    parts.append(f"<p>排放因子 Factors (set <b>{escape(factors.id)}</b>):</p>")
    parts.append(_table(["", "因子 factor", "来源 source"], factor_lines(factors), text_columns=3))
    ytd = data.year_to_date
    if len(ytd):
        mine = ytd[ytd["enterprise"] == enterprise_id]
        periods = sorted(mine["period"].unique())
        by = mine.pivot_table(index="period", columns="scope", values="tco2_location", aggfunc="sum")
        series = {
            name: [float(by.at[p, scope]) if scope in by and p in by.index else 0.0 for p in periods]
            for scope, name in (("scope1", "Scope 1 范围一"), ("scope2", "Scope 2 范围二"))
        }
        parts.append(
            bar_chart(f"{enterprise_id} 本年排放 emissions this year (location-based)", periods, series, "tCO2")
        )

    parts.append("<h2>碳积分与评级 Credits, grade and rating (year to date, provisional)</h2>")
    credit = data.rows_of(data.credits, enterprise_id)
    if len(credit):
        c = credit.iloc[0]
        grade = "–" if pd.isna(c.get("grade")) else str(int(c["grade"]))
        k_upper = " / ".join(f"{k:g}" for k in policy.grade_k_upper)
        rows = [
            ["积分 credits (tCO2; + surplus, − deficit)", _num(c.get("credits_tco2"))],
            ["排放强度 intensity (tCO2 / 10⁴ CNY)", _num(c.get("intensity_t_per_10k_cny"), 4)],
            ["基准 benchmark (tCO2 / 10⁴ CNY)", _num(c.get("benchmark_t_per_10k_cny"), 4)],
            [f"K = 强度 / 行业均值 intensity / industry mean (grade limits {k_upper})", _num(c.get("k_ratio"), 3)],
            ["碳效等级 grade (1 best – 5)", grade],
            ["碳信用评级 rating", f"{escape(str(c.get('rating', '') or '–'))} ({_num(c.get('rating_score'))} / 100)"],
            ["评级依据 why", escape(str(c.get("rating_reasons", "") or "–"))],
            ["月数 months covered", _num(c.get("months_covered"), 0)],
        ]
        if isinstance(c.get("note"), str) and c["note"]:
            rows.append(["说明 note", escape(c["note"])])
        parts.append(_table(None, rows))
        parts.append(
            f'<p class="note">policy {escape(str(c.get("policy_version", "")))}, factor set '
            f"{escape(str(c.get('factor_set', '')))}, inputs sha256 {escape(str(c.get('inputs_sha256', ''))[:16])}…</p>"
        )
    else:
        parts.append("<p>无积分结果 No credits computed for this month.</p>")
    parts += enterprise_comparison_and_trend(data, enterprise_id)
    if enterprise_id in data.actions:
        parts.append("<h2>行动要点 What it takes (year to date)</h2>")
        parts.append(_table(None, what_it_takes_rows(data.actions[enterprise_id]), text_columns=2, css="todo"))
        parts.append(
            '<p class="note">With value added and the industry mean as they stand: the grade\'s K upper bound × '
            "industry mean × value added gives the emissions at the next grade; credits = benchmark × value added − "
            "emissions. CNY: what that many credits cost at the last trade price.</p>"
        )

    workshops = data.rows_of(data.near_zero, enterprise_id)
    if len(workshops):
        parts.append("<h2>近零碳进展 Near-zero-carbon progress</h2>")
        rows = [
            [
                escape(str(r["workshop"] or enterprise_id)),
                _num(r.get("offset_ratio"), 3),
                _num(r.get("required_ratio"), 3),
                _num(r.get("target"), 2),
                near_zero_status(r),
            ]
            for r in workshops.to_dict("records")
        ]
        parts.append(
            _table(["车间 workshop", "抵消率 offset ratio", "应达 required", "目标 target", "状态 status"], rows)
        )

    parts += evaluation_section(data.rows_of(data.evaluation, enterprise_id), enterprise_id)

    parts.append("<h2>数据质量 Data quality</h2>")
    quality = data.rows_of(data.quality, enterprise_id)
    problems = problem_meter_rows(quality, with_enterprise=False)
    if problems:
        parts.append(f"<p><b>问题计量表 Problem meters</b> ({len(problems)}): check or repair these first.</p>")
        parts.append(_table(PROBLEM_HEADERS, problems, text_columns=2))
    elif len(quality):
        parts.append("<p>无问题计量表 No problem meters: every register at least 90 % complete, no reset.</p>")
    mine = data.rows_of(data.gateways, enterprise_id)
    parts += gateway_section(mine, len(data.rows_of(data.gateway_days, enterprise_id)), with_enterprise=False)
    rows = [
        [
            escape(f"{r['meter']} {r['register']}"),
            _num(100 * r.get("completeness", float("nan")), 1) + " %",
            _num(r.get("gaps"), 0),
            _num(r.get("estimated_intervals"), 0),
            _num(r.get("resets"), 0),
            _num(r.get("rollovers"), 0),
        ]
        for r in quality.to_dict("records")
    ]
    parts.append(
        _table(
            ["计量表 meter", "完整率 completeness", "缺口 gaps", "估算 estimated", "复位 resets", "翻转 rollovers"],
            rows,
        )
    )
    return _page(f"{enterprise_id} {period}", "".join(parts))


STATUS_TEXT = {"pass": "达标 pass", "fail": "未达标 fail", "unknown": "未知 unknown", "n/a": "不适用 n/a"}


def _value_text(r: Mapping[str, object], name: str, digits: int = 3) -> str:
    """An indicator's value or threshold: its number, else its text (a fact: yes / no, a level)."""
    value = number(r.get(name))
    if math.isfinite(value):
        return _num(value, digits)
    text = r.get(f"{name}_text")
    return escape(str(text)) if isinstance(text, str) and text else "–"


def evaluation_section(rows: pd.DataFrame, subject: str) -> list[str]:
    """The year to date against the registry's near-zero profiles (``NEARZERO_EVALUATION``): each
    indicator's value, threshold and its source, the result, the gap and what closes it."""
    if not len(rows):
        return []
    parts = ["<h2>近零碳评价 Against near-zero-carbon standards (year to date)</h2>"]
    for profile, group in rows.groupby("profile", sort=True):
        failed = int((group["status"] == "fail").sum())
        unknown = int((group["status"] == "unknown").sum())
        parts.append(f"<h3>{escape(str(profile))}: {failed} failed, {unknown} unknown of {len(group)}</h3>")
        table = [
            [
                escape(str(r.get("workshop") or subject)),
                escape(f"{r.get('name_zh', '')} {r.get('name_en', '')}"),
                f"{_value_text(r, 'value')} {escape(str(r.get('unit') or ''))}",
                f"{escape(str(r.get('comparison') or ''))} {_value_text(r, 'threshold')}"
                if math.isfinite(number(r.get("threshold"))) or r.get("threshold_text")
                else "未查到 not found",
                STATUS_TEXT.get(str(r.get("status")), escape(str(r.get("status")))),
                _num(r.get("gap_tco2"), 1) if math.isfinite(number(r.get("gap_tco2"))) else "–",
                escape(str(r.get("action") or r.get("note") or "")),
                escape(f"{r.get('source', '')} {r.get('clause') or ''}"),
            ]
            for r in group.sort_values(["workshop", "indicator"]).to_dict("records")
        ]
        parts.append(
            _table(
                [
                    "对象 subject",
                    "指标 indicator",
                    "数值 value",
                    "门槛 threshold",
                    "结果 result",
                    "差距 gap tCO2",
                    "如何达标 what closes it",
                    "依据 source",
                ],
                table,
                text_columns=2,
            )
        )
    parts.append(
        '<p class="note">A fact no meter gives (green-factory status, offsets held) is unknown until the park '
        "office has reviewed it (settings: facts); an unknown is never a pass.</p>"
    )
    return parts


def park_actions(data: MonthData) -> list[str]:
    """The park page's "what it takes" table: one row per enterprise with credits."""
    if not data.actions:
        return []
    price = next(iter(data.actions.values())).price
    rows = []
    for enterprise, w in sorted(data.actions.items()):
        to_grade = (
            _figure(enterprise, "to_next_grade_t", w.to_next_grade_t, f"{w.to_next_grade_t:,.1f}")
            + f" → {w.next_grade}"
            if w.to_next_grade_t is not None
            else ("best 最优" if w.grade == 1 else "–")
        )
        even = (
            _figure(enterprise, "to_break_even_t", w.to_break_even_t, f"{w.to_break_even_t:,.1f}")
            if w.to_break_even_t is not None
            else "–"
        )
        cny = w.cny(w.to_break_even_t)
        biggest = (
            f"{_source_name(w.biggest_source)} "
            + _figure(enterprise, "biggest_source_t", w.biggest_source_t, f"{w.biggest_source_t:,.1f}")
            if w.biggest_source_t is not None
            else "–"
        )
        rows.append(
            [
                f'<a href="enterprises/{escape(enterprise)}.html">{escape(enterprise)}</a>',
                "–" if w.grade is None else str(w.grade),
                to_grade,
                even,
                "–" if cny is None else _figure(enterprise, "to_break_even_cny", cny, f"{cny:,.0f}"),
                biggest,
            ]
        )
    where = (
        f"at the last trade price {price.cny_per_t:,.2f} CNY/t ({price.booked_at:%Y-%m-%d})"
        if price is not None
        else "no trade price yet in the credit ledger"
    )
    return [
        "<h2>行动要点 What it takes (year to date)</h2>",
        _table(
            [
                "企业 enterprise",
                "等级 grade",
                "到下一等级 tCO2 to the next grade",
                "到收支平衡 tCO2 to break even",
                "CNY to break even",
                "最大排放源 biggest source, tCO2",
            ],
            rows,
            1,
            css="todo",
        ),
        f'<p class="note">Tonnes to cut, with value added and the industry mean as they stand; CNY {where}.</p>',
    ]


def park_comparisons(registry: Registry, data: MonthData) -> list[str]:
    """The park's total and each enterprise against last month and the same month a year ago, one
    table per metric."""
    parts = [
        "<h2>对比 Compared with last month and a year ago</h2>",
        '<p class="note">Change = this month − then; % of |then| (a rise is +, whatever the sign); "no data" where'
        " a month has none. Emissions are the month's; credits and intensity year to date, as each month's"
        " results have them.</p>",
    ]
    for metric in METRICS:
        labels = {(PARK, metric): "<b>园区 park</b>"} | {
            (e.id, metric): f'<a href="enterprises/{escape(e.id)}.html">{escape(e.id)}</a>'
            for e in registry.enterprises
        }
        parts.append(f"<p><b>{METRIC_NAMES[metric]}</b></p>")
        parts.append(comparison_table(data.comparisons, labels, data.month.period))
    return parts


def park_trend(registry: Registry, data: MonthData) -> list[str]:
    """The park's last twelve months: charts and a table, months without data marked."""
    rows = data.trend_of(PARK)
    return [
        "<h2>趋势 The last 12 months</h2>",
        *trend_charts(rows, "园区 park"),
        trend_table(rows, enterprises=len(registry.enterprises)),
        '<p class="note">A month without data (no meter sent a reading) is "no data", not zero; "not computed": the'
        " monthly DAG wrote no results for it. The park's emissions add up its enterprises with data.</p>",
    ]


def park_page(registry: Registry, data: MonthData, factors: FactorSet, policy: Policy | None = None) -> str:
    policy = policy or load_policy(None)
    period = data.month.period
    ids = [e.id for e in registry.enterprises]
    credits = data.credits.set_index("enterprise") if len(data.credits) else pd.DataFrame()
    rows = []
    for e in registry.enterprises:
        c = credits.loc[e.id] if e.id in credits.index else {}
        grade = c.get("grade") if len(c) else None
        rows.append(
            [
                f'<a href="enterprises/{escape(e.id)}.html">{escape(e.id)}</a> {escape(e.name)}',
                e.industry,
                _num(data.total(e.id, "total")) if data.has_data(e.id) else NO_DATA,
                _num(c.get("intensity_t_per_10k_cny") if len(c) else None, 4),
                _num(c.get("benchmark_t_per_10k_cny") if len(c) else None, 4),
                _num(c.get("k_ratio") if len(c) else None, 3),
                _num(c.get("credits_tco2") if len(c) else None),
                "–" if grade is None or pd.isna(grade) else str(int(grade)),
                escape(str(c.get("rating", "–") if len(c) else "–")),
            ]
        )
    total_t = sum(data.total(i, "total") for i in ids if data.has_data(i))
    parts = [
        f"<h1>{escape(registry.park.name)}</h1>",
        f"<p>园区碳排放月报 Park monthly carbon report <b>{period}</b> · factor set <b>{escape(factors.id)}</b> · "
        f"{len(ids)} enterprises · total {_num(total_t)} tCO2 (location-based)"
        + (f" · 无数据 no data this month: {escape(', '.join(sorted(data.without_data)))}" if data.without_data else "")
        + "</p>",
        "<h2>企业 Enterprises</h2>",
        _table(
            [
                "企业 enterprise",
                "行业 industry",
                "本月排放 tCO2 this month",
                "强度 intensity (YTD)",
                "基准 benchmark",
                "K",
                "积分 credits (YTD)",
                "等级 grade",
                "评级 rating",
            ],
            rows,
            2,
        ),
        '<p class="note">Intensity and benchmark in tCO2 / 10⁴ CNY value added, year to date; K = intensity /'
        " industry mean (grade limits " + " / ".join(f"{k:g}" for k in policy.grade_k_upper) + ").</p>",
        *park_comparisons(registry, data),
        *park_actions(data),
        bar_chart(
            "本月排放 emissions this month (tCO2, location-based)",
            ids,
            {
                "Scope 1 范围一": [data.total(i, "scope1") for i in ids],
                "Scope 2 范围二": [data.total(i, "scope2") for i in ids],
            },
            "tCO2",
        ),
        bar_chart(
            "碳积分 credits, year to date (+ surplus / − deficit)",
            ids,
            {"credits 积分": [float(credits.at[i, "credits_tco2"]) if i in credits.index else math.nan for i in ids]},
            "tCO2",
        ),
    ]
    if len(credits) and "grade" in credits:
        grades = credits["grade"].dropna().astype(int).value_counts()
        parts.append(
            bar_chart(
                "碳效等级分布 enterprises per grade",
                [str(g) for g in range(1, 6)],
                {"enterprises 企业数": [float(grades.get(g, 0)) for g in range(1, 6)]},
                "enterprises",
                width=420,
            )
        )
    parts += park_trend(registry, data)
    if len(data.near_zero):
        parts.append("<h2>近零碳车间 Near-zero-carbon workshops</h2>")
        parts.append(
            _table(
                ["车间 workshop", "抵消率 offset ratio", "应达 required", "目标 target", "状态 status"],
                [
                    [
                        escape(str(r["workshop"] or r["enterprise"])),
                        _num(r.get("offset_ratio"), 3),
                        _num(r.get("required_ratio"), 3),
                        _num(r.get("target"), 2),
                        near_zero_status(r),
                    ]
                    for r in data.near_zero.to_dict("records")
                ],
            )
        )
    if len(data.evaluation):
        parts += evaluation_section(data.evaluation[data.evaluation["enterprise"] == ""], "园区 park")
        factories = data.evaluation[(data.evaluation["enterprise"] != "") & (data.evaluation["workshop"] == "")]
        if len(factories):
            counts = factories.groupby(["profile", "status"]).size().unstack(fill_value=0)
            parts.append("<h3>企业 Enterprises against the factory profiles (indicators by result)</h3>")
            parts.append(
                _table(
                    ["标准 profile", *[STATUS_TEXT.get(str(c), str(c)) for c in counts.columns]],
                    [[escape(str(p)), *[str(int(v)) for v in row]] for p, row in counts.iterrows()],
                )
            )
    if len(data.quality):
        incomplete = data.quality[data.quality["completeness"] < 1.0]
        parts.append("<h2>数据质量 Data quality</h2>")
        parts.append(
            f"<p>{len(data.quality)} meter registers, mean completeness "
            f"{_num(100 * data.quality['completeness'].mean(), 2)} %, {len(incomplete)} below 100 %, "
            f"{int(data.quality['resets'].sum())} resets, {int(data.quality['estimated_intervals'].sum())} estimated "
            "intervals.</p>"
        )
        problems = problem_meter_rows(data.quality, with_enterprise=True)
        if problems:
            parts.append(
                f"<p><b>问题计量表 Problem meters</b> ({len(problems)}: completeness below 90 % or a reset)</p>"
            )
            parts.append(_table(["企业 enterprise", *PROBLEM_HEADERS], problems, text_columns=3))
    else:
        parts.append("<h2>数据质量 Data quality</h2>")
    parts += gateway_section(data.gateways, len(data.gateway_days), with_enterprise=True)
    parts.append("<h2>排放因子 Emission factors</h2>")
    parts.append(_table(["", "因子 factor", "来源 source"], factor_lines(factors), text_columns=3))
    return _page(f"{registry.park.name} {period}", "".join(parts))


def trade_price(settings: Settings, timezone: str) -> TradePrice | None:
    """The credit ledger's last trade price, read-only; None without a ledger (an embedded one that was
    never created is not created here) or without a priced transfer."""
    if settings.ledger.url is None and not settings.ledger_file.exists():
        return None
    return last_trade_price(settings.ledger_url, timezone)


def write_html_reports(
    settings: Settings,
    store: InfluxStore,
    month: Month,
    frames: Mapping[Measurement, pd.DataFrame],
    registry: Registry | None = None,
) -> Path:
    """Write ``index.html`` (the park) and ``enterprises/<id>.html`` from the month's ``frames`` (and the
    year's emissions, read here); return the park page's path. ``registry``: the month's (None: the file)."""
    registry = registry or load_registry(settings.registry)
    out = settings.run_dir / "reports" / month.period
    (out / "enterprises").mkdir(parents=True, exist_ok=True)
    data = MonthData(store, month, frames)
    used = str(data.emissions["factor_set"].iloc[0]) if len(data.emissions) else settings.factor_set
    factors = factor_set(used)
    policy = load_policy(settings.policy)
    data.take_actions(factors, policy, trade_price(settings, registry.park.timezone))
    data.take_history(registry)
    for enterprise in registry.enterprises:
        page = enterprise_page(registry, data, enterprise.id, factors, policy)
        (out / "enterprises" / f"{enterprise.id}.html").write_text(page, encoding="utf-8")
    index = out / "index.html"
    index.write_text(park_page(registry, data, factors, policy), encoding="utf-8")
    return index
