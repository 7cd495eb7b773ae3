"""The credit report (碳信用报告) a bank reads about one enterprise and year, as HTML and as JSON.

Banks price loans on an enterprise's carbon results (Huzhou 碳效贷 lends by the 碳效 grade; Ningbo
碳资信 rates "carbon credit"; Guangzhou feeds a standard carbon credit report to lenders: see
docs/domain.md §2). The report says what the park's results say of the enterprise's year and where each
figure comes from: the grade and rating, the carbon intensity and its trend (month by month from the
stored year-to-date results, and against the year before), the share of green electricity, how
complete the metered data was, the result version, until when the report stands, and the hash of the
inputs the result was computed from, so a bank can ask the park to show that nothing changed.

The platform fills a :class:`CreditInputs` from its stored results (InfluxDB and the ledger's
database) — this module reads nothing itself and imports nothing but the shared core. The JSON
(:func:`to_json`) is the stable schema :data:`SCHEMA` names; numbers are JSON numbers (null where the
park has no figure), never formatted strings. The HTML (:func:`to_html`) is one self-contained page:
no script, no external stylesheet, font or image.
"""

from __future__ import annotations

import calendar
import html
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

SCHEMA = "parkcarbon.credit-report/1"
# How long a report stands. A settled year's result is assessed once a year, like the annual 碳效
# rating Huzhou's banks lend on, so a settled year's report stands until the end of the following year,
# when the next settlement replaces it; a provisional report (a year not settled yet, from the
# year-to-date results) stands until the end of the month after its latest month, when the next
# monthly run replaces it.
# source: the project's convention from the annual and monthly cycles of the results (DESIGN.md "Flow");
# docs/domain.md §2 (Huzhou 碳效 annual rating and 碳效贷) names no validity period of its own.
SETTLED_VALID_YEARS_AFTER = 1
PROVISIONAL_VALID_MONTHS_AFTER = 1
VALIDITY_BASIS = {
    True: "settled year: stands to the end of the following year (annual assessment cycle)",
    False: "provisional (year to date): stands to the end of the month after its latest month (monthly run)",
}


@dataclass(frozen=True)
class MonthPoint:
    """One month of the year as the monthly results stored it (year to date)."""

    period: str  # YYYY-MM
    intensity_ytd_t_per_10k_cny: float | None
    emissions_month_tco2: float | None  # the enterprise's own total, location-based


@dataclass(frozen=True)
class CreditInputs:
    """What the platform read for one enterprise and year; every figure as stored (None: none stored)."""

    enterprise_id: str
    enterprise_name: str
    industry: str
    year: int
    settled: bool  # True: the annual settlement's row (CREDITS_ANNUAL); False: the latest year-to-date row
    latest_period: str  # the month of the row used (YYYY-12 for a settled year)
    grade: int | None
    rating: str | None
    rating_score: float | None
    intensity_t_per_10k_cny: float | None
    benchmark_t_per_10k_cny: float | None
    emissions_tco2: float | None
    credits_tco2: float | None
    previous_year_intensity_t_per_10k_cny: float | None  # the year before's (settled, else latest year to date)
    months: list[MonthPoint]
    green_share: float | None  # 0..1: (certified green up to the grid draw + self-consumed PV) / (grid + PV)
    completeness: float | None  # 0..1: the mean of the meters' monthly completeness over the year
    months_with_data: int
    policy_version: str | None
    factor_set: str | None
    inputs_sha256: str | None
    result_version: int | None  # the settled year's result version (ledger/results.py); None: not settled
    result_state: str | None = None  # that version's state: draft, published (公示), final, superseded
    credit_validity_years: int | None = None  # the policy's banking validity of credits; None: no expiry
    issued_at: datetime | None = None
    notes: list[str] = field(default_factory=list)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def change_pct(now: float | None, then: float | None) -> float | None:
    """The change from ``then`` to ``now`` in percent of |then|; None from 0 or without either.

    >>> change_pct(0.9, 1.0), change_pct(1.0, 0.0), change_pct(None, 1.0)
    (-9.999999999999998, None, None)
    """
    if now is None or then is None or not (math.isfinite(now) and math.isfinite(then)) or then == 0:
        return None
    return (now - then) / abs(then) * 100


def direction(pct: float | None, flat_pct: float = 1.0) -> str | None:
    """``falling``, ``rising`` or ``flat`` (within ±``flat_pct`` %); None without a change.

    >>> direction(-5.0), direction(0.5), direction(3.0), direction(None)
    ('falling', 'flat', 'rising', None)
    """
    if pct is None:
        return None
    if abs(pct) <= flat_pct:
        return "flat"
    return "falling" if pct < 0 else "rising"


def valid_until(year: int, settled: bool, latest_period: str) -> date:
    """The last day the report stands (see :data:`SETTLED_VALID_YEARS_AFTER`).

    >>> valid_until(2025, True, "2025-12"), valid_until(2026, False, "2026-03"), valid_until(2026, False, "2026-12")
    (datetime.date(2026, 12, 31), datetime.date(2026, 4, 30), datetime.date(2027, 1, 31))
    """
    if settled:
        return date(year + SETTLED_VALID_YEARS_AFTER, 12, 31)
    y, m = (int(p) for p in latest_period.split("-"))
    index = y * 12 + m - 1 + PROVISIONAL_VALID_MONTHS_AFTER
    y, m = index // 12, index % 12 + 1
    return date(y, m, calendar.monthrange(y, m)[1])


