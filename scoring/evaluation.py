"""Evaluate enterprises, their workshops and the park against a near-zero / zero-carbon profile.

Inputs are what :func:`scoring.engine.score` produces (``ScoreResult.emissions``: monthly rows per
enterprise and workshop with the accounting-unit quantities and tCO2 columns), the enterprises'
value added, the factor set the emissions were computed with, and reviewed manual facts
(:class:`scoring.profiles.Facts`). Nothing is read or written here.

For each subject and indicator the result gives the value, the threshold that applies to the year
(and its target year), the source document and clause, pass / fail / unknown / n/a, and the gap in
the indicator's own unit and, where meaningful, in tCO2, with what would close it ("offset 612 t
more, or add 1.1 GWh of certified green power", at the factor set's grid factor).

- Subjects: a factory profile evaluates each enterprise (its main-meter totals) and each workshop on
  its sub-meter boundary, as the profile's ``workshop`` section says per indicator; a park profile
  evaluates the park (Σ over its enterprises), or one enterprise against the park's values when asked.
- Years with fewer than 12 months of data are evaluated on the months they have (ratios) with value
  added prorated (intensities), and marked provisional; a year-on-year comparison needs complete years.
- A missing reviewed fact makes its indicator "unknown", never a pass; a threshold that was not found
  is "unknown" and counted apart, so a profile can be met "on every threshold found".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from scoring.accounting import KWH_PER_MWH, Source, quantity_column
from scoring.energy import kwh_per_tce, with_energy
from scoring.factors import FactorSet
from scoring.profiles import Facts, Indicator, Profile

Status = Literal["pass", "fail", "unknown", "n/a"]
SubjectKind = Literal["park", "enterprise", "workshop"]
PARK = "PARK"

GRID = quantity_column(Source.GRID_ELECTRICITY)
GREEN = quantity_column(Source.GREEN_ELECTRICITY_CERTIFIED)
PV_SELF = quantity_column(Source.PV_SELF_CONSUMED)
EXPORTED = quantity_column(Source.EXPORTED_ELECTRICITY)
SUM_COLUMNS = [quantity_column(s) for s in Source] + [
    "scope1_tco2",
    "scope2_location_tco2",
    "scope2_market_tco2",
    "total_location_tco2",
    "total_market_tco2",
]
INDICATOR_COLUMNS = [
    "subject",
    "enterprise",
    "workshop",
    "year",
    "profile",
    "profile_version",
    "indicator",
    "name_zh",
    "name_en",
    "unit",
    "comparison",
    "threshold",
    "target_year",
    "value",
    "status",
    "gap",
    "gap_tco2",
    "action",
    "manual",
    "source",
    "issuer",
    "clause",
    "boundary",
    "note",
    "months",
    "provisional",
    "factor_set",
]
SUMMARY_COLUMNS = [
    "subject",
    "enterprise",
    "workshop",
    "year",
    "profile",
    "status",
    "passed",
    "failed",
    "unknown",
    "not_applicable",
    "threshold_not_found",
    "months",
]


@dataclass(frozen=True)
class Evaluation:
    profile: Profile
    year: int
    indicators: pd.DataFrame  # one row per subject and indicator (INDICATOR_COLUMNS)
    summary: pd.DataFrame  # one row per subject (SUMMARY_COLUMNS)
    series: pd.DataFrame  # annual emissions per subject with the year-on-year change


# -- annual totals and the year-on-year series --------------------------------------------------------


def annual_totals(emissions: pd.DataFrame) -> pd.DataFrame:
    """Sum monthly emissions rows to one row per enterprise, workshop and year, with energy columns.

    Adds ``months`` (months with data), ``grid_draw_kwh`` (grid − exported, ≥ 0), ``green_used_kwh``
    (certificates up to the grid draw) and the :func:`scoring.energy.with_energy` columns.
    """
    data = emissions.copy()
    data["workshop"] = data["workshop"].fillna("").astype(str) if "workshop" in data else ""
    data["year"] = data["period"].str.slice(0, 4).astype(int)
    for column in SUM_COLUMNS:
        if column not in data:
            data[column] = 0.0
    grouped = data.groupby(["enterprise", "workshop", "year"], sort=True)
    out = grouped[SUM_COLUMNS].sum()
    out["months"] = grouped["period"].nunique()
    out = out.reset_index()
    out["grid_draw_kwh"] = (out[GRID] - out[EXPORTED]).clip(lower=0.0)
    out["green_used_kwh"] = np.minimum(out[GREEN].clip(lower=0.0), out["grid_draw_kwh"])
    return with_energy(out)


def yearly_series(annual: pd.DataFrame, basis: str = "location") -> pd.DataFrame:
    """Annual emissions per enterprise and workshop with the change against the year before.

    ``declined`` is true when the year is below the previous one, both complete (12 months).

    Examples
    --------
    >>> annual = pd.DataFrame({"enterprise": ["E"] * 3, "workshop": [""] * 3, "year": [2022, 2023, 2024],
    ...                        "months": [12, 12, 12], "total_location_tco2": [100.0, 90.0, 95.0]})
    >>> yearly_series(annual)[["year", "change_tco2", "declined"]].to_dict("list")
    {'year': [2022, 2023, 2024], 'change_tco2': [nan, -10.0, 5.0], 'declined': [None, True, False]}
    """
    column = f"total_{basis}_tco2"
    out = annual[["enterprise", "workshop", "year", "months", column]].rename(columns={column: "emissions_tco2"})
    out = out.sort_values(["enterprise", "workshop", "year"]).reset_index(drop=True)
    out["complete"] = out["months"] == 12
    previous = out.groupby(["enterprise", "workshop"])["emissions_tco2"].shift(1)
    previous_year = out.groupby(["enterprise", "workshop"])["year"].shift(1)
    previous_complete = out.groupby(["enterprise", "workshop"])["complete"].shift(1).astype("boolean")
    consecutive = previous_year == out["year"] - 1
    out["change_tco2"] = (out["emissions_tco2"] - previous).where(consecutive)
    out["change"] = (out["change_tco2"] / previous).where(consecutive & (previous > 0))
    comparable = consecutive & out["complete"] & previous_complete.fillna(False)
    out["declined"] = pd.array(
        [bool(c < 0) if ok else pd.NA for c, ok in zip(out["change_tco2"], comparable, strict=True)], dtype="boolean"
    )
    return out


# -- formatting of gaps -------------------------------------------------------------------------------


def fmt_t(tco2: float) -> str:
    """A tCO2 amount for a sentence.

    Examples
    --------
    >>> fmt_t(612.4), fmt_t(7.25), fmt_t(12345.6)
    ('612 t', '7.25 t', '12,346 t')
    """
    return f"{tco2:,.0f} t" if abs(tco2) >= 10 else f"{tco2:,.2f} t"


def fmt_kwh(kwh: float) -> str:
    """An amount of electricity in kWh, MWh or GWh.

    Examples
    --------
    >>> fmt_kwh(1_100_000.0), fmt_kwh(23_456.0), fmt_kwh(512.0)
    ('1.1 GWh', '23.5 MWh', '512 kWh')
    """
    if abs(kwh) >= 1e6:
        return f"{kwh / 1e6:,.1f} GWh"
    if abs(kwh) >= 1e3:
        return f"{kwh / 1e3:,.1f} MWh"
    return f"{kwh:,.0f} kWh"


# -- one indicator ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    value: float | bool | str | None = math.nan
    status: Status = "unknown"
    gap: float = math.nan
    gap_tco2: float = math.nan
    action: str = ""
    note: str = ""
    manual: bool = False


@dataclass
class Context:
    kind: SubjectKind
    enterprise: str
    workshop: str  # the boundary measured ("" = the enterprise's main meters or the park)
    fact_workshop: str  # whose facts apply ("" = the enterprise's)
    year: int
    totals: Mapping[str, float]
    history: Mapping[int, tuple[float, int]]  # year -> (emissions by basis, months) of the boundary, location
    history_market: Mapping[int, tuple[float, int]]
    value_added: float  # 10^4 CNY, prorated to months with data; NaN when not known
    value_added_note: str
    months: int  # months with data in the year (the most any enterprise has, for the park)
    factors: FactorSet
    facts: Facts
    notes: list[str] = field(default_factory=list)


def _passes(value: float | bool | str, comparison: str, threshold: object) -> bool:
    """Whether ``value`` meets ``threshold``.

    Examples
    --------
    >>> _passes(0.8, ">=", 0.8), _passes(1.26, "<=", 1.25), _passes("city", "in", ["national", "provincial"])
    (True, False, False)
    """
    if comparison == ">=":
        return float(value) >= float(threshold)  # type: ignore[arg-type]
    if comparison == "<=":
        return float(value) <= float(threshold)  # type: ignore[arg-type]
    if comparison == "in":
        return value in threshold  # type: ignore[operator]
    return value == threshold


def _numeric(value: float, ind: Indicator, threshold: float) -> Status:
    return "pass" if _passes(value, ind.comparison, threshold) else "fail"


def _grid_left_kwh(ctx: Context) -> float:
    """Grid draw not yet covered by certificates [kWh]: what more certificates could still cover."""
    return max(ctx.totals["grid_draw_kwh"] - ctx.totals["green_used_kwh"], 0.0)


def _offset_share(ind: Indicator, threshold: float, ctx: Context) -> Outcome:
    emissions = ctx.totals[f"total_{ind.basis}_tco2"]
    factor = ctx.factors.electricity.location_t_per_mwh
    certificates_t = ctx.totals["green_used_kwh"] / KWH_PER_MWH * factor
    fact = ctx.facts.get(ctx.enterprise, ctx.fact_workshop, ctx.year, "offsets_retired_tco2")
    retired_t = float(fact.value) if fact is not None else 0.0
    if emissions <= 0:
        return Outcome(note="no emissions to offset")
    value = (certificates_t + retired_t) / emissions
    note = f"certificates {fmt_t(certificates_t)} at {factor:g} t/MWh + retired offsets " + (
        f"{fmt_t(retired_t)} (reviewed: {fact.reviewed_by}, {fact.reviewed_on})"
        if fact is not None
        else "unknown (no reviewed offsets_retired_tco2): certificates only"
    )
    if value >= threshold:
        return Outcome(value=value, status="pass", gap=0.0, gap_tco2=0.0, note=note)
    need_t = threshold * emissions - certificates_t - retired_t
    left_kwh = _grid_left_kwh(ctx)
    cover_t = left_kwh / KWH_PER_MWH * factor
    if need_t <= cover_t:
        action = (
            f"offset {fmt_t(need_t)} more, or add {fmt_kwh(need_t / factor * KWH_PER_MWH)} of certified green power"
        )
    else:
        action = (
            f"offset {fmt_t(need_t)} more; certified green power can cover at most {fmt_t(cover_t)} (the"
            f" {fmt_kwh(left_kwh)} of grid draw not yet covered), the rest only by offsets"
        )
    return Outcome(
        value=value,
        status="fail" if fact is not None else "unknown",
        gap=threshold - value,
        gap_tco2=need_t,
        action=action,
        note=note,
    )


def _known_year(history: Mapping[int, tuple[float, int]], ctx: Context, year: int) -> tuple[float, str] | None:
    """A complete year's emissions: metered when all 12 months have data, else reviewed manual data."""
    metered = history.get(year)
    if metered is not None and metered[1] == 12:
        return metered[0], "metered"
    fact = ctx.facts.get(ctx.enterprise, ctx.fact_workshop, year, "annual_emissions_tco2")
    if fact is not None:
        return float(fact.value), f"reviewed by {fact.reviewed_by}"
    return None


