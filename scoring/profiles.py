"""Near-zero / zero-carbon evaluation profiles and the reviewed manual facts they need.

A profile (``scoring/data/profile-*.yaml``) is one published scheme: its documents (title, issuer,
date, where found), and its indicators, each with id, names (中文/English), unit, comparison,
threshold (a number, a number per target year, a set of accepted values, or ``null`` with
``not_found`` saying what was searched), the metric that computes it, its source document and clause.
Factory profiles also say which indicators apply to a workshop and how.

Facts no meter gives (green-factory status, a clean record, offsets retired, product footprints, a
year's emissions before metering) come as reviewed manual data: each fact names who reviewed it,
when, and the evidence. A missing fact makes its indicator "unknown", never a pass.
"""

from __future__ import annotations

import hashlib
import math
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Comparison = Literal[">=", "<=", "==", "in"]
Metric = Literal[
    "offset_share",
    "consecutive_declines",
    "emissions_per_tce",
    "renewable_energy_share",
    "renewable_electricity_share",
    "electrification_rate",
    "energy_per_value_added",
    "co2_per_value_added",
    "footprint_reduction",
    "fact",
    "none",
]
FactName = Literal[
    "green_factory",
    "management_systems",
    "no_major_incidents_3y",
    "clean_record_3y",
    "zero_carbon_plan",
    "energy_efficiency_advanced",
    "revenue_growing",
    "offsets_retired_tco2",
    "key_product_footprint_base",
    "key_product_footprint_current",
    "annual_emissions_tco2",
    "energy_audit",
    "major_incident_last_year",
    "data_falsified",
]
GREEN_FACTORY_LEVELS = ("national", "provincial", "city", "none")
EFFICIENCY_FINDINGS = ("yes", "no", "not_applicable")
_NUMERIC_FACTS = {
    "offsets_retired_tco2",
    "key_product_footprint_base",
    "key_product_footprint_current",
    "annual_emissions_tco2",
}
_CHOICE_FACTS = {"green_factory": GREEN_FACTORY_LEVELS, "energy_efficiency_advanced": EFFICIENCY_FINDINGS}
# Metrics that need an emissions basis.
_WITH_BASIS = {"offset_share", "consecutive_declines", "emissions_per_tce", "co2_per_value_added"}
_FACTORY_METRICS = {"offset_share", "consecutive_declines", "footprint_reduction", "fact"}
_PARK_METRICS = {"energy_per_value_added", "co2_per_value_added", "renewable_electricity_share"}


class Document(_Frozen):
    title: str = Field(min_length=4)
    issuer: str = Field(min_length=4)
    date: str = Field(pattern=r"^\d{4}(-\d{2}){0,2}$")
    found_at: list[str] = Field(min_length=1)
    note: str = ""


