"""Monthly CO2 accounting by GB/T 32150-2015: Scope 1 combustion, Scope 2 electricity and heat.

Activity data come as rows ``enterprise, workshop, period, source, quantity, unit``; rows with
an empty ``workshop`` are the enterprise's own totals (from main meters or bills), rows with a
workshop are breakdowns of it (from sub-meters) and are accounted separately, never added.

Scope 2 is reported both ways (GHG Protocol Scope 2 Guidance, 2015):

- location-based: (grid - exported) [MWh] x grid factor + (purchased - exported heat) [GJ] x 0.11;
- market-based: max(0, grid - certified green - exported) [MWh] x residual factor + the same heat,
  so certificates beyond consumption never make it negative.

Self-consumed PV is zero-emission; exported PV is a memo line (avoided emissions at the grid factor),
it does not reduce Scope 2.

References
----------
1. GB/T 32150-2015 工业企业温室气体排放核算和报告通则.
2. GHG Protocol Scope 2 Guidance (2015), dual reporting and quality criteria.
"""

from __future__ import annotations

from enum import StrEnum

import pandas as pd

from park.units import convert
from scoring.factors import FactorSet


class Source(StrEnum):
    GRID_ELECTRICITY = "grid_electricity"
    GREEN_ELECTRICITY_CERTIFIED = "green_electricity_certified"
    PV_SELF_CONSUMED = "pv_self_consumed"
    PV_EXPORTED = "pv_exported"
    EXPORTED_ELECTRICITY = "exported_electricity"
    NATURAL_GAS = "natural_gas"
    DIESEL = "diesel"
    GASOLINE = "gasoline"
    LPG = "lpg"
    FUEL_OIL = "fuel_oil"
    COAL_BITUMINOUS = "coal_bituminous"
    COKE = "coke"
    PURCHASED_HEAT = "purchased_heat"
    EXPORTED_HEAT = "exported_heat"


FUELS = (
    Source.NATURAL_GAS,
    Source.DIESEL,
    Source.GASOLINE,
    Source.LPG,
    Source.FUEL_OIL,
    Source.COAL_BITUMINOUS,
    Source.COKE,
)
ELECTRICITY = (
    Source.GRID_ELECTRICITY,
    Source.GREEN_ELECTRICITY_CERTIFIED,
    Source.PV_SELF_CONSUMED,
    Source.PV_EXPORTED,
    Source.EXPORTED_ELECTRICITY,
)

# The unit each source is accounted in; inputs in any unit of the same dimension are converted.
ACCOUNTING_UNIT: dict[Source, str] = {
    **dict.fromkeys(ELECTRICITY, "kWh"),
    Source.NATURAL_GAS: "10^4 Nm3",
    **dict.fromkeys((s for s in FUELS if s is not Source.NATURAL_GAS), "t"),
    Source.PURCHASED_HEAT: "GJ",
    Source.EXPORTED_HEAT: "GJ",
}
KWH_PER_MWH = 1000.0

KEYS = ["enterprise", "workshop", "period"]
EMISSION_COLUMNS = [
    "scope1_tco2",
    "scope2_location_tco2",
    "scope2_market_tco2",
    "total_location_tco2",
    "total_market_tco2",
    "pv_exported_avoided_tco2",
]


def quantity_column(source: Source) -> str:
    """Name of the wide column holding ``source`` in its accounting unit, e.g. ``natural_gas_10k_nm3``."""
    unit = ACCOUNTING_UNIT[source].replace("10^4 Nm3", "10k_nm3").lower()
    return f"{source.value}_{unit}"


def to_accounting_units(activity: pd.DataFrame, m3_to_nm3: float | None = None) -> pd.DataFrame:
    """Add ``accounting_quantity``: each row's quantity in its source's accounting unit."""
    out = activity.copy()
    out["accounting_quantity"] = [
        convert(float(quantity), unit, ACCOUNTING_UNIT[Source(source)], m3_to_nm3=m3_to_nm3)
        for quantity, unit, source in zip(out["quantity"], out["unit"], out["source"], strict=True)
    ]
    return out