def _consecutive_declines(ind: Indicator, threshold: float, ctx: Context) -> Outcome:
    history = ctx.history if ind.basis == "location" else ctx.history_market
    needed = math.ceil(threshold)
    known = {y: _known_year(history, ctx, y) for y in range(ctx.year - needed, ctx.year + 1)}
    series = "; ".join(f"{y}: {fmt_t(v[0])} ({v[1]})" for y, v in sorted(known.items()) if v is not None)
    declines, year = 0, ctx.year
    while declines < needed:
        current, previous = known[year], known[year - 1]
        if current is None or previous is None:
            missing = year if current is None else year - 1
            months = history.get(missing, (0.0, 0))[1]
            return Outcome(
                value=float(declines),
                gap=threshold - declines,
                note=f"no complete year {missing} ({months} months metered, no reviewed annual_emissions_tco2);"
                f" {series}",
            )
        if current[0] >= previous[0]:
            if year == ctx.year:
                excess = current[0] - previous[0]
                action = (
                    f"cut more than {fmt_t(excess)}, to fall below {year - 1}'s {fmt_t(previous[0])}"
                    if excess > 0
                    else f"equal to {year - 1}'s {fmt_t(previous[0])}: any cut below it"
                )
                gap_t = excess
            else:
                action = (
                    f"emissions rose in {year}: {needed} declines in a row are possible from {year + needed}"
                    " at the earliest"
                )
                gap_t = math.nan
            return Outcome(
                value=float(declines),
                status="fail",
                gap=threshold - declines,
                gap_tco2=gap_t,
                action=action,
                note=series,
            )
        declines += 1
        year -= 1
    return Outcome(value=float(declines), status="pass", gap=0.0, note=series)


