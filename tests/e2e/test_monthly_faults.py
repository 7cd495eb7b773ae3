"""carbon_monthly and meter_quality_daily with dag.test() on real InfluxDB, fed through Mosquitto and
the collector by the simulator with injected rollover, reset, meter change, gaps and late data,
checked against the simulator's ground truth.

Expected activity is derived from the truth alone: per meter, what its register counted in March
(``simulators.truth.monthly_truth``), summed the way GB/T 32150 books it (main meters for the
enterprise, a workshop's meters for the workshop), less the energy a reset made unbookable.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml
from numpy.testing import assert_allclose

from park.measurements import ACTIVITY_MONTHLY, DATA_QUALITY, LATE_DATA
from park.month import Month, read_month
from park.registry import DEFAULT_TIMEZONE, Carrier, MeterRole, Registry
from park.store import InfluxStore
from parkcarbon.airflow_env import run_dag, run_month
from parkcarbon.runtime import export_settings
from parkcarbon.services import load_credentials
from simulators.faults import FaultedRun
from simulators.publisher import send_plan
from simulators.run import simulate_run
from simulators.truth import monthly_truth, registry_with_events
from tests.integration.helpers import count_readings, running_collectors, wait_for_count, with_own_group

pytestmark = [pytest.mark.services, pytest.mark.airflow]

TZ = ZoneInfo(DEFAULT_TIMEZONE)
PERIOD = "2026-03"
FAULTS = {"rollover": 1, "replacement": 1, "reset": 1, "gap": 3, "late": 1}
BOOKED = {  # (carrier, register) → activity source, as scoring.activity books them
    (Carrier.GRID_ELECTRICITY, "active_energy_import"): "grid_electricity",
    (Carrier.NATURAL_GAS, "gas_volume"): "natural_gas",
    (Carrier.HEAT, "heat_energy"): "purchased_heat",
}


def expected_activity(run: FaultedRun, registry: Registry) -> pd.Series:
    """Quantity per (enterprise, workshop, source) from the truth, less what resets made unbookable."""
    truth = monthly_truth(run.park)
    truth = truth[truth["month"] == PERIOD].set_index(["meter", "register"])["consumption"].copy()
    for fault in run.faults:
        if fault.kind == "reset":
            truth[(fault.meter, fault.register)] -= float(fault.detail["unbookable"])  # type: ignore[arg-type]
    return booked_activity(registry, truth.items())


def booked_activity(registry: Registry, quantities: Iterable[tuple[tuple[str, str], float]]) -> pd.Series:
    """Quantity per (enterprise, workshop, source) from each (meter, register)'s quantity, booked as
    GB/T 32150 books it: main meters for the enterprise, a workshop's meters for the workshop."""
    rows: dict[tuple[str, str, str], float] = {}
    for (meter_id, register), quantity in quantities:
        meter = registry.meter_by_id[meter_id]
        source = BOOKED.get((meter.carrier, register))
        if source is None:
            continue
        scopes = ([""] if meter.role is MeterRole.MAIN else []) + ([meter.workshop] if meter.workshop else [])
        for workshop in scopes:
            key = (meter.enterprise, workshop, source)
            rows[key] = rows.get(key, 0.0) + float(quantity)
    return pd.Series(rows).sort_index()


def stored_activity(store: InfluxStore) -> pd.Series:
    frame = read_month(store, ACTIVITY_MONTHLY, Month.of(PERIOD, DEFAULT_TIMEZONE))
    frame = frame[frame["source"].isin(BOOKED.values())]
    index = zip(frame["enterprise"], frame["workshop"].fillna(""), frame["source"], strict=True)
    return pd.Series(frame["quantity"].to_numpy(), index=pd.MultiIndex.from_tuples(list(index))).sort_index()


@pytest.fixture(scope="module")
def faulted(demo_registry) -> FaultedRun:
    """March 2026 with a day either side, with the faults of ``FAULTS`` placed by seed 11."""
    return simulate_run(
        demo_registry,
        datetime(2026, 2, 28, tzinfo=TZ),
        datetime(2026, 4, 1, 6, tzinfo=TZ),
        pd.Timedelta("15min"),
        11,
        FAULTS,
    )


