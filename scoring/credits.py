"""Carbon intensity, industry benchmark, credits and grades (DESIGN.md "Accounting and credits").

- Intensity L = E / VA [t CO2 per 10^4 CNY of value added], per enterprise and year.
- Industry mean of a year = ΣE / ΣVA over the park's enterprises of the same GB/T 4754 division
  that year; with fewer than ``min_enterprises_per_industry``, the park-wide ΣE / ΣVA.
- Benchmark(year) = industry mean of the base year x (1 - r)^(year - base year).
- Credits = benchmark x VA - E [t CO2]: positive is a surplus, negative a deficit.
- Grade 1-5 from K = L / industry mean of the same year (Zhejiang carbon-efficiency method).

Before the year is complete, results are year-to-date and provisional: each enterprise's value added
is prorated by the months it has activity data for that year (out of 12), so intensities stay
comparable between enterprises and with full years. A month without data is not a month of zeros:
an enterprise missing months is scored on the months it has, marked provisional and says which
months it lacks. Without value added (missing or 0) an enterprise gets no intensity, credits or
grade (never credits = -E). The base year is the policy's, else the earliest year in which an
enterprise has both activity data and value added (:func:`base_year_of`); scoring a year before it
is an error.

References
----------
1. 规上工业企业碳效等级评价方法 (Zhejiang; m.yzwku.com/doc/493133.html): L, K and the grade bands.
2. 14th Five-Year Plan, CO2 per unit GDP -18 % over 2020-2025 → 3.89 %/yr.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scoring.policy import Policy

CREDIT_COLUMNS = [
    "enterprise",
    "year",
    "industry",
    "emissions_tco2",
    "value_added_10k_cny",
    "intensity_t_per_10k_cny",
    "benchmark_t_per_10k_cny",
    "credits_tco2",
    "k_ratio",
    "grade",
    "rating_score",
    "rating",
]
EXTRA_CREDIT_COLUMNS = [
    "months_covered",
    "provisional",
    "value_added_used_10k_cny",
    "benchmark_scope",
    "note",
    "rating_reasons",
]


def grade_from_k(k_ratio: float, k_upper: list[float]) -> int | None:
    """Grade 1 (best) to 5 for K = intensity / industry mean; None when K is unknown.

    Examples
    --------
    >>> [grade_from_k(k, [0.6, 0.8, 1.2, 2.0]) for k in (0.6, 0.61, 0.8, 1.2, 2.0, 2.01)]
    [1, 2, 2, 3, 4, 5]
    """
    if k_ratio is None or not math.isfinite(k_ratio):
        return None
    for grade, upper in enumerate(k_upper, start=1):
        if k_ratio <= upper:
            return grade
    return len(k_upper) + 1


def base_year_of(activity: pd.DataFrame, enterprises: pd.DataFrame, policy_base_year: int | None) -> int | None:
    """The benchmark's base year: the policy's, else the earliest year in which an enterprise has both
    activity data and value added; None when no year has both.

    Examples
    --------
    >>> activity = pd.DataFrame({"enterprise": ["E1", "E2"], "period": ["2024-05", "2025-01"]})
    >>> firms = pd.DataFrame({"enterprise": ["E1", "E1", "E2"], "year": [2023, 2024, 2025],
    ...                       "value_added_10k_cny": [10.0, 0.0, 5.0]})
    >>> base_year_of(activity, firms, None), base_year_of(activity, firms, 2020)
    (2025, 2020)
    """
    if policy_base_year is not None:
        return policy_base_year
    active = {(str(e), int(p[:4])) for e, p in zip(activity["enterprise"], activity["period"], strict=True)}
    with_value = enterprises[enterprises["value_added_10k_cny"] > 0]
    years = [
        int(y) for e, y in zip(with_value["enterprise"], with_value["year"], strict=True) if (str(e), int(y)) in active
    ]
    return min(years) if years else None


def annual_emissions(emissions: pd.DataFrame, basis: str) -> pd.DataFrame:
    """Enterprise totals per year from monthly emissions (enterprise-level rows only).

    Returns columns ``enterprise, year, emissions_tco2, months`` (the enterprise's months with data)
    and ``park_months`` (the months with data anywhere in the park that year, as ``YYYY-MM`` texts),
    one row per enterprise-year.
    """
    column = f"total_{basis}_tco2"
    own = emissions[emissions["workshop"].fillna("") == ""].copy()
    own["year"] = own["period"].str.slice(0, 4).astype(int)
    park_months = own.groupby("year")["period"].agg(lambda p: tuple(sorted(set(p)))).rename("park_months")
    yearly = (
        own.groupby(["enterprise", "year"])
        .agg(
            emissions_tco2=(column, "sum"),
            months=("period", "nunique"),
            periods=("period", lambda p: tuple(sorted(set(p)))),
        )
        .reset_index()
    )
    return yearly.merge(park_months, left_on="year", right_index=True)


def year_table(yearly: pd.DataFrame, enterprises: pd.DataFrame, year: int) -> pd.DataFrame:
    """Enterprises of ``year`` with their emissions, value added (annual and prorated by their own
    months with data) and intensity."""
    firms = enterprises[enterprises["year"] == year][["enterprise", "industry", "value_added_10k_cny"]]
    merged = firms.merge(
        yearly[yearly["year"] == year][["enterprise", "emissions_tco2", "months", "periods", "park_months"]],
        on="enterprise",
        how="outer",
    )
    merged["year"] = year
    merged["months_covered"] = merged["months"].fillna(0).astype(int)
    merged["value_added_used_10k_cny"] = merged["value_added_10k_cny"] * merged["months_covered"] / 12.0
    va = merged["value_added_used_10k_cny"]
    merged["intensity_t_per_10k_cny"] = np.where(va > 0, merged["emissions_tco2"] / va.where(va > 0), np.nan)
    return merged


def industry_means(table: pd.DataFrame, min_enterprises: int) -> pd.DataFrame:
    """ΣE / ΣVA per industry over enterprises with a finite intensity, and the park-wide fallback.

    Returns one row per industry present in ``table`` with ``mean_t_per_10k_cny``, ``n`` and
    ``scope`` ("industry", or "park" when the industry has fewer than ``min_enterprises``).
    """
    valid = table[np.isfinite(table["intensity_t_per_10k_cny"])]
    park_mean = valid["emissions_tco2"].sum() / valid["value_added_used_10k_cny"].sum() if len(valid) else np.nan
    rows = []
    for industry in sorted(table["industry"].dropna().unique()):
        group = valid[valid["industry"] == industry]
        if len(group) >= min_enterprises:
            mean = group["emissions_tco2"].sum() / group["value_added_used_10k_cny"].sum()
            rows.append((industry, mean, len(group), "industry"))
        else:
            rows.append((industry, park_mean, len(group), "park"))
    return pd.DataFrame(rows, columns=["industry", "mean_t_per_10k_cny", "n", "scope"])


def score_credits(
    emissions: pd.DataFrame, enterprises: pd.DataFrame, year: int, base_year: int, policy: Policy
) -> pd.DataFrame:
    """Credits and grades of ``year`` for every enterprise in ``enterprises`` or ``emissions``.

    Parameters
    ----------
    emissions : DataFrame
        Monthly emissions as returned by :func:`scoring.accounting.account` [t CO2].
    enterprises : DataFrame
        ``enterprise, industry, year, value_added_10k_cny`` [10^4 CNY], one row per enterprise-year.
    year, base_year : int
        The year scored and the benchmark's base year.
    policy : Policy
        Decline rate, minimum enterprises per industry, grade bands, basis (location/market).

    Returns
    -------
    DataFrame
        :data:`CREDIT_COLUMNS` plus :data:`EXTRA_CREDIT_COLUMNS`, one row per enterprise, unrounded;
        ``rating_score`` and ``rating`` are left empty for :mod:`scoring.rating`.
    """
    if year < base_year:
        raise ValueError(f"{year} is before the base year {base_year}: benchmarks start at the base year")
    yearly = annual_emissions(emissions, policy.credits_basis)
    table = year_table(yearly, enterprises, year)
    base = table if base_year == year else year_table(yearly, enterprises, base_year)
    if not np.isfinite(base["intensity_t_per_10k_cny"]).any():
        raise ValueError(f"base year {base_year} has no enterprise with both emissions and value added")

    current = industry_means(table, policy.min_enterprises_per_industry).set_index("industry")
    base_means = industry_means(base, policy.min_enterprises_per_industry).set_index("industry")
    park_base = (
        base["emissions_tco2"].where(np.isfinite(base["intensity_t_per_10k_cny"])).sum()
        / base["value_added_used_10k_cny"].where(np.isfinite(base["intensity_t_per_10k_cny"])).sum()
    )
    decline = (1.0 - policy.benchmark_decline_rate) ** (year - base_year)

    records = []
    for row in table.sort_values("enterprise").itertuples(index=False):
        notes = []
        industry = row.industry if isinstance(row.industry, str) else ""
        if not industry:
            notes.append("enterprise missing from the enterprises file for this year")
        if industry in base_means.index:
            base_mean = base_means.at[industry, "mean_t_per_10k_cny"]
            scope = str(base_means.at[industry, "scope"])
        else:
            base_mean, scope = park_base, "park"
            notes.append(f"industry {industry or '?'} has no data in base year {base_year}")
        benchmark = base_mean * decline
        mean_now = current.at[industry, "mean_t_per_10k_cny"] if industry in current.index else np.nan
        intensity = row.intensity_t_per_10k_cny
        has_value_added = bool(row.value_added_10k_cny > 0)
        if not has_value_added:
            what = "it is 0" if row.value_added_10k_cny == 0 else "missing"
            notes.append(f"no value added for {year} ({what}): no intensity, credits or grade")
        if not np.isfinite(row.emissions_tco2):
            notes.append(f"no activity data for {year}")
        elif isinstance(row.park_months, tuple):
            lacking = sorted(set(row.park_months) - set(row.periods))
            if lacking:
                notes.append(
                    f"no data for {', '.join(lacking)}: scored on {row.months_covered} months, value added "
                    f"prorated to {row.months_covered}/12"
                )
        credits = benchmark * row.value_added_used_10k_cny - row.emissions_tco2 if has_value_added else np.nan
        k_ratio = intensity / mean_now if np.isfinite(intensity) and mean_now > 0 else np.nan
        if scope == "park":
            notes.append(
                f"industry {industry} has fewer than {policy.min_enterprises_per_industry} enterprises "
                "with data in the base year: park-wide benchmark"
            )
        records.append(
            {
                "enterprise": row.enterprise,
                "year": year,
                "industry": industry,
                "emissions_tco2": row.emissions_tco2,
                "value_added_10k_cny": row.value_added_10k_cny,
                "intensity_t_per_10k_cny": intensity,
                "benchmark_t_per_10k_cny": benchmark,
                "credits_tco2": credits,
                "k_ratio": k_ratio,
                "grade": grade_from_k(k_ratio, policy.grade_k_upper),
                "rating_score": np.nan,
                "rating": "",
                "months_covered": row.months_covered,
                "provisional": row.months_covered < 12,
                "value_added_used_10k_cny": row.value_added_used_10k_cny,
                "benchmark_scope": scope,
                "note": "; ".join(notes),
            }
        )
    result = pd.DataFrame.from_records(records, columns=CREDIT_COLUMNS + EXTRA_CREDIT_COLUMNS)
    result["grade"] = result["grade"].astype("Int64")
    return result
