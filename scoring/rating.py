"""Enterprise carbon-credit rating A-E from a weighted score of five dimensions.

Dimensions and default weights follow the design proposal of docs: domain reference §9.4 (a
construction mirroring Hefei's stated data domains, not a published Hefei method):

=================  ======  ==========================================================================
dimension          weight  score 0-100
=================  ======  ==========================================================================
carbon efficiency  35      from the grade: 1→100, 2→80, 3→60, 4→40, 5→20
trend              20      intensity change year on year vs the benchmark decline rate r:
                           50 - 50 x change / r, clipped to 0..100 (flat = 50, -r or better = 100)
green power        20      (certified green + self-consumed PV) / (grid + self-consumed PV), full at 50 %
compliance         10      from the credit ledger; the policy default until it reports
data quality       15      meter completeness: full at >= 95 %, zero at <= 50 %, linear between
=================  ======  ==========================================================================

Adjustments (policy ``rating.adjustments``, each cited or marked as the park's own choice) come from
reviewed manual facts of the year rated (:class:`scoring.profiles.Facts`): a green-factory and an
energy-audit bonus up to a cap, a deduction for a major incident the year before, and a forced rating
for data found falsified. The score stays within 0..100; the reasons list every adjustment.
"""

from __future__ import annotations

import math

import pandas as pd

from scoring.policy import Policy
from scoring.profiles import Facts


def trend_score(intensity: float, previous_intensity: float, policy: Policy) -> float:
    """Score of the year-on-year change in intensity; neutral when either year is unknown."""
    rating = policy.rating
    if not (math.isfinite(intensity) and math.isfinite(previous_intensity)) or previous_intensity <= 0:
        return rating.trend_neutral_score
    change = intensity / previous_intensity - 1.0
    rate = policy.benchmark_decline_rate
    if rate == 0:
        return 100.0 if change < 0 else (50.0 if change == 0 else 0.0)
    return min(100.0, max(0.0, 50.0 - 50.0 * change / rate))


def green_score(green_share: float, policy: Policy) -> float:
    if not math.isfinite(green_share):
        return 0.0
    return 100.0 * min(1.0, max(0.0, green_share) / policy.rating.green_share_full_score)


def data_quality_score(completeness: float, policy: Policy) -> float:
    full, zero = policy.rating.completeness_full_score, policy.rating.completeness_zero_score
    if not math.isfinite(completeness):
        return 0.0
    return 100.0 * min(1.0, max(0.0, (completeness - zero) / (full - zero)))


def rating_from_score(score: float, policy: Policy) -> str:
    """A-E by the policy's cut-offs.

    Examples
    --------
    >>> from scoring.policy import load_policy
    >>> [rating_from_score(s, load_policy()) for s in (85, 84.99, 70, 55, 40, 39.9)]
    ['A', 'B', 'B', 'C', 'D', 'E']
    """
    for letter in ("A", "B", "C", "D"):
        if score >= policy.rating.cutoffs[letter]:
            return letter
    return "E"


def adjustments(enterprise: str, year: int, policy: Policy, facts: Facts | None) -> tuple[float, list[str], str | None]:
    """Points to add to the score (bonuses capped, minus deductions), the reasons, and a forced rating.

    Examples
    --------
    >>> import datetime as dt
    >>> from scoring.policy import load_policy
    >>> from scoring.profiles import Fact
    >>> def reviewed(name, value):
    ...     return Fact(enterprise="E1", year=2024, fact=name, value=value, reviewed_by="park office",
    ...                 reviewed_on=dt.date(2025, 2, 1), evidence="list")
    >>> facts = Facts(facts=[reviewed("green_factory", "national"), reviewed("energy_audit", True)])
    >>> adjustments("E1", 2024, load_policy(), facts)
    (5.0, ['green factory (national) +5', 'energy audit +1', 'bonuses capped at 5'], None)
    """
    rules = policy.rating.adjustments
    if rules is None or facts is None:
        return 0.0, [], None
    bonus, reasons = 0.0, []

    def value(name: str) -> bool | float | str | None:
        fact = facts.get(enterprise, "", year, name)
        return None if fact is None else fact.value

    level = value("green_factory")
    if isinstance(level, str) and level != "none":
        points = float(getattr(rules.green_factory_bonus, level))
        bonus += points
        reasons.append(f"green factory ({level}) +{points:g}")
    if value("energy_audit") is True:
        bonus += rules.energy_audit_bonus
        reasons.append(f"energy audit +{rules.energy_audit_bonus:g}")
    if bonus > rules.bonus_cap:
        bonus = rules.bonus_cap
        reasons.append(f"bonuses capped at {rules.bonus_cap:g}")
    if value("major_incident_last_year") is True:
        bonus -= rules.major_incident_deduction
        reasons.append(f"major incident last year -{rules.major_incident_deduction:g}")
    forced = None
    if value("data_falsified") is True:
        forced = rules.falsified_data_rating
        reasons.append(f"data found falsified: rating {forced}")
    return bonus, reasons, forced


def rate(
    credits: pd.DataFrame,
    policy: Policy,
    *,
    green_share: pd.Series,
    previous_intensity: pd.Series,
    completeness: pd.Series | None = None,
    compliance_score: pd.Series | None = None,
    facts: Facts | None = None,
) -> pd.DataFrame:
    """Fill ``rating_score`` and ``rating`` of a credits table; the other Series are by enterprise.

    An enterprise without a grade (no value added) gets no rating. ``facts`` (reviewed manual data)
    apply the policy's adjustments; without them the score is the five dimensions' alone.
    """
    weights = policy.rating.weights
    out = credits.copy()
    scores, letters, reasons = [], [], []
    for row in out.itertuples(index=False):
        ent = row.enterprise
        if pd.isna(row.grade):
            scores.append(math.nan)
            letters.append("")
            reasons.append("no grade: no rating")
            continue
        parts = {
            "carbon_efficiency": policy.rating.grade_scores[int(row.grade)],
            "trend": trend_score(
                float(row.intensity_t_per_10k_cny), float(previous_intensity.get(ent, math.nan)), policy
            ),
            "green_power": green_score(float(green_share.get(ent, math.nan)), policy),
            "compliance": float(
                compliance_score.get(ent, policy.rating.compliance_default_score)
                if compliance_score is not None
                else policy.rating.compliance_default_score
            ),
            "data_quality": (
                data_quality_score(float(completeness.get(ent, math.nan)), policy)
                if completeness is not None
                else 100.0
            ),
        }
        score = sum(getattr(weights, name) * value for name, value in parts.items()) / 100.0
        year = getattr(row, "year", None)  # facts are for a year: none apply to a table without one
        points, adjusted, forced = (
            adjustments(str(ent), int(year), policy, facts) if year is not None else (0.0, [], None)
        )
        score = min(100.0, max(0.0, score + points))
        scores.append(score)
        letters.append(forced or rating_from_score(score, policy))
        reason = ", ".join(f"{n.replace('_', ' ')} {v:.0f} ×{getattr(weights, n):g}%" for n, v in parts.items())
        reasons.append("; ".join([reason, *adjusted]))
    out["rating_score"] = scores
    out["rating"] = letters
    out["rating_reasons"] = reasons  # each dimension's score and weight: why the rating is what it is
    return out
