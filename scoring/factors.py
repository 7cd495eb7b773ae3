"""Emission factor sets: grid electricity by data year and grid, fuel defaults, heat.

References
----------
1. MEE/NBS electricity CO2 emission factors for 2021 (公告2024年第12号), 2022 (2024-12-20), 2023 (end 2025).
2. MEE, 发电行业温室气体排放报告管理通知 (Feb 2023): ETS-reporting grid factor 0.5703 t/MWh.
3. NDRC industry GHG accounting guidelines (试行), default NCV, carbon content and oxidation rates.
4. GB/T 32150-2015, combustion emissions = AD x NCV x CC x OF x 44/12.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CO2_PER_C = 44.0 / 12.0  # molar mass ratio CO2/C
TC_PER_TJ_TO_TC_PER_GJ = 1e-3

Fuel = Literal["natural_gas", "diesel", "gasoline", "lpg", "fuel_oil", "coal_bituminous", "coke"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ElectricityFactor(_Frozen):
    data_year: int
    grid: str
    location_t_per_mwh: float = Field(gt=0, lt=2)
    location_source: str = Field(min_length=10)
    residual_t_per_mwh: float = Field(gt=0, lt=2)
    residual_source: str = Field(min_length=10)
    residual_note: str = Field(
        "",
        description="which residual a regional or provincial set uses and why; required when it lies below the"
        " location factor (market-based Scope 2 would then be lower than location-based without certificates)",
    )

    @model_validator(mode="after")
    def _residual_explained(self) -> ElectricityFactor:
        if self.residual_t_per_mwh < self.location_t_per_mwh and len(self.residual_note) < 20:
            raise ValueError(
                f"residual {self.residual_t_per_mwh} < location {self.location_t_per_mwh}: residual_note must say"
                " which residual the set uses and why"
            )
        return self


class FuelDefault(_Frozen):
    unit: str
    ncv_gj_per_unit: float = Field(gt=0)
    carbon_tc_per_tj: float = Field(gt=0)
    oxidation: float = Field(gt=0, le=1)
    source: str = Field(min_length=10)

    @property
    def factor_t_per_unit(self) -> float:
        """t CO2 per unit of fuel = NCV [GJ/unit] x CC [tC/GJ] x OF x 44/12, unrounded.

        Examples
        --------
        >>> round(load_factor_sets().fuels["natural_gas"].factor_t_per_unit, 4)
        21.6219
        """
        return self.ncv_gj_per_unit * self.carbon_tc_per_tj * TC_PER_TJ_TO_TC_PER_GJ * self.oxidation * CO2_PER_C


class HeatFactor(_Frozen):
    t_per_gj: float = Field(gt=0)
    source: str = Field(min_length=10)


class FactorFile(_Frozen):
    version: str
    electricity: dict[str, ElectricityFactor]
    fuels: dict[str, FuelDefault]
    heat: HeatFactor

    @model_validator(mode="after")
    def _known_fuels(self) -> FactorFile:
        unknown = set(self.fuels) - set(get_args(Fuel))
        if unknown:
            raise ValueError(f"unknown fuels {sorted(unknown)}; known: {get_args(Fuel)}")
        return self


class FactorSet(_Frozen):
    """One electricity factor with the fuel and heat defaults common to all sets."""

    id: str
    file_version: str
    file_sha256: str
    electricity: ElectricityFactor
    fuels: dict[str, FuelDefault]
    heat: HeatFactor


class UnknownFactorSetError(KeyError):
    pass


def _factor_text() -> str:
    return resources.files("scoring").joinpath("data/factor_sets.yaml").read_text(encoding="utf-8")


@cache
def load_factor_sets() -> FactorFile:
    return FactorFile.model_validate(yaml.safe_load(_factor_text()))


def factor_set(set_id: str) -> FactorSet:
    """The factor set ``set_id`` (e.g. ``cn-national-2023``)."""
    data = load_factor_sets()
    if set_id not in data.electricity:
        raise UnknownFactorSetError(f"unknown factor set {set_id!r}; known: {', '.join(sorted(data.electricity))}")
    return FactorSet(
        id=set_id,
        file_version=data.version,
        file_sha256=hashlib.sha256(_factor_text().encode()).hexdigest(),
        electricity=data.electricity[set_id],
        fuels=data.fuels,
        heat=data.heat,
    )


def factor_set_ids() -> list[str]:
    return sorted(load_factor_sets().electricity)
