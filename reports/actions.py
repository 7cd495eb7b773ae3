"""What it takes, per enterprise: the figures that turn a month's results into decisions.

- **To the next better grade**: the grade comes from K = intensity / industry mean against the
  policy's upper bounds of K per grade. With value added and the industry mean as they stand, the
  emissions at which K reaches the upper bound of the next better grade are
  E' = K_upper × industry mean × value added, so the tonnes to cut are E − E'.
- **To break even**: credits = benchmark × value added − E; a deficit is closed by cutting its
  size, E − benchmark × value added.
- **The biggest emission source** (location-based, year to date): fuels by their factors, grid
  electricity net of exports by the grid factor, purchased heat net of exported heat.
- **In CNY**: each tonnage at the ledger's last trade price (the latest priced transfer), when
  there is one: what buying that many credits would cost.
- **Problem meters**: registers with completeness below 0.9, or with a reset, in the month.
- **Problem gateways**: in the month, offline on a day (announced offline, or every meter silent:
  GATEWAY_QUALITY_DAILY), stale (a meter of it silent a whole day), or its registers' mean
  completeness below 0.9 (DATA_QUALITY, meters mapped to their gateway by the registry).

Pure functions on the frames the reports read (and, for the price, the ledger opened read-only); the
report pages and the platform's pages show the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from scoring.accounting import FUELS, KWH_PER_MWH, Source, to_accounting_units
from scoring.factors import FactorSet

PROBLEM_COMPLETENESS = 0.9

# Sources that emit, and those that are netted against them (exports).
EMITTING = (*FUELS, Source.GRID_ELECTRICITY, Source.PURCHASED_HEAT)
NETTED = {Source.EXPORTED_ELECTRICITY: Source.GRID_ELECTRICITY, Source.EXPORTED_HEAT: Source.PURCHASED_HEAT}


@dataclass(frozen=True)
class TradePrice:
    """The ledger's last priced transfer."""

    cny_per_t: float
    transaction_id: int
    booked_at: datetime


@dataclass(frozen=True)
class WhatItTakes:
    """One enterprise's figures; None where a figure does not apply or cannot be known."""

    enterprise: str
    emissions_t: float
    grade: int | None
    next_grade: int | None  # the next better grade; None at grade 1 or without a grade
    to_next_grade_t: float | None  # tonnes to cut to reach it
    credits_t: float | None  # + surplus / − deficit
    to_break_even_t: float | None  # tonnes to cut to credits = 0 (0 when in surplus)
    biggest_source: str | None
    biggest_source_t: float | None
    price: TradePrice | None

    def cny(self, tonnes: float | None) -> float | None:
        """``tonnes`` at the last trade price; None without a price or a figure."""
        if self.price is None or tonnes is None or not math.isfinite(tonnes):
            return None
        return tonnes * self.price.cny_per_t


def number(value: object) -> float:
    """``value`` as a float, NaN for None, NA and what is not a number."""
    if value is None or value is pd.NA:
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def what_it_takes(
    credit: Mapping[str, object],
    k_upper: Sequence[float],
    sources_t: Mapping[str, float],
    price: TradePrice | None,
) -> WhatItTakes:
    """The figures for one enterprise from its row of CREDITS (year to date), the policy's upper
    bounds of K per grade (``grade_k_upper``), its emissions by source (tCO2) and the trade price."""
    emissions = number(credit.get("emissions_tco2"))
    value_added = number(credit.get("value_added_used_10k_cny"))
    k_ratio = number(credit.get("k_ratio"))
    benchmark = number(credit.get("benchmark_t_per_10k_cny"))
    credits = number(credit.get("credits_tco2"))
    grade_value = number(credit.get("grade"))
    grade = int(grade_value) if math.isfinite(grade_value) else None

    next_grade = to_next = None
    if grade is not None and grade > 1 and math.isfinite(k_ratio) and k_ratio > 0 and value_added > 0:
        industry_mean = emissions / value_added / k_ratio
        target = k_upper[grade - 2] * industry_mean * value_added  # E' at K = upper bound of grade − 1
        next_grade, to_next = grade - 1, max(emissions - target, 0.0)

    to_break_even = None
    if math.isfinite(credits) and math.isfinite(benchmark) and value_added > 0:
        to_break_even = max(emissions - benchmark * value_added, 0.0)

    emitting = {name: t for name, t in sources_t.items() if math.isfinite(t) and t > 0}
    biggest = max(emitting, key=lambda name: emitting[name]) if emitting else None
    return WhatItTakes(
        enterprise=str(credit.get("enterprise", "")),
        emissions_t=emissions,
        grade=grade,
        next_grade=next_grade,
        to_next_grade_t=to_next,
        credits_t=credits if math.isfinite(credits) else None,
        to_break_even_t=to_break_even,
        biggest_source=biggest,
        biggest_source_t=emitting[biggest] if biggest is not None else None,
        price=price,
    )


