"""Near-zero-carbon progress of workshops and factories.

offset ratio = (certified green electricity + self-consumed PV, both at the grid factor, + retired
offsets) / (Scope 1 + Scope 2 location-based). Near-zero at >= 0.80 (Suzhou 近零碳工厂, batch 2,
2023), zero-carbon at >= 1.00 (Suzhou Industrial Park 零碳工厂, 2026).

On track: the ratio has reached the share of the target that the plan's elapsed years call for,
target x (year - start + 1) / (target year - start + 1), a straight line from the plan's start.
"""

from __future__ import annotations

import math

from scoring.accounting import KWH_PER_MWH
from scoring.policy import Policy


def offset_ratio(
    green_certified_kwh: float,
    pv_self_consumed_kwh: float,
    retired_offsets_tco2: float,
    emissions_location_tco2: float,
    grid_factor_t_per_mwh: float,
) -> float:
    """The offset ratio [-]; NaN when there are no emissions to offset."""
    offset_t = (green_certified_kwh + pv_self_consumed_kwh) / KWH_PER_MWH * grid_factor_t_per_mwh
    offset_t += retired_offsets_tco2
    if emissions_location_tco2 <= 0:
        return math.nan
    return offset_t / emissions_location_tco2


def required_ratio(target: float, plan_start_year: int, target_year: int, year: int) -> float:
    """The ratio the plan calls for in ``year`` (the full target from the target year on).

    Examples
    --------
    >>> required_ratio(0.8, 2024, 2027, 2025)
    0.4
    """
    span = target_year - plan_start_year + 1
    done = min(max(year - plan_start_year + 1, 0), span)
    return target * done / span


def status(ratio: float, policy: Policy) -> str:
    if not math.isfinite(ratio):
        return "no emissions"
    if ratio >= policy.near_zero.zero_carbon_offset_ratio:
        return "zero-carbon"
    if ratio >= policy.near_zero.near_zero_offset_ratio:
        return "near-zero"
    return "not yet"