def _emissions_per_tce(ind: Indicator, threshold: float, ctx: Context) -> Outcome:
    emissions, energy = ctx.totals[f"total_{ind.basis}_tco2"], ctx.totals["energy_tce"]
    if energy <= 0:
        return Outcome(note="no energy consumption")
    value = emissions / energy
    note = f"{fmt_t(emissions)} over {energy:,.2f} tce"
    if value <= threshold:
        return Outcome(value=value, status="pass", gap=0.0, gap_tco2=0.0, note=note)
    excess_t = emissions - threshold * energy
    action = f"cut {fmt_t(excess_t)} at the same energy use"
    if ind.basis == "market":
        residual = ctx.factors.electricity.residual_t_per_mwh
        left_kwh = _grid_left_kwh(ctx)
        cover_t = left_kwh / KWH_PER_MWH * residual
        if excess_t <= cover_t:
            action += f", or add {fmt_kwh(excess_t / residual * KWH_PER_MWH)} of certified green power"
        else:
            action += (
                f"; certified green power can take off at most {fmt_t(cover_t)} ({fmt_kwh(left_kwh)} of grid draw)"
            )
    return Outcome(value=value, status="fail", gap=value - threshold, gap_tco2=excess_t, action=action, note=note)


def _share_outcome(value: float, threshold: float, missing_kwh: float, ctx: Context, note: str) -> Outcome:
    if value >= threshold:
        return Outcome(value=value, status="pass", gap=0.0, note=note)
    left_kwh = _grid_left_kwh(ctx)
    action = f"add {fmt_kwh(missing_kwh)} of certified green power or self-consumed PV"
    if missing_kwh > left_kwh:
        action += f" (certificates can cover at most the {fmt_kwh(left_kwh)} of grid draw not yet covered)"
    return Outcome(value=value, status="fail", gap=threshold - value, action=action, note=note)