class Indicator(_Frozen):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name_zh: str = Field(min_length=2)
    name_en: str = Field(min_length=2)
    unit: str = Field(min_length=1)
    comparison: Comparison
    threshold: float | bool | str | list[str] | None = None
    thresholds_by_year: dict[int, float] | None = None
    not_found: str | None = Field(None, min_length=30)
    metric: Metric
    basis: Literal["location", "market"] | None = None
    fact: FactName | None = None
    not_applicable_values: list[str] = []
    source: str
    clause: str = Field(min_length=4)
    interpretation: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Indicator:
        given = [self.threshold is not None, self.thresholds_by_year is not None, self.not_found is not None]
        if sum(given) != 1:
            raise ValueError(f"{self.id}: give exactly one of threshold, thresholds_by_year, not_found")
        if self.metric == "none" and self.not_found is None:
            raise ValueError(f"{self.id}: metric 'none' is only for a threshold that was not found")
        if (self.metric == "fact") != (self.fact is not None):
            raise ValueError(f"{self.id}: metric 'fact' needs fact, and only it")
        if (self.metric in _WITH_BASIS) != (self.basis is not None):
            raise ValueError(
                f"{self.id}: metric {self.metric} {'needs' if self.metric in _WITH_BASIS else 'takes no'} basis"
            )
        numeric = isinstance(self.threshold, int | float) and not isinstance(self.threshold, bool)
        if self.comparison in (">=", "<=") and self.threshold is not None and not numeric:
            raise ValueError(f"{self.id}: {self.comparison} needs a numeric threshold")
        if self.comparison == "in" and not isinstance(self.threshold, list):
            raise ValueError(f"{self.id}: 'in' needs a list of accepted values")
        if self.thresholds_by_year is not None and (not self.thresholds_by_year or self.comparison not in (">=", "<=")):
            raise ValueError(f"{self.id}: thresholds_by_year needs target years and >= or <=")
        return self

    def threshold_for(self, year: int) -> tuple[float | bool | str | list[str] | None, int | None]:
        """The threshold that applies to ``year`` and its target year (for targets by year).

        A year uses the first target year at or after it; a year after the last target uses the last.

        Examples
        --------
        >>> ind = Indicator(id="x", name_zh="甲乙", name_en="xy", unit="-", comparison="<=",
        ...                 thresholds_by_year={2027: 1.25, 2030: 0.87, 2035: 0.37}, metric="emissions_per_tce",
        ...                 basis="market", source="s", clause="clause")
        >>> [ind.threshold_for(y) for y in (2025, 2027, 2028, 2035, 2040)]
        [(1.25, 2027), (1.25, 2027), (0.87, 2030), (0.37, 2035), (0.37, 2035)]
        """
        if self.thresholds_by_year is None:
            return self.threshold, None
        stages = sorted(self.thresholds_by_year)
        stage = next((s for s in stages if s >= year), stages[-1])
        return self.thresholds_by_year[stage], stage


class WorkshopRule(_Frozen):
    applies: Literal["own_boundary", "enterprise", "no"]
    how: str = Field(min_length=5)


class WorkshopSection(_Frozen):
    note: str = Field(min_length=20)
    indicators: dict[str, WorkshopRule]


class Profile(_Frozen):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: str = Field(min_length=1)
    name_zh: str
    name_en: str
    level: Literal["factory", "park"]
    documents: dict[str, Document] = Field(min_length=1)
    indicators: list[Indicator] = Field(min_length=1)
    workshop: WorkshopSection | None = None
    sha256: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        ids = [i.id for i in self.indicators]
        if len(set(ids)) != len(ids):
            raise ValueError(f"indicator ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
        for ind in self.indicators:
            if ind.source not in self.documents:
                raise ValueError(f"{ind.id}: source {ind.source!r} is not among the documents {sorted(self.documents)}")
            allowed = _FACTORY_METRICS | {"emissions_per_tce", "renewable_energy_share", "none"}
            if self.level == "park":
                allowed = _PARK_METRICS | {
                    "electrification_rate",
                    "emissions_per_tce",
                    "renewable_energy_share",
                    "none",
                }
            if ind.metric not in allowed:
                raise ValueError(f"{ind.id}: metric {ind.metric} is not evaluated at {self.level} level")
        if self.level == "factory":
            if self.workshop is None or set(self.workshop.indicators) != set(ids):
                raise ValueError(
                    "a factory profile's workshop section must say for every indicator whether and how it applies"
                )
        elif self.workshop is not None:
            raise ValueError("a park profile has no workshop section")
        return self

    def indicator(self, indicator_id: str) -> Indicator:
        return next(i for i in self.indicators if i.id == indicator_id)


class ProfileError(ValueError):
    pass


def _profile_files() -> dict[str, str]:
    data = resources.files("scoring").joinpath("data")
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in data.iterdir()
        if entry.name.startswith("profile-") and entry.name.endswith(".yaml")
    }


def _parse(text: str, source: str) -> Profile:
    try:
        data = yaml.safe_load(text)
        return Profile.model_validate({**data, "sha256": hashlib.sha256(text.encode()).hexdigest()})
    except (yaml.YAMLError, ValidationError, TypeError) as exc:
        raise ProfileError(f"{source}: invalid profile: {exc}") from None


