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
"""

from __future__ import annotations

import math

import pandas as pd

from scoring.policy import Policy


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


def rate(
    credits: pd.DataFrame,
    policy: Policy,
    *,
    green_share: pd.Series,
    previous_intensity: pd.Series,
    completeness: pd.Series | None = None,
    compliance_score: pd.Series | None = None,
) -> pd.DataFrame:
    """Fill ``rating_score`` and ``rating`` of a credits table; the other Series are by enterprise.

    An enterprise without a grade (no value added) gets no rating.
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
        scores.append(score)
        letters.append(rating_from_score(score, policy))
        reasons.append(", ".join(f"{n.replace('_', ' ')} {v:.0f} ×{getattr(weights, n):g}%" for n, v in parts.items()))
    out["rating_score"] = scores
    out["rating"] = letters
    out["rating_reasons"] = reasons  # each dimension's score and weight: why the rating is what it is
    return out