def _renewable_energy_share(ind: Indicator, threshold: float, ctx: Context) -> Outcome:
    renewable, energy = ctx.totals["renewable_tce"], ctx.totals["energy_tce"]
    if energy <= 0:
        return Outcome(note="no energy consumption")
    missing_kwh = (threshold * energy - renewable) * kwh_per_tce()
    note = f"{renewable:,.2f} tce renewable of {energy:,.2f} tce"
    return _share_outcome(renewable / energy, threshold, missing_kwh, ctx, note)


def _renewable_electricity_share(ind: Indicator, threshold: float, ctx: Context) -> Outcome:
    renewable = ctx.totals["renewable_electricity_kwh"]
    used = ctx.totals["grid_draw_kwh"] + ctx.totals[PV_SELF]
    if used <= 0:
        return Outcome(note="no electricity used")
    note = f"{fmt_kwh(renewable)} renewable of {fmt_kwh(used)}"
    return _share_outcome(renewable / used, threshold, threshold * used - renewable, ctx, note)


def _electrification_rate(ind: Indicator, threshold: float, ctx: Context) -> Outcome:
    electricity, energy = ctx.totals["electricity_tce"], ctx.totals["energy_tce"]
    if energy <= 0:
        return Outcome(note="no energy consumption")
    value = electricity / energy
    note = f"{electricity:,.2f} tce electricity of {energy:,.2f} tce"
    if value >= threshold:
        return Outcome(value=value, status="pass", gap=0.0, note=note)
    points = (threshold - value) * 100
    action = (
        f"raise electricity's share of final energy by {points:.1f} percentage points (replace fuel use by electric)"
    )
    return Outcome(value=value, status="fail", gap=threshold - value, action=action, note=note)


