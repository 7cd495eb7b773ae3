"""carbon_annual with dag.test() on real InfluxDB: two simulated years (daily register readings
written as the collector stores them), every month computed, the years settled.

Checked against numbers derived without the pipeline: each enterprise's 2025 emissions from the
simulator's truth by the GB/T 32150 formula; in the base year (2024) an industry's credits sum to
zero (benchmark = ΣE/ΣVA); the next year's benchmark is the base year's × (1 − 3.89 %).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml
from numpy.testing import assert_allclose

from ledger.amounts import credits_to_kg
from ledger.book import Ledger
from ledger.results import current_version, rows_of
from park.lineprotocol import Point
from park.registry import DEFAULT_TIMEZONE
from park.settings import DEMO_ENTERPRISES, DEMO_REGISTRY
from parkcarbon.airflow_env import run_dag
from parkcarbon.runtime import export_settings
from pipeline.annual import SettlementError, settle_year
from pipeline.monthly import compute_activity
from pipeline.quality import compute_late_data
from simulators.history import write_registers
from simulators.park import simulate
from simulators.truth import monthly_truth

pytestmark = [pytest.mark.services, pytest.mark.airflow]

TZ = ZoneInfo(DEFAULT_TIMEZONE)
GRID_T_PER_MWH = 0.5306  # MEE/NBS 2023 national average (cn-national-2023)
GAS_T_PER_10K_NM3 = 389.31 * 0.0153 * 0.99 * 44 / 12  # NDRC defaults, GB/T 32150 formula
HEAT_T_PER_GJ = 0.11  # NDRC guideline default
DECLINE = 0.0389  # policy 2026.1: benchmark decline per year


def past_park(settings, tmp_path):
    """Settings with the demo registry metering from 2024-01-01 and value added moved two years back."""
    document = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    document["park"]["metering_start"] = "2024-01-01"
    registry = tmp_path / "registry.yaml"
    registry.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    firms = pd.read_csv(DEMO_ENTERPRISES)
    firms = firms[firms["year"] < 2027].assign(year=lambda f: f["year"] - 1)
    enterprises = tmp_path / "enterprises.csv"
    firms.to_csv(enterprises, index=False)
    return settings.model_copy(update={"registry": registry, "enterprises": enterprises})


def periods(year: int) -> list[str]:
    return [f"{year}-{m:02d}" for m in range(1, 13)]


def test_two_years_settled(settings, store, airflow_home, clean_environ, demo_registry, tmp_path):
    # Two past years (a month is computed once it is over): the demo park metered from 2024, with the
    # demo's value added of 2025 and 2026 as that of 2024 and 2025.
    settings = past_park(settings, tmp_path)
    park = simulate(
        demo_registry, datetime(2024, 1, 1, tzinfo=TZ), datetime(2026, 1, 1, tzinfo=TZ), pd.Timedelta("1D"), 5
    )
    write_registers(store, demo_registry, park.registers)
    export_settings(settings)
    for period in periods(2024) + periods(2025)[:-1]:
        compute_activity(settings, period)

    # Not before every month ran ...
    with pytest.raises(SettlementError, match="has not run for 2025-12"):
        settle_year(settings, 2025)
    compute_activity(settings, "2025-12")

    # ... nor while a month has readings stored after it ran.
    column = park.registers.columns[0]
    june = park.registers.loc["2025-06-10":"2025-06-11", column]  # two consecutive daily readings
    middle = june.index[0] + (june.index[1] - june.index[0]) / 2
    meter = demo_registry.meter_by_id[column[0]]
    store.write(
        [
            Point(
                "meter_register",
                {
                    "enterprise": meter.enterprise,
                    "meter": meter.id,
                    "carrier": meter.carrier.value,
                    "register": column[1],
                },
                {"raw_value": float(june.mean()), "value": float(june.mean()) * meter.multiplier},
                middle.value,
            )
        ]
    )
    assert compute_late_data(settings, datetime(2026, 1, 5).date()) == {"2025-06": 1}
    with pytest.raises(SettlementError, match=r"2025-06 \(1 late readings\)"):
        settle_year(settings, 2025)
    compute_activity(settings, "2025-06")  # clearing the month takes the reading in

    run_dag("carbon_annual", datetime(2024, 1, 1, tzinfo=TZ), datetime(2025, 1, 1, tzinfo=TZ))
    run_dag("carbon_annual", datetime(2025, 1, 1, tzinfo=TZ), datetime(2026, 1, 1, tzinfo=TZ))

    settled = store.query('SELECT * FROM "credits_annual"')
    settled["year_settled"] = settled["time"].dt.tz_convert(TZ).dt.year
    assert len(settled) == 2 * len(demo_registry.enterprises)
    assert not settled["provisional"].astype(bool).any() and (settled["months_covered"] == 12).all()

    base = settled[settled["year_settled"] == 2024]
    for industry, group in base.groupby("industry"):
        if len(group) >= 3:  # industries with their own benchmark
            assert_allclose(group["credits_tco2"].sum(), 0.0, atol=1e-6), industry

    year = settled[settled["year_settled"] == 2025].set_index("enterprise")
    truth = monthly_truth(park)
    main = truth[truth["month"].str.startswith("2025-") & (truth["role"] == "main")]
    by = main.groupby(["enterprise", "carrier", "register"])["consumption"].sum()
    expected = pd.Series(0.0, index=year.index)
    for (enterprise, carrier, register), quantity in by.items():
        if (carrier, register) == ("grid_electricity", "active_energy_import"):
            expected[enterprise] += quantity / 1000 * GRID_T_PER_MWH
        elif carrier == "natural_gas":
            expected[enterprise] += quantity / 1e4 * GAS_T_PER_10K_NM3
        elif carrier == "heat":
            expected[enterprise] += quantity * HEAT_T_PER_GJ
    assert_allclose(year["emissions_tco2"], expected.reindex(year.index), rtol=1e-9)
    base_benchmark = base.set_index("enterprise")["benchmark_t_per_10k_cny"]
    assert_allclose(year["benchmark_t_per_10k_cny"], base_benchmark.reindex(year.index) * (1 - DECLINE), rtol=1e-12)
    assert (settings.run_dir / "reports" / "2025" / "summary.txt").read_text().startswith("parkcarbon settlement 2025")

    # The ledger: each year's surpluses issued as that vintage, deficits owed by 30 June of the next year.
    with Ledger.open(settings.ledger_url, DEFAULT_TIMEZONE) as ledger:
        assert ledger.check() == []
        # Each settlement recorded its rows as result version 1, booked on settlement (the default
        # ledger.issuance: a park without the platform's review).
        with ledger.engine.connect() as conn:
            for year_settled, frame in settled.groupby("year_settled"):
                version = current_version(conn, int(year_settled))
                assert version is not None and (version.version, version.issuance) == (1, "on_settlement")
                recorded = {r.enterprise_id: r.credits_t for r in rows_of(conn, version.id)}
                assert set(recorded) == set(frame["enterprise"])
                for enterprise, credits_t in zip(frame["enterprise"], frame["credits_tco2"], strict=True):
                    assert recorded[enterprise] == (None if pd.isna(credits_t) else pytest.approx(credits_t, rel=1e-12))
        held = ledger.balances().set_index(["account", "vintage"])["amount_t"]
        for year_settled, frame in settled.groupby("year_settled"):
            for enterprise, credits_t in zip(frame["enterprise"], frame["credits_tco2"], strict=True):
                expected_t = credits_to_kg(max(credits_t, 0.0)) / 1000
                assert held.get((f"ent:{enterprise}", year_settled), 0.0) == expected_t
        # 2024's deficits were not covered by 30 June 2025; 2025's are open on 1 January 2026.
        compliance = store.query('SELECT * FROM "compliance"')
        compliance["year"] = compliance["time"].dt.tz_convert(TZ).dt.year
        assert len(compliance) == 2 * len(demo_registry.enterprises)
        by_year = settled.set_index(["year_settled", "enterprise"])["credits_tco2"]
        for (year_settled, enterprise), row in compliance.set_index(["year", "enterprise"]).iterrows():
            credits_t = by_year[(year_settled, enterprise)]
            deficit = credits_to_kg(credits_t) < 0
            expected = ("not covered" if year_settled == 2024 else "open") if deficit else "no obligation"
            assert row["status"] == expected, (year_settled, enterprise)
            assert row["due_tco2"] == (credits_to_kg(-credits_t) / 1000 if deficit else 0.0)

    # 2025's rating takes 2024's compliance: 0 for a deficit left uncovered, 100 with no obligation.
    for enterprise, credits_t in by_year[2024].items():
        if pd.isna(year.at[enterprise, "rating_score"]):
            continue
        expected = "compliance 0 " if credits_to_kg(credits_t) < 0 else "compliance 100 "
        assert expected in year.at[enterprise, "rating_reasons"], enterprise
