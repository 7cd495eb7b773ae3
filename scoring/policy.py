"""The versioned credit policy (base year, decline rate, grades, rating weights), validated by pydantic."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RatingWeights(_Frozen):
    carbon_efficiency: float = Field(ge=0)
    trend: float = Field(ge=0)
    green_power: float = Field(ge=0)
    compliance: float = Field(ge=0)
    data_quality: float = Field(ge=0)

    @model_validator(mode="after")
    def _sum_100(self) -> RatingWeights:
        total = sum(self.model_dump().values())
        if abs(total - 100) > 1e-9:
            raise ValueError(f"rating weights must sum to 100, not {total}")
        return self


class GreenFactoryBonus(_Frozen):
    national: float = Field(ge=0)
    provincial: float = Field(ge=0)
    city: float = Field(ge=0)


class RatingAdjustments(_Frozen):
    """Points added to or taken from the rating score for reviewed facts, and a forced rating.

    ``sources`` says for each item where it was published, or that it is the park's own choice.
    """

    green_factory_bonus: GreenFactoryBonus
    energy_audit_bonus: float = Field(ge=0)
    bonus_cap: float = Field(ge=0)
    major_incident_deduction: float = Field(ge=0)
    falsified_data_rating: Literal["A", "B", "C", "D", "E"]
    sources: dict[str, str]

    @model_validator(mode="after")
    def _every_item_sourced(self) -> RatingAdjustments:
        items = {"green_factory_bonus", "energy_audit_bonus", "bonus_cap", "major_incident_deduction"}
        missing = sorted((items | {"falsified_data_rating"}) - set(self.sources))
        if missing:
            raise ValueError(f"adjustments without a source (cited, or the park's own choice): {missing}")
        return self


class RatingPolicy(_Frozen):
    weights: RatingWeights
    grade_scores: dict[int, float]
    trend_neutral_score: float = Field(ge=0, le=100)
    green_share_full_score: float = Field(gt=0, le=1)
    completeness_full_score: float = Field(gt=0, le=1)
    completeness_zero_score: float = Field(ge=0, lt=1)
    compliance_default_score: float = Field(ge=0, le=100)
    cutoffs: dict[Literal["A", "B", "C", "D"], float]
    adjustments: RatingAdjustments | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RatingPolicy:
        if sorted(self.grade_scores) != [1, 2, 3, 4, 5]:
            raise ValueError("grade_scores needs grades 1 to 5")
        cut = self.cutoffs
        if set(cut) != {"A", "B", "C", "D"} or not cut["A"] > cut["B"] > cut["C"] > cut["D"]:
            raise ValueError("cutoffs need A > B > C > D")
        if self.completeness_zero_score >= self.completeness_full_score:
            raise ValueError("completeness_zero_score must be below completeness_full_score")
        return self


class NearZeroPolicy(_Frozen):
    near_zero_offset_ratio: float = Field(gt=0)
    zero_carbon_offset_ratio: float = Field(gt=0)


class LedgerPolicy(_Frozen):
    """What the credit ledger is told: the share of an obligation external units may cover, and how
    long earned credits can be banked (``ledger.book.Ledger.use_external`` / ``Ledger.expire``)."""

    external_units_cap: float = Field(ge=0, le=1)
    external_units_cap_source: str = Field(min_length=20)
    credit_validity_years: int | None = Field(None, ge=1)
    credit_validity_source: str = Field(min_length=20)


# The packaged policy's figure (scoring/data/policy.yaml, publication.working_days, with its source),
# for a policy file written before publication existed.
DEFAULT_PUBLICATION_WORKING_DAYS = 5


class PublicationPolicy(_Frozen):
    """How long a year's results stand published (公示) for objections before they can become final."""

    working_days: int = Field(ge=1, le=60)
    working_days_source: str = Field(min_length=20)


class Policy(_Frozen):
    version: str = Field(min_length=1)
    base_year: int | None = None
    benchmark_decline_rate: float = Field(ge=0, lt=1)
    min_enterprises_per_industry: int = Field(ge=1)
    credits_basis: Literal["location", "market"] = "location"
    grade_k_upper: list[float] = Field(min_length=4, max_length=4)
    rating: RatingPolicy
    near_zero: NearZeroPolicy
    ledger: LedgerPolicy | None = None
    publication: PublicationPolicy | None = None
    gas_m3_to_nm3: float | None = Field(None, gt=0)
    sha256: str = ""

    @property
    def publication_working_days(self) -> int:
        """The 公示 window [working days]; a policy without a publication section gets the packaged
        default's figure (:data:`DEFAULT_PUBLICATION_WORKING_DAYS`)."""
        return DEFAULT_PUBLICATION_WORKING_DAYS if self.publication is None else self.publication.working_days

    @property
    def credit_validity_years(self) -> int | None:
        """The banking validity (years after a vintage) every booking is held to; None: no expiry."""
        return None if self.ledger is None else self.ledger.credit_validity_years

    @model_validator(mode="after")
    def _ascending(self) -> Policy:
        if self.grade_k_upper != sorted(self.grade_k_upper) or len(set(self.grade_k_upper)) != 4:
            raise ValueError("grade_k_upper must be strictly ascending")
        return self


class PolicyError(ValueError):
    pass


def load_policy(path: Path | str | None = None) -> Policy:
    """Read a policy file (the packaged default when ``path`` is None)."""
    if path is None:
        text = resources.files("scoring").joinpath("data/policy.yaml").read_text(encoding="utf-8")
        source = "default policy"
    else:
        text = Path(path).read_text(encoding="utf-8")
        source = str(path)
    try:
        data = yaml.safe_load(text)
        return Policy.model_validate({**data, "sha256": hashlib.sha256(text.encode()).hexdigest()})
    except (yaml.YAMLError, ValidationError, TypeError) as exc:
        raise PolicyError(f"{source}: invalid policy: {exc}") from None