def _per_value_added(ind: Indicator, threshold: float, ctx: Context) -> Outcome:
    va = ctx.value_added
    if not (va > 0):
        return Outcome(note=ctx.value_added_note or "no value added")
    if ind.metric == "energy_per_value_added":
        amount, unit = ctx.totals["energy_tce"], "tce"
    else:
        amount, unit = ctx.totals[f"total_{ind.basis}_tco2"], "t"
    value = amount / va
    note = f"{amount:,.2f} {unit} over {va:,.2f} × 10^4 CNY" + (
        f"; {ctx.value_added_note}" if ctx.value_added_note else ""
    )
    if value <= threshold:
        return Outcome(value=value, status="pass", gap=0.0, gap_tco2=0.0 if unit == "t" else math.nan, note=note)
    excess = amount - threshold * va
    if unit == "t":
        return Outcome(
            value=value, status="fail", gap=value - threshold, gap_tco2=excess, action=f"cut {fmt_t(excess)}", note=note
        )
    return Outcome(value=value, status="fail", gap=value - threshold, action=f"cut {excess:,.1f} tce", note=note)


def _footprint_reduction(ind: Indicator, threshold: float, ctx: Context) -> Outcome:
    base = ctx.facts.get(ctx.enterprise, ctx.fact_workshop, ctx.year, "key_product_footprint_base")
    current = ctx.facts.get(ctx.enterprise, ctx.fact_workshop, ctx.year, "key_product_footprint_current")
    if base is None or current is None:
        missing = [
            n
            for n, f in (("key_product_footprint_base", base), ("key_product_footprint_current", current))
            if f is None
        ]
        return Outcome(note=f"no reviewed {', '.join(missing)}", manual=True)
    value = 1.0 - float(current.value) / float(base.value)
    note = f"{float(current.value):g} vs base {float(base.value):g} kgCO2e/unit (reviewed: {current.reviewed_by})"
    if value >= threshold:
        return Outcome(value=value, status="pass", gap=0.0, note=note, manual=True)
    target = float(base.value) * (1.0 - threshold)
    action = f"bring the footprint to {target:g} kgCO2e/unit or below"
    return Outcome(value=value, status="fail", gap=threshold - value, action=action, note=note, manual=True)


def _fact(ind: Indicator, threshold: object, ctx: Context) -> Outcome:
    assert ind.fact is not None
    fact = ctx.facts.get(ctx.enterprise, ctx.fact_workshop, ctx.year, ind.fact)
    if fact is None:
        who = ctx.enterprise + (f"/{ctx.fact_workshop}" if ctx.fact_workshop else "")
        return Outcome(value=None, note=f"no reviewed {ind.fact} for {who} {ctx.year}", manual=True)
    note = f"reviewed by {fact.reviewed_by} on {fact.reviewed_on}: {fact.evidence}"
    if isinstance(fact.value, str) and fact.value in ind.not_applicable_values:
        return Outcome(value=fact.value, status="n/a", note=note, manual=True)
    ok = _passes(fact.value, ind.comparison, threshold)
    return Outcome(value=fact.value, status="pass" if ok else "fail", note=note, manual=True)


_METRICS: dict[str, Callable[[Indicator, float, Context], Outcome]] = {
    "offset_share": _offset_share,
    "consecutive_declines": _consecutive_declines,
    "emissions_per_tce": _emissions_per_tce,
    "renewable_energy_share": _renewable_energy_share,
    "renewable_electricity_share": _renewable_electricity_share,
    "electrification_rate": _electrification_rate,
    "energy_per_value_added": _per_value_added,
    "co2_per_value_added": _per_value_added,
    "footprint_reduction": _footprint_reduction,
}


def evaluate_indicator(ind: Indicator, ctx: Context) -> tuple[Outcome, object, int | None]:
    """One indicator for one subject: the outcome, the threshold applied and its target year."""
    threshold, target_year = ind.threshold_for(ctx.year)
    if ind.not_found is not None:
        return Outcome(note=f"threshold not found: {ind.not_found}"), None, None
    if ind.metric == "fact":
        return _fact(ind, threshold, ctx), threshold, target_year
    assert isinstance(threshold, float | int) and not isinstance(threshold, bool)
    return _METRICS[ind.metric](ind, float(threshold), ctx), threshold, target_year


# -- subjects -----------------------------------------------------------------------------------------