def wide_activity(activity: pd.DataFrame, m3_to_nm3: float | None = None) -> pd.DataFrame:
    """One row per enterprise, workshop and period; one column per source in its accounting unit."""
    data = to_accounting_units(activity, m3_to_nm3)
    if "workshop" not in data:
        data["workshop"] = ""
    data["workshop"] = data["workshop"].fillna("").astype(str)
    wide = data.pivot_table(index=KEYS, columns="source", values="accounting_quantity", aggfunc="sum", fill_value=0.0)
    wide = wide.reindex(columns=[s.value for s in Source], fill_value=0.0)
    wide.columns = [quantity_column(Source(c)) for c in wide.columns]
    return wide.astype(float).reset_index()


def account(activity: pd.DataFrame, factors: FactorSet, m3_to_nm3: float | None = None) -> pd.DataFrame:
    """Emissions per enterprise, workshop and period.

    Parameters
    ----------
    activity : DataFrame
        Columns ``enterprise, period, source, quantity, unit`` and optionally ``workshop``.
    factors : FactorSet
        The electricity factor [t CO2/MWh], fuel defaults and heat factor [t CO2/GJ] to use.
    m3_to_nm3 : float, optional
        Correction for gas metered in m3 [Nm3/m3].

    Returns
    -------
    DataFrame
        The wide activity columns plus ``scope1_tco2``, ``scope2_location_tco2``,
        ``scope2_market_tco2``, ``total_location_tco2``, ``total_market_tco2`` and the memo
        ``pv_exported_avoided_tco2`` [t CO2], unrounded, and ``factor_set``.

    Examples
    --------
    >>> from scoring.factors import factor_set
    >>> rows = pd.DataFrame({"enterprise": ["E1"], "period": ["2023-01"],
    ...                      "source": ["grid_electricity"], "quantity": [1000.0], "unit": ["kWh"]})
    >>> float(account(rows, factor_set("cn-national-2023"))["scope2_location_tco2"].iloc[0])
    0.5306
    """
    wide = wide_activity(activity, m3_to_nm3)
    q = {s: wide[quantity_column(s)] for s in Source}
    elec = factors.electricity
    heat_net_gj = q[Source.PURCHASED_HEAT] - q[Source.EXPORTED_HEAT]

    scope1 = sum((q[f] * factors.fuels[f.value].factor_t_per_unit for f in FUELS), pd.Series(0.0, wide.index))
    grid_net_mwh = (q[Source.GRID_ELECTRICITY] - q[Source.EXPORTED_ELECTRICITY]) / KWH_PER_MWH
    residual_mwh = (
        q[Source.GRID_ELECTRICITY] - q[Source.GREEN_ELECTRICITY_CERTIFIED] - q[Source.EXPORTED_ELECTRICITY]
    ).clip(lower=0.0) / KWH_PER_MWH
    heat_t = heat_net_gj * factors.heat.t_per_gj

    wide["scope1_tco2"] = scope1
    wide["scope2_location_tco2"] = grid_net_mwh * elec.location_t_per_mwh + heat_t
    wide["scope2_market_tco2"] = residual_mwh * elec.residual_t_per_mwh + heat_t
    wide["total_location_tco2"] = wide["scope1_tco2"] + wide["scope2_location_tco2"]
    wide["total_market_tco2"] = wide["scope1_tco2"] + wide["scope2_market_tco2"]
    wide["pv_exported_avoided_tco2"] = q[Source.PV_EXPORTED] / KWH_PER_MWH * elec.location_t_per_mwh
    wide["factor_set"] = factors.id
    return wide


BY_SOURCE_COLUMNS = [
    *KEYS,
    "source",
    "scope",
    "quantity",
    "unit",
    "factor_location_t_per_unit",
    "factor_market_t_per_unit",
    "factor_source",
    "tco2_location",
    "tco2_market",
]