def source_emissions(activity: pd.DataFrame, factors: FactorSet) -> pd.DataFrame:
    """Location-based tCO2 per enterprise and emitting source from enterprise-level activity rows
    (``enterprise, source, quantity, unit``; other sources, such as PV generation, are left out):
    columns ``enterprise, source, tco2``."""
    columns = ["enterprise", "source", "tco2"]
    known = {s.value for s in (*EMITTING, *NETTED)}
    rows = activity[activity["source"].isin(known)] if len(activity) else activity
    if not len(rows):
        return pd.DataFrame(columns=columns)
    data = to_accounting_units(rows[["enterprise", "source", "quantity", "unit"]])
    sign = [-1.0 if Source(s) in NETTED else 1.0 for s in data["source"]]
    data["net"] = data["accounting_quantity"] * sign  # exports count against what they are exported from
    data["source"] = [NETTED.get(Source(s), Source(s)).value for s in data["source"]]
    totals = data.groupby(["enterprise", "source"], as_index=False)["net"].sum()

    def factor(source: str) -> float:
        if source == Source.GRID_ELECTRICITY.value:
            return factors.electricity.location_t_per_mwh / KWH_PER_MWH
        if source == Source.PURCHASED_HEAT.value:
            return factors.heat.t_per_gj
        return factors.fuels[source].factor_t_per_unit

    pairs = zip(totals["source"], totals["net"], strict=True)
    totals["tco2"] = [max(net, 0.0) * factor(source) for source, net in pairs]
    return totals[columns]


def problem_meters(quality: pd.DataFrame) -> pd.DataFrame:
    """The month's DATA_QUALITY rows with completeness below 0.9 or a reset, worst first."""
    if not len(quality):
        return quality
    completeness = pd.to_numeric(quality["completeness"], errors="coerce")
    resets = pd.to_numeric(quality.get("resets", pd.Series(0, index=quality.index)), errors="coerce").fillna(0)
    problems = quality[(completeness < PROBLEM_COMPLETENESS) | (resets > 0)]
    return problems.sort_values(["completeness", "enterprise", "meter"]).reset_index(drop=True)


GATEWAY_COLUMNS = [
    "enterprise",
    "gateway",
    "days_reported",
    "days_offline",
    "offline_last_day",
    "days_with_silent_meters",
    "meters_silent_last_day",
    "registers",
    "completeness",
    "registers_below_90",
    "problems",
]
OFFLINE, STALE, LOW_COMPLETENESS = "offline", "stale", "low_completeness"


def _true(value: object) -> bool:
    """A boolean field that is there and true (a missing field, NaN, is not)."""
    return isinstance(value, bool | np.bool_) and bool(value)


def gateway_days(rows: pd.DataFrame) -> dict[str, object]:
    """One gateway's month from its GATEWAY_QUALITY_DAILY rows (in any order)."""
    if not len(rows):
        return {
            "days_reported": 0,
            "days_offline": 0,
            "offline_last_day": None,
            "days_with_silent_meters": 0,
            "meters_silent_last_day": math.nan,
        }
    rows = rows.sort_values("time")
    silent = pd.to_numeric(rows["meters_silent"], errors="coerce").fillna(0.0)
    offline = [_true(v) for v in rows["offline"]] if "offline" in rows else [False] * len(rows)
    return {
        "days_reported": len(rows),
        "days_offline": sum(offline),
        "offline_last_day": offline[-1],
        "days_with_silent_meters": int((silent > 0).sum()),
        "meters_silent_last_day": float(silent.iloc[-1]),
    }