def _history(annual: pd.DataFrame, enterprise: str, workshop: str, basis: str) -> dict[int, tuple[float, int]]:
    rows = annual[(annual["enterprise"] == enterprise) & (annual["workshop"] == workshop)]
    return {
        int(y): (float(e), int(m))
        for y, e, m in zip(rows["year"], rows[f"total_{basis}_tco2"], rows["months"], strict=True)
    }


def _value_added(enterprises: pd.DataFrame, own: pd.DataFrame, year: int) -> tuple[float, str]:
    """Σ value added of the enterprises in ``own`` (annual rows of ``year``), prorated to their months."""
    firms = enterprises[enterprises["year"].astype(int) == year].set_index("enterprise")["value_added_10k_cny"]
    total, missing = 0.0, []
    for enterprise, months in zip(own["enterprise"], own["months"], strict=True):
        va = float(firms.get(enterprise, math.nan))
        if va > 0:
            total += va * int(months) / 12.0
        else:
            missing.append(str(enterprise))
    note = ""
    if missing:
        note = f"no value added for {year} for {', '.join(missing)}: left out of energy and emissions per value added"
    if (own["months"] < 12).any():
        note = "; ".join(filter(None, [note, "value added prorated to months with data"]))
    return (total if total > 0 else math.nan), note


def _totals(rows: pd.DataFrame) -> dict[str, float]:
    numeric = rows.drop(columns=["enterprise", "workshop", "year", "months"]).sum(numeric_only=True)
    return {str(k): float(v) for k, v in numeric.items()}


def evaluate(
    emissions: pd.DataFrame,
    enterprises: pd.DataFrame,
    year: int,
    profile: Profile,
    factors: FactorSet,
    facts: Facts | None = None,
    *,
    enterprise: str | None = None,
) -> Evaluation:
    """Evaluate ``year`` against ``profile``.

    Parameters
    ----------
    emissions : DataFrame
        Monthly rows from :func:`scoring.engine.score` (or :func:`scoring.accounting.account`), every
        year the indicators look at (the three years before, for declines).
    enterprises : DataFrame
        ``enterprise, year, value_added_10k_cny`` [10^4 CNY] (as :func:`scoring.inputs.read_enterprises`).
    factors : FactorSet
        The set the emissions were computed with; its grid factor prices certificates in gaps.
    facts : Facts, optional
        Reviewed manual facts; without them every fact-based indicator is unknown.
    enterprise : str, optional
        Only this enterprise (and, for a factory profile, its workshops); for a park profile, this
        enterprise against the park's values instead of the park.
    """
    facts = facts or Facts()
    used = set(emissions["factor_set"].dropna().unique()) if "factor_set" in emissions else set()
    if used - {factors.id}:
        raise ValueError(f"the emissions were computed with {sorted(used)}, not {factors.id}: no mixed factors")
    annual = annual_totals(emissions)
    this_year = annual[annual["year"] == year]
    if enterprise is not None:
        if enterprise not in set(annual["enterprise"]):
            raise ValueError(f"no activity data for enterprise {enterprise}")
        this_year = this_year[this_year["enterprise"] == enterprise]
    if this_year.empty:
        raise ValueError(f"no activity data for {year}" + (f" for {enterprise}" if enterprise else ""))

    contexts: list[Context] = []

    def context(kind: SubjectKind, ent: str, ws: str, fact_ws: str, rows: pd.DataFrame) -> Context:
        own = rows[rows["workshop"] == ""] if kind != "workshop" else rows
        va, va_note = (
            _value_added(enterprises, own, year)
            if kind != "workshop"
            else (math.nan, "no value added at workshop level")
        )
        return Context(
            kind=kind,
            enterprise=ent,
            workshop=ws,
            fact_workshop=fact_ws,
            year=year,
            totals=_totals(rows),
            history=_history(annual, ent, ws, "location") if kind != "park" else {},
            history_market=_history(annual, ent, ws, "market") if kind != "park" else {},
            value_added=va,
            value_added_note=va_note,
            months=int(rows["months"].max()),
            factors=factors,
            facts=facts,
        )

    enterprise_rows = this_year[this_year["workshop"] == ""]
    if profile.level == "park" and enterprise is None:
        contexts.append(context("park", PARK, "", "", enterprise_rows))
    else:
        for ent in sorted(enterprise_rows["enterprise"]):
            contexts.append(context("enterprise", ent, "", "", enterprise_rows[enterprise_rows["enterprise"] == ent]))
        if profile.level == "factory":
            workshop_rows = this_year[this_year["workshop"] != ""]
            for (ent, ws), rows in workshop_rows.groupby(["enterprise", "workshop"], sort=True):
                contexts.append(context("workshop", str(ent), str(ws), str(ws), rows))

    by_enterprise = {c.enterprise: c for c in contexts if c.kind == "enterprise"}
    records = []
    for ctx in contexts:
        boundary = {"park": "park: Σ enterprises' main meters", "enterprise": "enterprise: main meters and bills"}.get(
            ctx.kind, f"workshop {ctx.workshop}: its sub-meters"
        )
        for ind in profile.indicators:
            ind_ctx, ind_boundary = ctx, boundary
            if ctx.kind == "workshop":
                assert profile.workshop is not None
                rule = profile.workshop.indicators[ind.id]
                if rule.applies == "no":
                    records.append(
                        _record(
                            profile,
                            ind,
                            ctx,
                            Outcome(status="n/a", note=rule.how),
                            None,
                            None,
                            f"not for workshops: {rule.how}",
                        )
                    )
                    continue
                if rule.applies == "enterprise":
                    parent = by_enterprise.get(ctx.enterprise) or context(
                        "enterprise",
                        ctx.enterprise,
                        "",
                        "",
                        enterprise_rows[enterprise_rows["enterprise"] == ctx.enterprise],
                    )
                    ind_ctx, ind_boundary = parent, f"the enterprise's: {rule.how}"
                else:
                    ind_boundary = f"{boundary}: {rule.how}"
            outcome, threshold, target_year = evaluate_indicator(ind, ind_ctx)
            records.append(_record(profile, ind, ctx, outcome, threshold, target_year, ind_boundary))
    indicators = pd.DataFrame.from_records(records, columns=INDICATOR_COLUMNS)
    indicators["target_year"] = indicators["target_year"].astype("Int64")
    series = yearly_series(annual[annual["year"] <= year])
    if enterprise is not None:
        series = series[series["enterprise"] == enterprise]
    return Evaluation(
        profile=profile,
        year=year,
        indicators=indicators,
        summary=_summary(indicators, profile),
        series=series.reset_index(drop=True),
    )