def emissions_by_source(accounted: pd.DataFrame, factors: FactorSet) -> pd.DataFrame:
    """Each emission line of :func:`account`'s rows, with its quantity and the factor it was taken at.

    One row per enterprise, workshop, period and emitting source: every fuel burnt (Scope 1, the same
    tonnes both ways), grid electricity net of export (Scope 2; market-based: net of certified green
    power as well, never below 0, at the residual factor) and purchased heat net of export (Scope 2).
    Per scope the lines add up to :func:`account`'s ``scope1_tco2``, ``scope2_location_tco2`` and
    ``scope2_market_tco2``; sources with nothing to account give no line.

    Examples
    --------
    >>> from scoring.factors import factor_set
    >>> rows = pd.DataFrame({"enterprise": ["E1", "E1"], "period": ["2023-01"] * 2,
    ...                      "source": ["grid_electricity", "natural_gas"], "quantity": [1000.0, 1.0],
    ...                      "unit": ["kWh", "10^4 Nm3"]})
    >>> lines = emissions_by_source(account(rows, factor_set("cn-national-2023")), factor_set("cn-national-2023"))
    >>> lines[["source", "scope", "quantity", "unit", "tco2_location"]].round(4).values.tolist()
    [['natural_gas', 'scope1', 1.0, '10^4 Nm3', 21.6219], ['grid_electricity', 'scope2', 1.0, 'MWh', 0.5306]]
    """
    elec, heat = factors.electricity, factors.heat
    lines: list[dict[str, object]] = []
    for row in accounted.to_dict("records"):
        keys = {k: row[k] for k in KEYS}
        for fuel in FUELS:
            default = factors.fuels[fuel.value]
            tonnes = float(row[quantity_column(fuel)]) * default.factor_t_per_unit
            lines += _line(
                keys,
                fuel,
                "scope1",
                float(row[quantity_column(fuel)]),
                ACCOUNTING_UNIT[fuel],
                (default.factor_t_per_unit, default.factor_t_per_unit),
                default.source,
                (tonnes, tonnes),
            )
        grid = float(row[quantity_column(Source.GRID_ELECTRICITY)])
        exported = float(row[quantity_column(Source.EXPORTED_ELECTRICITY)])
        green = float(row[quantity_column(Source.GREEN_ELECTRICITY_CERTIFIED)])
        net_mwh = (grid - exported) / KWH_PER_MWH
        residual_mwh = max(grid - green - exported, 0.0) / KWH_PER_MWH  # market-based: the residual MWh
        lines += _line(
            keys,
            Source.GRID_ELECTRICITY,
            "scope2",
            net_mwh,
            "MWh",
            (elec.location_t_per_mwh, elec.residual_t_per_mwh),
            f"{elec.location_source} | residual: {elec.residual_source}",
            (net_mwh * elec.location_t_per_mwh, residual_mwh * elec.residual_t_per_mwh),
        )
        net_gj = float(row[quantity_column(Source.PURCHASED_HEAT)]) - float(row[quantity_column(Source.EXPORTED_HEAT)])
        tonnes = net_gj * heat.t_per_gj
        lines += _line(
            keys,
            Source.PURCHASED_HEAT,
            "scope2",
            net_gj,
            "GJ",
            (heat.t_per_gj, heat.t_per_gj),
            heat.source,
            (tonnes, tonnes),
        )
    return pd.DataFrame(lines, columns=BY_SOURCE_COLUMNS)


def _line(
    keys: dict[str, object],
    source: Source,
    scope: str,
    quantity: float,
    unit: str,
    factors_t_per_unit: tuple[float, float],
    cite: str,
    tco2: tuple[float, float],
) -> list[dict[str, object]]:
    """One emission line (location- and market-based), or none when there is nothing to account."""
    if quantity == 0.0 and tco2 == (0.0, 0.0):
        return []
    return [
        keys
        | {
            "source": source.value,
            "scope": scope,
            "quantity": quantity,
            "unit": unit,
            "factor_location_t_per_unit": factors_t_per_unit[0],
            "factor_market_t_per_unit": factors_t_per_unit[1],
            "factor_source": cite,
            "tco2_location": tco2[0],
            "tco2_market": tco2[1],
        }
    ]
