"""The monthly near-zero evaluation: each enterprise, its workshops and the park against the profiles
the registry selects (``park.nearzero_profiles``, an enterprise's own ``nearzero_profiles``), year to
date, into ``NEARZERO_EVALUATION``. The computation is :func:`scoring.evaluation.evaluate`'s; this
module only chooses what to evaluate and turns the rows into points."""

from __future__ import annotations

import math

import pandas as pd

from park.lineprotocol import FieldValue, Point
from park.measurements import NEARZERO_EVALUATION
from park.month import Month
from park.registry import Registry
from pipeline.checks import WrongInputError
from scoring.evaluation import PARK, evaluate
from scoring.factors import FactorSet
from scoring.profiles import Facts, Profile, ProfileError, load_profile

TEXT_FIELDS = (
    *("subject", "profile_version", "name_zh", "name_en", "unit", "comparison", "status", "action"),
    *("source", "clause", "note", "factor_set"),
)


def profiles_of(registry: Registry) -> dict[str, Profile]:
    """Every profile the registry names, loaded; a WrongInputError naming an unknown one."""
    names = set(registry.park.nearzero_profiles)
    for enterprise in registry.enterprises:
        names |= set(enterprise.nearzero_profiles or [])
    profiles = {}
    for name in sorted(names):
        try:
            profiles[name] = load_profile(name)
        except ProfileError as exc:
            raise WrongInputError(f"registry nearzero_profiles: {exc}") from None
    return profiles


def _wanted(registry: Registry, profile: Profile) -> tuple[bool, set[str]]:
    """(whether the park is evaluated, the enterprises evaluated) against ``profile``."""
    park_wide = profile.id in registry.park.nearzero_profiles
    if profile.level == "park":
        return park_wide, set()
    chosen = {
        e.id
        for e in registry.enterprises
        if (profile.id in e.nearzero_profiles if e.nearzero_profiles is not None else park_wide)
    }
    return False, chosen


def evaluation_points(
    registry: Registry,
    emissions: pd.DataFrame,
    enterprises: pd.DataFrame,
    factors: FactorSet,
    facts: Facts,
    month: Month,
) -> list[Point]:
    """The year to date of ``month`` against every selected profile, as ``NEARZERO_EVALUATION`` points."""
    points: list[Point] = []
    for profile in profiles_of(registry).values():
        park, chosen = _wanted(registry, profile)
        if not park and not chosen:
            continue
        evaluation = evaluate(emissions, enterprises, month.year, profile, factors, facts)
        for row in evaluation.indicators.to_dict("records"):
            is_park = row["enterprise"] == PARK
            if (is_park and not park) or (not is_park and row["enterprise"] not in chosen):
                continue
            tags = {
                "enterprise": "" if is_park else str(row["enterprise"]),
                "workshop": str(row["workshop"]),
                "profile": profile.id,
                "indicator": str(row["indicator"]),
            }
            points.append(NEARZERO_EVALUATION.point(tags, _fields(row), month.start_ns))
    return points


def _fields(row: dict[str, object]) -> dict[str, FieldValue]:
    """A row's fields: numbers as numbers, a fact's value or threshold (yes/no, a choice) as text."""
    fields: dict[str, FieldValue] = {k: str(row[k]) for k in TEXT_FIELDS if _present(row.get(k))}
    fields["provisional"] = bool(row["provisional"])
    for name in ("year", "months", "target_year"):
        if (whole := _number(row.get(name))) is not None:
            fields[name] = int(whole)
    for name in ("gap", "gap_tco2"):
        if (number := _number(row.get(name))) is not None:
            fields[name] = number
    for name in ("value", "threshold"):
        value = row.get(name)
        number = _number(value)
        if number is not None:
            fields[name] = number
        elif _present(value):
            fields[f"{name}_text"] = str(value).lower() if isinstance(value, bool) else str(value)
    return fields


def _number(value: object) -> float | None:
    """A finite number that is not a yes/no, else None."""
    if hasattr(value, "item"):  # numpy and pandas scalars
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(float(value)) else None


def _present(value: object) -> bool:
    if value is None or value is pd.NA:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return not (isinstance(value, str) and value == "")