@cache
def packaged_profiles() -> dict[str, Profile]:
    """The packaged profiles by id."""
    profiles: dict[str, Profile] = {}
    for name, text in sorted(_profile_files().items()):
        profile = _parse(text, name)
        if profile.id in profiles:
            raise ProfileError(f"{name}: profile id {profile.id} is used twice")
        profiles[profile.id] = profile
    return profiles


def profile_ids() -> list[str]:
    return sorted(packaged_profiles())


def load_profile(id_or_path: str | Path) -> Profile:
    """A packaged profile by id (e.g. ``suzhou-nzc-factory-2023``), or a park's own profile file."""
    key = str(id_or_path)
    if key in packaged_profiles():
        return packaged_profiles()[key]
    path = Path(key)
    if path.suffix in {".yaml", ".yml"} and path.is_file():
        return _parse(path.read_text(encoding="utf-8"), str(path))
    raise ProfileError(f"unknown profile {key!r}; known: {', '.join(profile_ids())} (or a profile YAML file)")


# -- reviewed manual facts ---------------------------------------------------------------------------


class Fact(_Frozen):
    """One reviewed fact about an enterprise (or one of its workshops) in a year."""

    enterprise: str = Field(min_length=1)
    workshop: str = ""
    year: int = Field(ge=2000, le=2100)
    fact: FactName
    value: bool | float | str
    reviewed_by: str = Field(min_length=2)
    reviewed_on: date
    evidence: str = Field(min_length=3)

    @field_validator("value", mode="before")
    @classmethod
    def _exact_type(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    @model_validator(mode="after")
    def _typed(self) -> Fact:
        where = f"{self.enterprise}{'/' + self.workshop if self.workshop else ''} {self.year} {self.fact}"
        if self.fact in _NUMERIC_FACTS:
            if isinstance(self.value, bool) or not isinstance(self.value, float) or not math.isfinite(self.value):
                raise ValueError(f"{where}: needs a finite number")
            if self.value < 0 or (self.fact.startswith("key_product_footprint") and self.value == 0):
                raise ValueError(f"{where}: must be {'positive' if 'footprint' in self.fact else 'at least 0'}")
        elif self.fact in _CHOICE_FACTS:
            if self.value not in _CHOICE_FACTS[self.fact]:
                raise ValueError(f"{where}: one of {', '.join(_CHOICE_FACTS[self.fact])}, not {self.value!r}")
        elif not isinstance(self.value, bool):
            raise ValueError(f"{where}: needs true or false, not {self.value!r}")
        return self


class Facts(_Frozen):
    """Reviewed manual facts; at most one per enterprise, workshop, year and fact."""

    facts: list[Fact] = []
    sha256: str = ""

    @model_validator(mode="after")
    def _unique(self) -> Facts:
        seen: set[tuple[str, str, int, str]] = set()
        for f in self.facts:
            key = (f.enterprise, f.workshop, f.year, f.fact)
            if key in seen:
                raise ValueError(f"fact given twice: {f.enterprise} {f.workshop or '(factory)'} {f.year} {f.fact}")
            seen.add(key)
        return self

    def get(self, enterprise: str, workshop: str, year: int, name: str) -> Fact | None:
        return next(
            (
                f
                for f in self.facts
                if f.enterprise == enterprise and f.workshop == workshop and f.year == year and f.fact == name
            ),
            None,
        )


class FactsError(ValueError):
    pass


def load_facts(path: Path | str) -> Facts:
    """Read a facts file: ``facts:`` a list of {enterprise, [workshop], year, fact, value, reviewed_by,
    reviewed_on, evidence}."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
        return Facts.model_validate({**data, "sha256": hashlib.sha256(text.encode()).hexdigest()})
    except (yaml.YAMLError, ValidationError, TypeError) as exc:
        raise FactsError(f"{path}: invalid facts: {exc}") from None


FACT_NAMES: tuple[str, ...] = get_args(FactName)
