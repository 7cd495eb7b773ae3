"""A month without data is not a month of zeros.

The demo park's registry with its metering start a year before the first reading (September 2026):
``carbon_monthly`` runs every month from September 2025 (as a scheduler's catch-up would, one
``dag.test()`` per month), and the months without readings record "no data" and write no credits;
the base year is 2026, the first year with data; ``carbon_annual`` refuses 2025, which has no data;
and October 2026's credits equal those of the same park whose metering (and DAG) starts in
September 2026. A month before the metering start, and one that has not ended, are refused.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml

from park.measurements import ACTIVITY_MONTHLY, CREDITS, EMISSIONS_MONTHLY, MONTH_COVERAGE
from park.month import Month, read_month
from park.registry import DEFAULT_TIMEZONE, load_registry
from park.settings import DEMO_REGISTRY
from park.store import InfluxStore
from parkcarbon.airflow_env import run_dag, run_month
from parkcarbon.runtime import export_settings
from parkcarbon.services import LocalServices
from simulators.history import write_registers
from simulators.park import simulate

pytestmark = [pytest.mark.services, pytest.mark.airflow]

TZ = ZoneInfo(DEFAULT_TIMEZONE)
EMPTY = [f"2025-{m:02d}" for m in range(9, 13)] + [f"2026-{m:02d}" for m in range(1, 9)]
WITH_DATA = ["2026-09", "2026-10"]


def _registry_starting(tmp_path, name: str, start: str):
    document = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    document["park"]["metering_start"] = start
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def registers() -> pd.DataFrame:
    """September and October 2026 of the demo park, every 15 minutes (and the next midnight)."""
    park = simulate(
        load_registry(DEMO_REGISTRY),
        datetime(2026, 9, 1, tzinfo=TZ),
        datetime(2026, 11, 1, 0, 15, tzinfo=TZ),
        pd.Timedelta("15min"),
        5,
    )
    return park.registers


def _park(settings, tmp_path, registers, name: str, start: str):
    """Settings of a park of its own (database, registry with ``start``, ledger), registers stored."""
    registry_path = _registry_starting(tmp_path, name, start)
    own = settings.model_copy(
        update={
            "registry": registry_path,
            "influx": settings.influx.model_copy(update={"database": f"{settings.influx.database}_{name}"}),
            "ledger": settings.ledger.model_copy(update={"url": None}),
            "run_dir": tmp_path / name,
        }
    )
    own.run_dir.mkdir()
    # Only InfluxDB's admin creates databases (and grants the roles theirs); the test works as the pipeline.
    LocalServices(settings.run_dir).create_database(own.influx.database)
    with InfluxStore(own.influx) as store:
        write_registers(store, load_registry(registry_path), registers)
    return own


def _credits(settings, period: str) -> pd.DataFrame:
    with InfluxStore(settings.influx) as store:
        frame = read_month(store, CREDITS, Month.of(period, DEFAULT_TIMEZONE))
    return frame.sort_values("enterprise").reset_index(drop=True) if len(frame) else frame


def test_catch_up_over_empty_months(settings, tmp_path, registers, airflow_home, clean_environ, local_services):
    early = _park(settings, tmp_path, registers, "early", "2025-09-01")
    export_settings(early)
    # A month before the metering start is refused before Airflow runs anything, and so is one that
    # has not ended; the DAG cannot run an interval before its start date either.
    with pytest.raises(RuntimeError, match=r"^2025-08 is before the park's metering start 2025-09-01"):
        run_month("2025-08")
    with pytest.raises(RuntimeError, match=r"^2099-03 has not ended yet"):
        run_month("2099-03")
    august = Month.of("2025-08", DEFAULT_TIMEZONE)
    with pytest.raises(RuntimeError, match="before the DAG's start date"):
        run_dag("carbon_monthly", august.start, august.end)

    for period in EMPTY + WITH_DATA:
        run_month(period)

    with InfluxStore(early.influx) as store:
        for period in EMPTY:
            month = Month.of(period, DEFAULT_TIMEZONE)
            assert read_month(store, ACTIVITY_MONTHLY, month).empty, period
            assert read_month(store, EMISSIONS_MONTHLY, month).empty, period
            assert read_month(store, CREDITS, month).empty, period
            coverage = read_month(store, MONTH_COVERAGE, month)
            assert set(coverage["status"]) == {"no_data"} and len(coverage) == 12, period
        october = read_month(store, MONTH_COVERAGE, Month.of("2026-10", DEFAULT_TIMEZONE))
        assert set(october["status"]) == {"data"}
    october_early = _credits(early, "2026-10")
    assert len(october_early) == 12
    # Base year 2026 (the first with data): the benchmark is that year's industry mean, and an
    # industry's credits of its own base year add up to zero where its mean is its own.
    assert (october_early["benchmark_t_per_10k_cny"] > 0).all()
    own_mean = october_early[october_early["benchmark_scope"] == "industry"]
    assert abs(own_mean.groupby("industry")["credits_tco2"].sum()).max() < 1e-6
    # The report says "no data" for an empty month instead of printing zeros.
    summary = (early.run_dir / "reports" / "2025-12" / "summary.txt").read_text(encoding="utf-8")
    assert summary.count("no data") >= 12 and " 0 " not in summary.split("\n", 4)[-1]

    # carbon_annual refuses 2025: no month of it has data.
    with pytest.raises(RuntimeError, match="did not succeed"):
        run_dag("carbon_annual", datetime(2025, 1, 1, tzinfo=TZ), datetime(2026, 1, 1, tzinfo=TZ))
    with InfluxStore(early.influx) as store:
        assert store.query('SELECT * FROM "credits_annual"').empty

    # The same park with its metering (and DAG) starting in September 2026: the same October credits.
    late = _park(settings, tmp_path, registers, "late", "2026-09-01")
    export_settings(late)
    for period in WITH_DATA:
        run_month(period)
    october_late = _credits(late, "2026-10")
    columns = ["enterprise", "credits_tco2", "benchmark_t_per_10k_cny", "intensity_t_per_10k_cny", "grade", "rating"]
    pd.testing.assert_frame_equal(october_early[columns], october_late[columns])