def test_faulted_month_through_mqtt_and_airflow(settings, store, airflow_home, tmp_path, clean_environ, faulted):
    run = faulted
    registry = registry_with_events(run.park.registry, run.registry_events)
    assert len(registry.meter_by_id[str(run.registry_events[0]["meter"])].replacements) == 1
    registry_file = tmp_path / "registry.yaml"
    registry_file.write_text(yaml.safe_dump(registry.model_dump(mode="json"), allow_unicode=True))
    settings = with_own_group(settings.model_copy(update={"registry": registry_file}))
    export_settings(settings)

    late = [m for m in run.plan if m.note == "late"]
    on_time = [m for m in run.plan if m.note != "late"]
    distinct = int(run.published.notna().to_numpy().sum())
    late_readings = sum(m.readings for m in late)
    assert late_readings > 0
    credentials = load_credentials(settings.run_dir)
    with running_collectors(settings, registry):
        assert send_plan(registry, on_time, settings.mqtt, credentials).refused == 0
        assert wait_for_count(store, distinct - late_readings) == distinct - late_readings

        # 1. The month runs while one gateway's store-and-forward batch is still on its way.
        run_month(PERIOD)
        expected = expected_activity(run, registry)
        # Gaps (the late gateway's outage is one) are bridged by the registers around them: energy conserved.
        assert_allclose(stored_activity(store).reindex(expected.index), expected, rtol=1e-9)
        month = Month.of(PERIOD, DEFAULT_TIMEZONE)
        quality = read_month(store, DATA_QUALITY, month).set_index(["meter", "register"])
        by_kind = {f.kind: f for f in run.faults}
        rollover, reset = by_kind["rollover"], by_kind["reset"]
        assert quality.loc[(rollover.meter, rollover.register), "rollovers"] == 1
        assert quality.loc[(reset.meter, reset.register), "resets"] == 1
        assert quality["estimated_intervals"].sum() > 0

        # 2. The batch arrives; the daily quality DAG sees readings stored after the month ran.
        assert send_plan(registry, late, settings.mqtt, credentials).refused == 0
        assert wait_for_count(store, distinct) == distinct
        run_dag("meter_quality_daily", datetime(2026, 3, 31, tzinfo=TZ), datetime(2026, 4, 1, tzinfo=TZ))
        flagged = read_month(store, LATE_DATA, month)
        assert flagged["late_readings"].sum() == late_readings
        assert set(flagged["meter"]) == {m.id for m in registry.meters if m.gateway == late[0].gateway}

        # 3. Clearing the month (running it again) takes them in and clears the flag.
        run_month(PERIOD)
        assert read_month(store, LATE_DATA, month).empty
        assert_allclose(stored_activity(store).reindex(expected.index), expected, rtol=1e-9)
        after = read_month(store, DATA_QUALITY, month).set_index(["meter", "register"])
        late_meters = [k for k in after.index if k[0] in set(flagged["meter"])]
        gap_meters = {(f.meter, f.register) for f in run.faults if f.kind == "gap"}
        assert (after.loc[[k for k in late_meters if k not in gap_meters], "estimated_intervals"] == 0).all()
        assert count_readings(store) == distinct


def test_daily_quality_counts_what_was_published(settings, store, airflow_home, clean_environ, faulted):
    """meter_quality_daily's completeness per register equals the day's published readings / 96."""
    run = faulted
    registry = run.park.registry
    settings = with_own_group(settings)
    export_settings(settings)
    gap = next(f for f in run.faults if f.kind == "gap")
    day = pd.Timestamp(gap.start).tz_convert(TZ).normalize()
    distinct = int(run.published.notna().to_numpy().sum())
    with running_collectors(settings, registry):
        assert send_plan(registry, run.plan, settings.mqtt, load_credentials(settings.run_dir)).refused == 0
        assert wait_for_count(store, distinct) == distinct
    run_dag("meter_quality_daily", day.to_pydatetime(), (day + pd.Timedelta("1D")).to_pydatetime())
    frame = store.query(f'SELECT * FROM "meter_quality_daily" WHERE time = {day.value}')
    frame = frame.set_index(["meter", "register"])
    window = run.published[(run.published.index > day) & (run.published.index <= day + pd.Timedelta("1D"))]
    expected = window.notna().sum() / 96
    assert_allclose(frame["completeness"].reindex(expected.index), expected.to_numpy(), rtol=1e-12)
    assert frame.loc[(gap.meter, gap.register), "completeness"] < 1
    assert not frame["stale"].astype(bool).any()
    gateways = store.query(f'SELECT * FROM "gateway_quality_daily" WHERE time = {day.value}')
    assert len(gateways) == len(registry.gateways) and not gateways["offline"].astype(bool).any()
    # The park's mean completeness from one point per gateway equals the mean over every register.
    assert gateways["registers"].sum() == len(frame)
    assert_allclose(
        gateways["completeness_sum"].sum() / gateways["registers"].sum(), frame["completeness"].mean(), rtol=1e-12
    )
