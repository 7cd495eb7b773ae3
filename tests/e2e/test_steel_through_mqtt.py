"""The UCI steel plant's 2018 15-minute kWh, published through MQTT as a cumulative register with
device timestamps, gives each month's kWh equal to the sum of the file's Usage_kWh to 1e-6; and a
past year imported like this is computed by ``parkcarbon monthly`` (a registry without workshops,
older than any date in the code), while a month before the park's metering start or one that has not
ended is refused with one line."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import yaml
from numpy.testing import assert_allclose

from park.measurements import ACTIVITY_MONTHLY, CREDITS, DATA_QUALITY
from park.month import Month, read_month
from park.registry import DEFAULT_TIMEZONE, load_registry
from park.store import InfluxStore
from parkcarbon.cli import main
from parkcarbon.runtime import export_settings
from parkcarbon.services import load_credentials
from pipeline.monthly import compute_activity
from simulators.publisher import send_plan
from simulators.run import simulate_run
from tests.integration.helpers import clear_retained_status, running_collectors, wait_for_count, with_own_group

pytestmark = [pytest.mark.services, pytest.mark.airflow]
TZ = DEFAULT_TIMEZONE

REGISTRY = {
    "version": "steel-test",
    "park": {
        "id": "steel",
        "name": "UCI steel plant (DAEWOO Steel, Gwangyang)",
        "timezone": TZ,
        "metering_start": "2018-01-01",
        "latitude_deg": 34.9,
        "longitude_deg": 127.7,
    },
    "enterprises": [{"id": "STEEL", "name": "DAEWOO Steel", "industry": "C31"}],
    # The collector's account and the ACL are made from the demo registry's gateways: reuse one id.
    "gateways": [{"id": "gw-e01-1", "enterprise": "STEEL"}],
    "meters": [
        {
            "id": "STEEL-M-GRID",
            "gateway": "gw-e01-1",
            "enterprise": "STEEL",
            "carrier": "grid_electricity",
            "role": "main",
            "unit": "kWh",
            "multiplier": 1.0,
            "rollover_at": 1_000_000.0,
            "max_per_hour": 700,
        }
    ],
}


def test_steel_monthly_kwh_equals_file(
    settings, store, steel, tmp_path, demo_registry, airflow_home, clean_environ, capsys
):
    """35,041 readings through Mosquitto and the collector; the register wraps once; months match."""
    path = tmp_path / "steel.yaml"
    path.write_text(yaml.safe_dump(REGISTRY))
    registry = load_registry(path)
    settings = with_own_group(settings)
    settings = settings.model_copy(
        update={
            "registry": path,
            "collector": settings.collector.model_copy(update={"max_reading_age_days": 36_500}),  # importing history
        }
    )
    tz = ZoneInfo(TZ)
    run = simulate_run(
        registry,
        datetime(2018, 1, 1, tzinfo=tz),
        datetime(2019, 1, 1, tzinfo=tz),
        pd.Timedelta("15min"),
        3,
        {},
        {"STEEL-M-GRID": steel},
    )
    clear_retained_status(settings, demo_registry)  # left by earlier tests: unknown to the steel registry
    try:
        with running_collectors(settings, registry) as (collector,):
            stats = send_plan(registry, run.plan, settings.mqtt, load_credentials(settings.run_dir))
            assert stats.refused == 0 and stats.readings == 35_041
            assert wait_for_count(store, 35_041, 120) == 35_041
    finally:
        clear_retained_status(settings, registry)
    assert collector.stats.quarantined == 0

    expected = steel.groupby((steel["end"] - pd.Timedelta(minutes=15)).dt.strftime("%Y-%m"))["energy_kwh"].sum()
    got = {}
    rollovers = 0
    for period in expected.index:
        compute_activity(settings, period)
        activity = read_month(store, ACTIVITY_MONTHLY, Month.of(period, TZ))
        got[period] = float(activity.loc[activity["source"] == "grid_electricity", "quantity"].sum())
        quality = read_month(store, DATA_QUALITY, Month.of(period, TZ))
        rollovers += int(quality["rollovers"].sum())
        assert quality["completeness"].min() == 1.0
    assert_allclose(pd.Series(got)[expected.index], expected, rtol=0, atol=1e-6)
    assert rollovers == 1  # ~950 MWh a year on a register that wraps at 1,000,000 from a random start
    with InfluxStore(settings.influx) as check:
        assert check.query('SELECT COUNT("raw_value") FROM "meter_register"')["count"].iloc[0] == 35_041

    # The same past year through the command a park office runs, DAG and all.
    enterprises = tmp_path / "enterprises.csv"
    enterprises.write_text("enterprise,name,industry,year,value_added_10k_cny\nSTEEL,DAEWOO Steel,C31,2018,250000\n")
    export_settings(settings.model_copy(update={"enterprises": enterprises}))
    capsys.readouterr()
    for period in ("2018-01", "2018-02"):
        assert main(["monthly", period]) == 0, capsys.readouterr().err
        assert "STEEL" in capsys.readouterr().out
        activity = read_month(store, ACTIVITY_MONTHLY, Month.of(period, TZ))
        assert_allclose(activity["quantity"].sum(), expected[period], rtol=0, atol=1e-6)
        credits = read_month(store, CREDITS, Month.of(period, TZ))
        assert list(credits["enterprise"]) == ["STEEL"]
    for period, reason in (
        ("2017-12", "2017-12 is before the park's metering start 2018-01-01 (registry park.metering_start)"),
        ("2099-01", "2099-01 has not ended yet"),
    ):
        assert main(["monthly", period]) == 1
        err = capsys.readouterr().err
        assert reason in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
