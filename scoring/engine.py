"""One scoring run: activity data → emissions → credits, grades, ratings → near-zero progress.

Used by the ``parkcarbon score`` command and by the monthly DAG. Every output row carries the
policy version, the factor set id and a hash of the input rows it was computed from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from park.registry import NearZeroTarget
from scoring import near_zero
from scoring.accounting import Source, account, emissions_by_source, quantity_column
from scoring.audit import rows_sha256
from scoring.credits import annual_emissions, base_year_of, score_credits, year_table
from scoring.factors import FactorSet
from scoring.policy import Policy
from scoring.profiles import Facts
from scoring.rating import rate

ACTIVITY_HASH_COLUMNS = ["enterprise", "workshop", "period", "source", "quantity", "unit"]
ENTERPRISE_HASH_COLUMNS = ["enterprise", "industry", "year", "value_added_10k_cny"]

GRID = quantity_column(Source.GRID_ELECTRICITY)
GREEN = quantity_column(Source.GREEN_ELECTRICITY_CERTIFIED)
PV_SELF = quantity_column(Source.PV_SELF_CONSUMED)


@dataclass(frozen=True)
class ScoreResult:
    base_year: int
    emissions: pd.DataFrame  # enterprise and workshop rows, every period in the activity data
    credits: pd.DataFrame  # one row per enterprise for the year scored
    near_zero: pd.DataFrame  # year-to-date offset ratio per enterprise (factory) and workshop
    by_source: pd.DataFrame  # emissions' lines per source with quantity and factor (accounting.BY_SOURCE_COLUMNS)


def _with_activity_hashes(emissions: pd.DataFrame, activity: pd.DataFrame) -> pd.DataFrame:
    hashes = {
        key: rows_sha256(group, ACTIVITY_HASH_COLUMNS)
        for key, group in activity.groupby(["enterprise", "workshop", "period"], sort=True)
    }
    out = emissions.copy()
    out["inputs_sha256"] = [
        hashes[(e, w, p)] for e, w, p in zip(out["enterprise"], out["workshop"], out["period"], strict=True)
    ]
    return out


def green_shares(emissions: pd.DataFrame, year: int) -> pd.Series:
    """(certified green, at most the grid draw, + self-consumed PV) / (grid + self-consumed PV)."""
    own = emissions[(emissions["workshop"] == "") & emissions["period"].str.startswith(f"{year}-")]
    sums = own.groupby("enterprise")[[GRID, GREEN, PV_SELF]].sum()
    denominator = sums[GRID] + sums[PV_SELF]
    share = (np.minimum(sums[GREEN], sums[GRID]) + sums[PV_SELF]) / denominator.where(denominator > 0)
    return share


def _near_zero(
    emissions: pd.DataFrame,
    year: int,
    factors: FactorSet,
    policy: Policy,
    targets: Mapping[str, NearZeroTarget],
) -> pd.DataFrame:
    ytd = emissions[emissions["period"].str.startswith(f"{year}-")]
    grouped = ytd.groupby(["enterprise", "workshop"], sort=True)[[GREEN, PV_SELF, "total_location_tco2"]].sum()
    rows = []
    for (enterprise, workshop), sums in grouped.iterrows():
        ratio = near_zero.offset_ratio(
            float(sums[GREEN]),
            float(sums[PV_SELF]),
            0.0,
            float(sums["total_location_tco2"]),
            factors.electricity.location_t_per_mwh,
        )
        target = targets.get(str(workshop) or str(enterprise))
        required = (
            near_zero.required_ratio(target.offset_ratio, target.plan_start_year, target.target_year, year)
            if target
            else np.nan
        )
        rows.append(
            {
                "enterprise": enterprise,
                "workshop": workshop,
                "year": year,
                "months": int(
                    ytd[(ytd["enterprise"] == enterprise) & (ytd["workshop"] == workshop)]["period"].nunique()
                ),
                "emissions_location_tco2": float(sums["total_location_tco2"]),
                "offset_ratio": ratio,
                "status": near_zero.status(ratio, policy),
                "target": target.offset_ratio if target else np.nan,
                "target_year": target.target_year if target else pd.NA,
                "required_ratio": required,
                "on_track": bool(ratio >= required) if target and np.isfinite(ratio) else pd.NA,
                "factor_set": factors.id,
                "policy_version": policy.version,
            }
        )
    return pd.DataFrame(rows)


def score(
    activity: pd.DataFrame,
    enterprises: pd.DataFrame,
    year: int,
    factors: FactorSet,
    policy: Policy,
    base_year: int | None = None,
    *,
    completeness: pd.Series | None = None,
    compliance_score: pd.Series | None = None,
    targets: Mapping[str, NearZeroTarget] | None = None,
    facts: Facts | None = None,
) -> ScoreResult:
    """Score ``year`` from activity data of any months (the base year's included).

    ``base_year`` defaults to the policy's, else the earliest year in which an enterprise has both
    activity data and value added (:func:`scoring.credits.base_year_of`).
    ``completeness`` and ``compliance_score`` are Series by enterprise; ``targets`` maps a
    workshop id (or an enterprise id, for a whole factory) to its near-zero target. ``facts``
    (reviewed manual data) apply the policy's rating adjustments.
    """
    activity = activity.copy()
    if "workshop" not in activity:
        activity["workshop"] = ""
    activity["workshop"] = activity["workshop"].fillna("").astype(str)
    base = base_year or base_year_of(activity, enterprises, policy.base_year)
    if base is None:
        raise ValueError("no year has both activity data and value added for an enterprise: no base year")

    emissions = account(activity, factors, policy.gas_m3_to_nm3)
    emissions["policy_version"] = policy.version
    emissions = _with_activity_hashes(emissions, activity)

    credits = score_credits(emissions, enterprises, year, base, policy)
    yearly = annual_emissions(emissions, policy.credits_basis)
    previous = year_table(yearly, enterprises, year - 1).set_index("enterprise")["intensity_t_per_10k_cny"]
    credits = rate(
        credits,
        policy,
        green_share=green_shares(emissions, year),
        previous_intensity=previous,
        completeness=completeness,
        compliance_score=compliance_score,
        facts=facts,
    )
    years = {str(year), str(base)}
    used_activity = activity[activity["period"].str.slice(0, 4).isin(years)]
    used_firms = enterprises[enterprises["year"].astype(str).isin(years)]
    inputs = rows_sha256(used_activity, ACTIVITY_HASH_COLUMNS) + rows_sha256(used_firms, ENTERPRISE_HASH_COLUMNS)
    credits["factor_set"] = factors.id
    credits["policy_version"] = policy.version
    credits["inputs_sha256"] = rows_sha256(pd.DataFrame({"h": [inputs]}), ["h"])
    return ScoreResult(
        base_year=base,
        emissions=emissions,
        credits=credits,
        near_zero=_near_zero(emissions, year, factors, policy, targets or {}),
        by_source=emissions_by_source(emissions, factors).assign(factor_set=factors.id),
    )
