"""``parkcarbon demo``: the whole path on this machine, from a simulated park to credits.

services up → collector (its own process) → simulator backfills one month of 15-minute readings
over MQTT → the collector stores them → the monthly DAG runs with ``dag.test()`` → a table of
enterprises, checked against the simulator's ground truth, and where to look next.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from park.measurements import METER_REGISTER
from park.month import Month, rfc3339
from park.registry import Registry, load_registry
from park.settings import Settings
from park.store import InfluxStore
from parkcarbon.platform_setup import DemoLogins, ensure_demo_logins
from parkcarbon.runtime import environ_without_credentials, export_settings, settings_for_run_dir
from parkcarbon.services import LocalServices, Ports, ServiceError, free_ports, load_credentials


@dataclass(frozen=True)
class DemoResult:
    period: str
    readings: int
    table: pd.DataFrame
    truth: pd.DataFrame  # monthly ground truth per meter
    report_dir: Path
    timings_s: dict[str, float]
    logins: DemoLogins  # the platform's logins for the demo park


def previous_month(timezone: str) -> str:
    now = datetime.now(ZoneInfo(timezone))
    return Month.containing(now, timezone).previous().period


def _start_services(settings: Settings, registry: Registry) -> Ports:
    services = LocalServices(settings.run_dir)
    wanted = Ports(settings.mqtt.port, settings.influx.port, settings.influx.rpc_port)
    database, replicas = settings.influx.database, settings.collector.max_replicas
    try:
        return services.up(registry, wanted, database, replicas)
    except ServiceError:
        # the configured ports are taken (another run directory, another program): use free ones
        return services.up(registry, free_ports(), database, replicas)


def _start_collector(settings: Settings) -> subprocess.Popen[bytes]:
    """``parkcarbon collect`` as its own process, as it runs in production, with the collector's
    credentials (not this process's); wait until it subscribed."""
    log_path = settings.run_dir / "collector.log"
    log_path.write_bytes(b"")
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "parkcarbon", "collect"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environ_without_credentials(),
        )
    deadline = time.monotonic() + 60
    while b"collecting with" not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(f"the collector did not start; see {log_path}")
        time.sleep(0.1)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stored_readings(store: InfluxStore, month: Month) -> int:
    frame = store.query(
        f"SELECT COUNT(\"raw_value\") FROM {METER_REGISTER.q} WHERE time >= '{rfc3339(month.start)}' "
        f"AND time <= '{rfc3339(month.end)}'"
    )
    return int(frame["count"].iloc[0]) if len(frame) else 0


def run_demo(settings: Settings, period: str | None = None, seed: int = 2026) -> DemoResult:
    from parkcarbon.airflow_env import prepare_airflow, run_month
    from reports.monthly import enterprise_table
    from simulators.run import publish_run, simulate_run
    from simulators.truth import write_truth

    timings: dict[str, float] = {}
    clock = time.monotonic()
    registry = load_registry(settings.registry)
    period = period or previous_month(registry.park.timezone)
    month = Month.of(period, registry.park.timezone)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    print(f"starting mosquitto and influxd under {settings.run_dir} ...", flush=True)
    ports = _start_services(settings, registry)
    settings = settings_for_run_dir(settings)
    export_settings(settings)
    print(f"services up: mosquitto :{ports.mqtt}, influxd :{ports.influx_http}, run dir {settings.run_dir}")
    with InfluxStore(settings.influx) as store:
        store.create_database()
    timings["services"] = time.monotonic() - clock

    clock = time.monotonic()
    collector = _start_collector(settings)
    try:
        print(f"collector running (log: {settings.run_dir / 'collector.log'}); backfilling {period}", flush=True)
        print(f"simulating {len(registry.meters)} meters for {period} (about 20 s) ...", flush=True)
        simulated = simulate_run(registry, month.start, month.end, pd.Timedelta("15min"), seed)
        stats = publish_run(simulated, settings, load_credentials(settings.run_dir))
        write_truth(simulated, settings.run_dir / "truth" / period, seed, stats)
        print("waiting until the collector has stored every reading ...", flush=True)
        with InfluxStore(settings.influx) as store:
            deadline = time.monotonic() + 300
            while (stored := _stored_readings(store, month)) < stats.readings:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {stored} of {stats.readings} readings reached InfluxDB")
                time.sleep(0.2)
        print(f"InfluxDB holds all {stored} readings of {period}")
    finally:
        _stop(collector)
    timings["ingest"] = time.monotonic() - clock

    clock = time.monotonic()
    print(f"running the monthly DAG for {period} with dag.test() (about 20 s) ...", flush=True)
    prepare_airflow(settings.run_dir)
    run_month(period)
    timings["dag"] = time.monotonic() - clock

    logins = ensure_demo_logins(settings)
    truth = pd.read_csv(settings.run_dir / "truth" / period / "monthly.csv", keep_default_na=False)
    table = enterprise_table(settings, period)
    return DemoResult(period, stats.readings, table, truth, settings.run_dir / "reports" / period, timings, logins)


def truth_by_enterprise(truth: pd.DataFrame, period: str) -> pd.DataFrame:
    """Main-meter grid import kWh and gas Nm3 per enterprise from the simulator's ground truth."""
    main = truth[(truth["month"] == period) & (truth["role"] == "main")]
    grid = main[(main["carrier"] == "grid_electricity") & (main["register"] == "active_energy_import")]
    gas = main[main["carrier"] == "natural_gas"]
    return pd.DataFrame(
        {
            "grid_kwh": grid.groupby("enterprise")["consumption"].sum(),
            "gas_nm3": gas.groupby("enterprise")["consumption"].sum(),
        }
    ).fillna(0.0)


def print_result(result: DemoResult, settings: Settings) -> None:
    from reports.monthly import format_table

    print()
    print(f"Enterprises, {result.period} (credits, grade and rating year-to-date, provisional):")
    print(format_table(result.table))
    truth = truth_by_enterprise(result.truth, result.period)
    table = result.table.set_index("enterprise")
    worst = float((table["grid_kwh"] - truth["grid_kwh"]).abs().max())
    print(f"\nCheck against the simulator's ground truth: grid kWh per enterprise differs by at most {worst:.6f} kWh.")
    resolved = settings_for_run_dir(settings)
    print(f"""
Where the results are:
  park report    {result.report_dir / "index.html"}  (open it in a browser; one page per enterprise)
  report files   {result.report_dir}  (summary.txt, enterprises.csv, one CSV per measurement)
  InfluxDB       {resolved.influx.url}  database {resolved.influx.database!r}; query it with curl, e.g.
                 curl -sG {resolved.influx.url}/query -u dashboards:PASSWORD \\
                   --data-urlencode db={resolved.influx.database} \\
                   --data-urlencode 'q=SELECT credits_tco2, grade, rating FROM credits GROUP BY enterprise'
                 (PASSWORD: "influxdb" → "dashboards" in {resolved.run_dir / "credentials.json"})
  ground truth   {resolved.run_dir / "truth" / result.period}
  platform       parkcarbon platform serve   then open http://127.0.0.1:8000/ and log in as park-admin (every
                 enterprise), park-viewer, or e01-admin … (one enterprise each); passwords in
                 {result.logins.path} (readable by you only)
  re-run a month parkcarbon monthly {result.period}
  stop services  parkcarbon services down   (or: make services-down)
""")