def _record(
    profile: Profile,
    ind: Indicator,
    ctx: Context,
    outcome: Outcome,
    threshold: object,
    target_year: int | None,
    boundary: str,
) -> dict[str, object]:
    doc = profile.documents[ind.source]
    return {
        "subject": ctx.kind,
        "enterprise": ctx.enterprise,
        "workshop": ctx.workshop,
        "year": ctx.year,
        "profile": profile.id,
        "profile_version": profile.version,
        "indicator": ind.id,
        "name_zh": ind.name_zh,
        "name_en": ind.name_en,
        "unit": ind.unit,
        "comparison": ind.comparison,
        "threshold": threshold,
        "target_year": target_year,
        "value": outcome.value,
        "status": outcome.status,
        "gap": outcome.gap,
        "gap_tco2": outcome.gap_tco2,
        "action": outcome.action,
        "manual": outcome.manual or ind.metric == "fact",
        "source": f"{doc.title} ({doc.date})",
        "issuer": doc.issuer,
        "clause": ind.clause,
        "boundary": boundary,
        "note": outcome.note,
        "months": ctx.months,
        "provisional": ctx.months < 12,
        "factor_set": ctx.factors.id,
    }


def _summary(indicators: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    not_found = {i.id for i in profile.indicators if i.not_found is not None}
    rows = []
    for (kind, ent, ws), group in indicators.groupby(["subject", "enterprise", "workshop"], sort=False):
        found = group[~group["indicator"].isin(not_found)]
        counts = found["status"].value_counts()
        status = "fail" if counts.get("fail", 0) else ("unknown" if counts.get("unknown", 0) else "pass")
        rows.append(
            {
                "subject": kind,
                "enterprise": ent,
                "workshop": ws,
                "year": int(group["year"].iloc[0]),
                "profile": profile.id,
                "status": status,
                "passed": int(counts.get("pass", 0)),
                "failed": int(counts.get("fail", 0)),
                "unknown": int(counts.get("unknown", 0)),
                "not_applicable": int(counts.get("n/a", 0)),
                "threshold_not_found": int(group["indicator"].isin(not_found).sum()),
                "months": int(group["months"].iloc[0]),
            }
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