def to_json(report: CreditInputs) -> dict[str, Any]:
    """The report as the JSON schema :data:`SCHEMA` (documented in docs/credit_report.md)."""
    intensity = _finite(report.intensity_t_per_10k_cny)
    previous = _finite(report.previous_year_intensity_t_per_10k_cny)
    monthly = [_finite(m.intensity_ytd_t_per_10k_cny) for m in report.months]
    first_month = next((x for x in monthly if x is not None), None)
    last_month = next((x for x in reversed(monthly) if x is not None), None)
    against_year = change_pct(intensity, previous)
    within_year = change_pct(last_month, first_month) if len([x for x in monthly if x is not None]) > 1 else None
    until = valid_until(report.year, report.settled, report.latest_period)
    return {
        "schema": SCHEMA,
        "enterprise": {"id": report.enterprise_id, "name": report.enterprise_name, "industry": report.industry},
        "year": report.year,
        "status": "settled" if report.settled else "provisional",
        "latest_period": report.latest_period,
        "grade": report.grade,
        "rating": report.rating,
        "rating_score": _finite(report.rating_score),
        "intensity": {
            "value_t_per_10k_cny": intensity,
            "benchmark_t_per_10k_cny": _finite(report.benchmark_t_per_10k_cny),
            "previous_year_t_per_10k_cny": previous,
            "change_from_previous_year_pct": against_year,
            "trend": direction(against_year if against_year is not None else within_year),
            "monthly_ytd": [
                {"period": m.period, "intensity_ytd_t_per_10k_cny": x}
                for m, x in zip(report.months, monthly, strict=True)
            ],
        },
        "emissions_tco2": _finite(report.emissions_tco2),
        "credits_tco2": _finite(report.credits_tco2),
        "green_share": _finite(report.green_share),
        "data_completeness": {
            "mean_meter_completeness": _finite(report.completeness),
            "months_with_data": report.months_with_data,
        },
        "result_version": report.result_version,
        "result_state": report.result_state,
        "validity": {
            "valid_until": until.isoformat(),
            "basis": VALIDITY_BASIS[report.settled],
            "credit_validity_years": report.credit_validity_years,
        },
        "provenance": {
            "inputs_sha256": report.inputs_sha256,
            "policy_version": report.policy_version,
            "factor_set": report.factor_set,
        },
        "issued_at": report.issued_at.isoformat() if report.issued_at else None,
        "notes": list(report.notes),
    }


def _fmt(value: object, digits: int = 3, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return html.escape(str(value)) + suffix


STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}"
    "td,th{border:1px solid #999;padding:.3em .6em;text-align:left}td.n{text-align:right}"
    ".grade{font-size:2em;font-weight:bold}"
)


def to_html(report: CreditInputs) -> str:
    """The report as one self-contained HTML page (every text escaped; nothing loaded from elsewhere)."""
    data = to_json(report)
    e = html.escape
    i = data["intensity"]
    share = data["green_share"]
    completeness = data["data_completeness"]["mean_meter_completeness"]
    rows = [
        ("等级 grade", f'<span class="grade" id="grade">{_fmt(data["grade"])}</span>'),
        ("评级 rating (score)", f"{_fmt(data['rating'])} ({_fmt(data['rating_score'], 1)})"),
        ("碳强度 intensity [t/10⁴ CNY]", f'<span id="intensity">{_fmt(i["value_t_per_10k_cny"])}</span>'),
        ("行业基准 benchmark [t/10⁴ CNY]", _fmt(i["benchmark_t_per_10k_cny"])),
        ("上年 previous year [t/10⁴ CNY]", _fmt(i["previous_year_t_per_10k_cny"])),
        ("变化 change from previous year", _fmt(i["change_from_previous_year_pct"], 1, " %")),
        ("趋势 trend", _fmt(i["trend"])),
        ("排放 emissions [tCO2]", _fmt(data["emissions_tco2"], 1)),
        ("碳积分 credits [tCO2]", _fmt(data["credits_tco2"], 1)),
        ("绿电占比 green share", _fmt(share * 100 if share is not None else None, 1, " %")),
        ("数据完整率 data completeness", _fmt(completeness * 100 if completeness is not None else None, 1, " %")),
        ("有数据月份 months with data", _fmt(data["data_completeness"]["months_with_data"])),
        ("结果版本 result version", f"{_fmt(data['result_version'])} ({_fmt(data['result_state'])})"),
        ("有效期至 valid until", f'<span id="valid-until">{e(data["validity"]["valid_until"])}</span>'),
        ("有效期依据 validity basis", e(data["validity"]["basis"])),
        ("政策版本 policy version", _fmt(data["provenance"]["policy_version"])),
        ("排放因子 factor set", _fmt(data["provenance"]["factor_set"])),
        ("输入哈希 inputs SHA-256", f'<code id="inputs-sha256">{_fmt(data["provenance"]["inputs_sha256"])}</code>'),
    ]
    months = "".join(
        f"<tr><td>{e(m['period'])}</td><td class=n>{_fmt(m['intensity_ytd_t_per_10k_cny'])}</td></tr>"
        for m in i["monthly_ytd"]
    )
    enterprise = data["enterprise"]
    title = f"碳信用报告 credit report · {enterprise['name']} ({enterprise['id']}) · {data['year']}"
    return (
        "<!doctype html>\n<html lang=zh><head><meta charset=utf-8>"
        f"<title>{e(title)}</title><style>{STYLE}</style></head><body>"
        f"<h1 id=title>{e(title)}</h1>"
        f"<p id=status>{e(data['status'])} · {e(enterprise['industry'])} · through {e(data['latest_period'])}</p>"
        "<table id=report>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
        "<h2>逐月累计碳强度 intensity year to date by month</h2>"
        f"<table id=months><tr><th>month</th><th>t/10⁴ CNY</th></tr>{months}</table>"
        + "".join(f"<p class=note>{e(n)}</p>" for n in data["notes"])
        + f"<p>schema {e(SCHEMA)}</p></body></html>\n"
    )
