"""The settled year's report files: ``RUN/reports/YYYY/`` with the settled credits as CSV and a summary."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from park.measurements import CREDITS_ANNUAL


def write_year_report(run_dir: Path, year: int, credits: pd.DataFrame) -> Path:
    """The settled credits as CSV under ``RUN/reports/YYYY/``, and a summary with the grade and rating counts."""
    out = run_dir / "reports" / f"{year:04d}"
    out.mkdir(parents=True, exist_ok=True)
    credits.to_csv(out / f"{CREDITS_ANNUAL.name}.csv", index=False)
    lines = [f"parkcarbon settlement {year}: {len(credits)} enterprises"]
    if len(credits):
        lines.append(f"factor set {credits['factor_set'].iloc[0]}, policy {credits['policy_version'].iloc[0]}")
        lines.append(f"credits, park total: {credits['credits_tco2'].sum():,.1f} tCO2")
        grades = credits["grade"].dropna().astype(int).value_counts().sort_index()
        lines.append("grades: " + ", ".join(f"{g}: {n}" for g, n in grades.items()))
        ratings = credits["rating"].dropna().value_counts().sort_index()
        lines.append("ratings: " + ", ".join(f"{r}: {n}" for r, n in ratings.items()))
    (out / "summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