def gateway_completeness(completeness: pd.Series) -> dict[str, object]:
    """The month's completeness of a gateway's meter registers (their DATA_QUALITY completeness)."""
    return {
        "registers": len(completeness),
        "completeness": float(completeness.mean()) if len(completeness) else math.nan,
        "registers_below_90": int((completeness < PROBLEM_COMPLETENESS).sum()),
    }


def gateway_problems(row: Mapping[str, object]) -> list[str]:
    """What is wrong with a gateway's month: OFFLINE, STALE, LOW_COMPLETENESS (none: an empty list)."""
    problems = []
    if number(row.get("days_offline")) > 0:
        problems.append(OFFLINE)
    if number(row.get("days_with_silent_meters")) > 0:
        problems.append(STALE)
    if number(row.get("completeness")) < PROBLEM_COMPLETENESS:
        problems.append(LOW_COMPLETENESS)
    return problems


def gateway_month(
    daily: pd.DataFrame,
    quality: pd.DataFrame,
    gateway_enterprise: Mapping[str, str],
    gateway_meters: Mapping[str, Sequence[str]],
) -> pd.DataFrame:
    """Each gateway's month (GATEWAY_COLUMNS) from the month's GATEWAY_QUALITY_DAILY and DATA_QUALITY
    rows; ``gateway_enterprise`` and ``gateway_meters`` from the registry."""
    days = dict(tuple(daily.groupby("gateway"))) if len(daily) else {}
    gateway_of = {meter: gateway for gateway, meters in gateway_meters.items() for meter in meters}
    completeness = pd.to_numeric(quality["completeness"], errors="coerce") if len(quality) else pd.Series(dtype=float)
    by_gateway = dict(tuple(completeness.groupby(quality["meter"].map(gateway_of)))) if len(quality) else {}
    rows = []
    for gateway, enterprise in gateway_enterprise.items():
        row: dict[str, object] = {"enterprise": enterprise, "gateway": gateway}
        row |= gateway_days(days.get(gateway, daily.iloc[0:0]))
        row |= gateway_completeness(by_gateway.get(gateway, pd.Series(dtype=float)))
        row["problems"] = gateway_problems(row)
        rows.append(row)
    return pd.DataFrame(rows, columns=GATEWAY_COLUMNS)


def problem_gateways(gateways: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`gateway_month` with a problem: offline on the last day first, then by days
    offline, days with silent meters and completeness, worst first."""
    if not len(gateways):
        return gateways
    problems = gateways[gateways["problems"].map(len) > 0].copy()
    problems["_offline_now"] = problems["offline_last_day"].map(_true)
    ordered = problems.sort_values(
        ["_offline_now", "days_offline", "days_with_silent_meters", "completeness", "gateway"],
        ascending=[False, False, False, True, True],
    )
    return ordered.drop(columns="_offline_now").reset_index(drop=True)


def last_trade_price(ledger_url: str, timezone: str) -> TradePrice | None:
    """The price of the latest priced transfer in the ledger at ``ledger_url``, read-only; None when
    there is no ledger (at the current schema) or no priced transfer yet."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from ledger.book import Ledger
    from ledger.schema import transactions

    try:
        ledger = Ledger.open_read_only(ledger_url, timezone)
    except SQLAlchemyError:
        return None
    if ledger is None:
        return None
    try:
        with ledger.engine.connect() as conn:
            row = conn.execute(
                select(transactions.c.id, transactions.c.price_fen_per_t, transactions.c.requested_at)
                .where(transactions.c.kind == "transfer", transactions.c.price_fen_per_t.is_not(None))
                .order_by(transactions.c.requested_at.desc(), transactions.c.id.desc())
                .limit(1)
            ).first()
    except SQLAlchemyError:
        return None
    finally:
        ledger.close()
    if row is None:
        return None
    return TradePrice(int(row.price_fen_per_t) / 100, int(row.id), row.requested_at)
