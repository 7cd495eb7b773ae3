"""The month's results, read back from InfluxDB: a table per enterprise and CSV files per measurement."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from park.measurements import ACTIVITY_MONTHLY, CREDITS, EMISSIONS_MONTHLY, MONTH_COVERAGE, MONTHLY_RESULTS
from park.month import Month, read_month
from park.registry import Registry, load_registry
from park.settings import Settings
from park.store import InfluxStore
from reports.html import write_html_reports


def enterprise_table(settings: Settings, period: str, registry: Registry | None = None) -> pd.DataFrame:
    """Per enterprise: whether it has data this month, the month's grid kWh, gas Nm3 and tCO2, and the
    year-to-date credits and grade. An enterprise without data has NaN (shown as "no data"), never 0.
    ``registry``: the one that computed the month (the caller's, with the registry in the platform's
    database: reports may not read it); None: the registry file."""
    registry = registry or load_registry(settings.registry)
    month = Month.of(period, registry.park.timezone)
    with InfluxStore(settings.influx) as store:
        activity = read_month(store, ACTIVITY_MONTHLY, month)
        emissions = read_month(store, EMISSIONS_MONTHLY, month)
        credits = read_month(store, CREDITS, month)
        coverage = read_month(store, MONTH_COVERAGE, month)
    table = pd.DataFrame(index=[e.id for e in registry.enterprises])
    table["name"] = [e.name for e in registry.enterprises]
    table["industry"] = [e.industry for e in registry.enterprises]
    status = coverage.set_index("enterprise")["status"] if len(coverage) else pd.Series(dtype=str)
    table["has_data"] = status.reindex(table.index).eq("data")
    own = activity[activity["workshop"].fillna("") == ""] if len(activity) else activity
    by_source = (
        own.pivot_table(index="enterprise", columns="source", values="quantity", aggfunc="sum")
        if len(own)
        else pd.DataFrame()
    )
    for source, column in (
        ("grid_electricity", "grid_kwh"),
        ("natural_gas", "gas_nm3"),
        ("pv_self_consumed", "pv_self_kwh"),
    ):
        values = (by_source[source] if source in by_source else pd.Series(dtype=float)).reindex(table.index)
        table[column] = values.where(~table["has_data"], values.fillna(0.0))  # no meter of that kind: 0
    totals = (
        emissions[(emissions["scope"] == "total") & (emissions["workshop"].fillna("") == "")]
        if len(emissions)
        else pd.DataFrame(columns=["enterprise", "tco2_location"])
    )
    table["tco2_month"] = totals.set_index("enterprise")["tco2_location"].reindex(table.index).astype(float)
    indexed = credits.set_index("enterprise") if len(credits) else pd.DataFrame()
    for column in ("credits_tco2", "grade", "rating", "rating_score", "intensity_t_per_10k_cny"):
        table[column] = indexed[column].reindex(table.index) if column in indexed else pd.NA
    return table.rename_axis("enterprise").reset_index()


def _figure(value: object, spec: str) -> str:
    return "no data" if value is None or value is pd.NA or pd.isna(value) else format(value, spec)


def format_table(table: pd.DataFrame) -> str:
    lines = [
        f"{'enterprise':<10} {'name':<28} {'ind':<4} {'grid kWh':>12} {'gas Nm3':>10} {'tCO2':>10} "
        f"{'credits tCO2':>13} {'grade':>5} {'rating':>6}"
    ]
    for r in table.itertuples(index=False):
        name = str(r.name).split(" ", 1)[-1][:28]
        grade = "" if pd.isna(r.grade) else f"{int(r.grade)}"
        rating = r.rating if isinstance(r.rating, str) else ""
        lines.append(
            f"{r.enterprise:<10} {name:<28} {r.industry:<4} {_figure(r.grid_kwh, ',.0f'):>12} "
            f"{_figure(r.gas_nm3, ',.0f'):>10} {_figure(r.tco2_month, ',.1f'):>10} "
            f"{_figure(r.credits_tco2, ',.1f'):>13} {grade:>5} {rating:>6}"
        )
    return "\n".join(lines)


def write_month_report(settings: Settings, period: str, registry: Registry | None = None) -> Path:
    """Write the month's results as CSV files, HTML reports and a text summary under ``RUN/reports/YYYY-MM/``,
    for the enterprises of ``registry`` (the month's; None: the registry file)."""
    registry = registry or load_registry(settings.registry)
    month = Month.of(period, registry.park.timezone)
    out = settings.run_dir / "reports" / period
    out.mkdir(parents=True, exist_ok=True)
    with InfluxStore(settings.influx) as store:
        frames = {measurement: read_month(store, measurement, month) for measurement in MONTHLY_RESULTS}
        for measurement, frame in frames.items():
            frame.to_csv(out / f"{measurement.name}.csv", index=False)
        write_html_reports(settings, store, month, frames, registry)
    table = enterprise_table(settings, period, registry)
    table.to_csv(out / "enterprises.csv", index=False)
    (out / "summary.txt").write_text(
        f"parkcarbon monthly results {period} (credits and grades are year-to-date, provisional until "
        f"the year is settled)\nfactor set {settings.factor_set}\n\n{format_table(table)}\n",
        encoding="utf-8",
    )
    return out
