"""Comprehensive energy consumption in tonnes of standard coal equivalent (tce), GB/T 2589-2020.

energy [tce] = Σ consumed quantity × coefficient − exported electricity and heat (输出的能源), with

- electricity (grid and self-consumed PV) at its equivalent value (当量值) 0.1229 kgce/kWh;
- fuels at the Annex A reference coefficients (net calorific value ÷ 29 307 kJ/kgce), or at a measured
  net calorific value when the enterprise has one (:func:`tce_from_ncv`);
- heat at 0.03412 kgce/MJ (34.12 kgce/GJ).

Certified green electricity carries no energy of its own (it is a claim on grid electricity already
counted); exported PV was never consumed. The coefficients, their rows and where they were found are
in ``scoring/data/energy_coefficients.yaml``, with the calorific-value choice and when the equal-value
(等价值) method would apply instead.

References
----------
1. GB/T 2589-2020 综合能耗计算通则 (SAMR/SAC, issued 2020-09-29, in force 2021-04-01), Annex A.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from park.units import convert
from scoring.accounting import ACCOUNTING_UNIT, KWH_PER_MWH, Source, quantity_column

KGCE_PER_TCE = 1000.0


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coefficient(_Frozen):
    unit: str
    kgce_per_unit: float = Field(gt=0)
    ncv_kj_per_unit: float = Field(gt=0)
    ncv_kcal_per_unit: float | None = Field(None, gt=0)
    row: str = Field(min_length=1)
    confirmed_2020: bool
    note: str = ""

    def tce_per(self, unit: str) -> float:
        """tce per one ``unit`` of this energy (``unit`` of the same dimension as the published one)."""
        return convert(1.0, unit, self.unit) * self.kgce_per_unit / KGCE_PER_TCE


class Standard(_Frozen):
    id: str
    title: str
    issuer: str
    issued: str
    in_force: str
    replaces: str
    found_at: list[str] = Field(min_length=1)


Key = Literal["electricity", "natural_gas", "diesel", "gasoline", "lpg", "fuel_oil", "coal_bituminous", "coke", "heat"]

# How each activity source enters the energy balance: (coefficient, sign); absent = no energy.
SOURCE_ENERGY: dict[Source, tuple[Key, int]] = {
    Source.GRID_ELECTRICITY: ("electricity", 1),
    Source.PV_SELF_CONSUMED: ("electricity", 1),
    Source.EXPORTED_ELECTRICITY: ("electricity", -1),
    Source.NATURAL_GAS: ("natural_gas", 1),
    Source.DIESEL: ("diesel", 1),
    Source.GASOLINE: ("gasoline", 1),
    Source.LPG: ("lpg", 1),
    Source.FUEL_OIL: ("fuel_oil", 1),
    Source.COAL_BITUMINOUS: ("coal_bituminous", 1),
    Source.COKE: ("coke", 1),
    Source.PURCHASED_HEAT: ("heat", 1),
    Source.EXPORTED_HEAT: ("heat", -1),
}
ELECTRICITY_SOURCES = (Source.GRID_ELECTRICITY, Source.PV_SELF_CONSUMED, Source.EXPORTED_ELECTRICITY)


class EnergyCoefficients(_Frozen):
    version: str
    standard: Standard
    kj_per_kgce: float = Field(gt=0)
    calorific_value_choice: str = Field(min_length=50)
    electricity_method: Literal["equivalent"]
    electricity_method_note: str = Field(min_length=50)
    coefficients: dict[Key, Coefficient]
    sha256: str = ""

    @model_validator(mode="after")
    def _complete(self) -> EnergyCoefficients:
        missing = {key for key, _ in SOURCE_ENERGY.values()} - set(self.coefficients)
        if missing:
            raise ValueError(f"coefficients missing for {sorted(missing)}")
        return self

    def tce_per_accounting_unit(self, source: Source) -> float:
        """tce per unit of ``source`` in its accounting unit (kWh, 10^4 Nm3, t, GJ), signed; 0 for no energy."""
        if source not in SOURCE_ENERGY:
            return 0.0
        key, sign = SOURCE_ENERGY[source]
        return sign * self.coefficients[key].tce_per(ACCOUNTING_UNIT[source])


def _text() -> str:
    return resources.files("scoring").joinpath("data/energy_coefficients.yaml").read_text(encoding="utf-8")


@cache
def load_coefficients() -> EnergyCoefficients:
    """The packaged GB/T 2589-2020 coefficients."""
    text = _text()
    return EnergyCoefficients.model_validate(
        {**yaml.safe_load(text), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    )


def tce(source: Source | str, quantity: float, unit: str | None = None) -> float:
    """Energy of ``quantity`` of ``source`` [tce], signed (exports are negative); 0 for sources without energy.

    ``unit`` defaults to the source's accounting unit (kWh, 10^4 Nm3, t, GJ).

    Examples
    --------
    >>> tce("grid_electricity", 1_000_000.0)  # 1 GWh x 0.1229 kgce/kWh
    122.9
    >>> tce("natural_gas", 10_000.0, "Nm3")  # 10^4 Nm3 x 1.3300 kgce/Nm3
    13.3
    >>> tce("diesel", 2.0)  # 2 t x 1.4571 kgce/kg
    2.9142
    >>> tce("purchased_heat", 100.0)  # 100 GJ x 0.03412 kgce/MJ
    3.412
    >>> round(tce("exported_electricity", 1000.0), 12), tce("green_electricity_certified", 1000.0)
    (-0.1229, 0.0)
    """
    src = Source(source)
    per_unit = load_coefficients().tce_per_accounting_unit(src)
    if per_unit == 0.0:
        return 0.0
    amount = quantity if unit is None else convert(quantity, unit, ACCOUNTING_UNIT[src])
    return amount * per_unit


def tce_from_ncv(quantity: float, ncv_kj_per_unit: float) -> float:
    """Energy [tce] of a fuel from its measured net calorific value [kJ per unit of ``quantity``].

    Examples
    --------
    >>> round(tce_from_ncv(1000.0, 29307.0), 12)  # 1000 units of exactly 1 kgce each
    1.0
    >>> round(tce_from_ncv(1000.0, 42652.0), 6)  # 1 t of diesel at 42 652 kJ/kg (vs 1.4571 by Annex A)
    1.455352
    """
    if ncv_kj_per_unit <= 0:
        raise ValueError("a net calorific value must be positive")
    return quantity * ncv_kj_per_unit / load_coefficients().kj_per_kgce / KGCE_PER_TCE


def energy_tce(quantities: Mapping[Source, float]) -> float:
    """Comprehensive energy consumption [tce] of quantities in accounting units.

    Examples
    --------
    >>> round(energy_tce({Source.GRID_ELECTRICITY: 1e6, Source.NATURAL_GAS: 2.0, Source.PV_EXPORTED: 5e5}), 9)
    149.5
    """
    return sum(tce(source, quantity) for source, quantity in quantities.items())


def with_energy(wide: pd.DataFrame) -> pd.DataFrame:
    """Add energy columns to a frame of accounting-unit quantity columns (:func:`scoring.accounting.wide_activity`).

    Columns added [tce unless stated]: ``energy_tce`` (comprehensive energy consumption),
    ``electricity_tce`` (grid + self-consumed PV − exported, at the equivalent value),
    ``renewable_electricity_kwh`` (self-consumed PV + certified green electricity up to the grid draw)
    and ``renewable_tce`` (that at the equivalent value). Certificates beyond the grid draw count for
    nothing, as in market-based Scope 2. Apply it to annual sums: the cap works on the totals given.
    """
    coefficients = load_coefficients()
    out = wide.copy()
    q = {s: out[quantity_column(s)] if quantity_column(s) in out else pd.Series(0.0, out.index) for s in Source}
    out["energy_tce"] = sum(
        (q[s] * coefficients.tce_per_accounting_unit(s) for s in SOURCE_ENERGY), pd.Series(0.0, out.index)
    )
    out["electricity_tce"] = sum(
        (q[s] * coefficients.tce_per_accounting_unit(s) for s in ELECTRICITY_SOURCES), pd.Series(0.0, out.index)
    )
    green = q[Source.GREEN_ELECTRICITY_CERTIFIED].clip(lower=0.0)
    grid_draw = (q[Source.GRID_ELECTRICITY] - q[Source.EXPORTED_ELECTRICITY]).clip(lower=0.0)
    out["renewable_electricity_kwh"] = q[Source.PV_SELF_CONSUMED] + green.where(green < grid_draw, grid_draw)
    out["renewable_tce"] = out["renewable_electricity_kwh"] * coefficients.tce_per_accounting_unit(
        Source.GRID_ELECTRICITY
    )
    return out


def kwh_per_tce() -> float:
    """kWh of electricity in one tce at the equivalent value (1000 / 0.1229 ≈ 8137)."""
    return 1.0 / load_coefficients().tce_per_accounting_unit(Source.GRID_ELECTRICITY)


__all__ = [
    "KWH_PER_MWH",
    "SOURCE_ENERGY",
    "Coefficient",
    "EnergyCoefficients",
    "energy_tce",
    "kwh_per_tce",
    "load_coefficients",
    "tce",
    "tce_from_ncv",
    "with_energy",
]
