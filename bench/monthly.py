"""Monthly benchmark: seconds and peak memory of ``carbon_monthly``'s activity step (registers → per
meter consumption with validation and estimation → activity and data quality, written back) for one
month of 15-minute readings, next to the time InfluxDB alone takes to return the same data.

For each park size (default 2,000 and 20,000 meters; 100 meters per enterprise, one main meter and
99 workshop sub-meters each) the script writes the month plus a day either side straight into a real
``influxd`` (as the collector stores them), then, each in a fresh process:

- ``read``: the exact InfluxQL requests the step makes, answered by InfluxDB and received in full
  (bytes, no parsing): the floor any implementation on this store pays;
- ``compute``: :func:`pipeline.monthly.compute_activity`, end to end, with its peak RSS, from raw
  readings (no day rolled up);
- ``day_read``: InfluxDB returning each day's raw readings as the daily rollup asks for them (the day
  and a small margin, received in full, not parsed), per day;
- ``rollup``: :func:`pipeline.daily.compute_day_rollup` for every day of the month, per day;
- ``compute`` again: the activity step now summing the month's rolled-up days.

Run: ``.venv/bin/python bench/monthly.py [--meters 2000 20000]``. Writing 20,000 meters (60 M
points) takes about five minutes on 2 cores; the figures printed are what the closing note cites.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import yaml

from park.registry import DEFAULT_TIMEZONE

if TYPE_CHECKING:
    from park.settings import InfluxSettings

TZ = DEFAULT_TIMEZONE
PERIOD = "2026-03"
METERS_PER_ENTERPRISE = 100
WRITE_CHUNK_METERS = 500


def registry_data(n_meters: int) -> dict[str, object]:
    """A park of ``n_meters`` grid meters, ``METERS_PER_ENTERPRISE`` per enterprise."""
    enterprises, workshops, gateways, meters = [], [], [], []
    for e in range(n_meters // METERS_PER_ENTERPRISE):
        eid = f"B{e:04d}"
        enterprises.append({"id": eid, "name": f"Bench {e}", "industry": ("C39", "C34", "C26")[e % 3]})
        workshops.append({"id": f"{eid}-WS", "enterprise": eid, "name": "Workshop"})
        gateways.append({"id": f"gw-{eid}", "enterprise": eid})
        for m in range(METERS_PER_ENTERPRISE):
            meters.append(
                {
                    "id": f"{eid}-M{m:03d}",
                    "gateway": f"gw-{eid}",
                    "enterprise": eid,
                    "workshop": None if m == 0 else f"{eid}-WS",
                    "carrier": "grid_electricity",
                    "role": "main" if m == 0 else "sub",
                    "unit": "kWh",
                    "rollover_at": 1_000_000.0,
                }
            )
    park = {
        "id": "bench",
        "name": "Bench park",
        "timezone": TZ,
        "metering_start": "2026-01-01",
        "latitude_deg": 31.8,
        "longitude_deg": 117.1,
    }
    return {
        "version": f"bench-{n_meters}",
        "park": park,
        "enterprises": enterprises,
        "workshops": workshops,
        "gateways": gateways,
        "meters": meters,
    }


def write_month(port: int, database: str, registry_path: Path) -> tuple[int, float]:
    """Write the month ± one day of 15-minute registers; return (readings, seconds)."""
    from park.month import Month
    from park.registry import load_registry
    from park.settings import InfluxSettings
    from park.store import InfluxStore
    from simulators.history import write_registers

    registry = load_registry(registry_path)
    month = Month.of(PERIOD, TZ)
    index = pd.date_range(
        pd.Timestamp(month.start) - pd.Timedelta("1D"), pd.Timestamp(month.end) + pd.Timedelta("1D"), freq="15min"
    ).tz_convert("UTC")
    rng = np.random.default_rng(7)
    started = time.monotonic()
    written = 0
    with InfluxStore(_pipeline(InfluxSettings(port=port, database=database, timeout_s=300))) as store:
        for first in range(0, len(registry.meters), WRITE_CHUNK_METERS):
            chunk = registry.meters[first : first + WRITE_CHUNK_METERS]
            kwh = rng.gamma(2.0, 5.0, size=(len(index), len(chunk)))
            registers = (rng.uniform(0, 900_000, size=len(chunk)) + kwh.cumsum(axis=0)) % 1_000_000.0
            columns = pd.MultiIndex.from_tuples([(m.id, "active_energy_import") for m in chunk])
            written += write_registers(store, registry, pd.DataFrame(registers, index=index, columns=columns))
    return written, time.monotonic() - started


def _pipeline(influx: InfluxSettings) -> InfluxSettings:
    """``influx`` with InfluxDB's pipeline account, which main() puts into the environment for itself
    and the children (the activity step reads as the pipeline does)."""
    from pydantic import SecretStr

    return influx.model_copy(
        update={
            "username": os.environ["PARKCARBON_INFLUX__USERNAME"],
            "password": SecretStr(os.environ["PARKCARBON_INFLUX__PASSWORD"]),
        }
    )


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM). Not ru_maxrss: Linux carries that over from the
    parent across fork and exec, so a child would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child_read(port: int, database: str, registry_path: Path) -> dict[str, float]:
    """Time InfluxDB answering the step's requests, received in full and not parsed."""
    import httpx

    from park.month import Month
    from park.registry import load_registry
    from pipeline import daily, monthly

    registry = load_registry(registry_path)
    month = Month.of(PERIOD, TZ)
    statements: list[str] = []

    class Recorder:  # collects the statements read_registers sends, without sending them
        def query(self, statement: str) -> pd.DataFrame:
            statements.append(statement)
            return pd.DataFrame(columns=["time"])

    meters = registry.meters
    for first in range(0, len(meters), daily.CHUNK_METERS):
        monthly.read_registers(Recorder(), month, [m.id for m in meters[first : first + daily.CHUNK_METERS]])  # type: ignore[arg-type]
    received = 0
    started = time.monotonic()
    from park.settings import InfluxSettings

    account = _pipeline(InfluxSettings())
    auth = (account.username or "", account.password.get_secret_value() if account.password else "")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600, auth=auth) as client:
        for statement in statements:
            response = client.get("/query", params={"q": statement, "db": database, "epoch": "ns"})
            response.raise_for_status()
            received += len(response.content)
    return {"read_s": time.monotonic() - started, "read_mb": received / 1e6, "requests": len(statements)}


def child_day_read(port: int, database: str, registry_path: Path) -> dict[str, float]:
    """Time InfluxDB answering the daily rollup's raw read of each day of the month (the day and its
    small margin; the rare look-ups further back for silent registers are left out), in full, unparsed."""
    import httpx

    from park.month import Month
    from park.registry import load_registry
    from park.settings import InfluxSettings
    from pipeline import daily

    registry = load_registry(registry_path)
    month = Month.of(PERIOD, TZ)
    statements: list[str] = []

    class Recorder:  # collects the raw read of each day, without sending it
        def query(self, statement: str) -> pd.DataFrame:
            statements.append(statement)
            return pd.DataFrame(columns=["time"])

        def query_many(self, _statements: list[str]) -> list[pd.DataFrame]:
            return []

    days = daily.days_in(month)
    meters = registry.meters
    for day in days:
        for first in range(0, len(meters), daily.CHUNK_METERS):
            chunk = meters[first : first + daily.CHUNK_METERS]
            daily.read_span(Recorder(), daily.day_start(day, TZ), daily.day_end(day, TZ), month, chunk)  # type: ignore[arg-type]
    account = _pipeline(InfluxSettings())
    auth = (account.username or "", account.password.get_secret_value() if account.password else "")
    received = 0
    started = time.monotonic()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600, auth=auth) as client:
        for statement in statements:
            response = client.get("/query", params={"q": statement, "db": database, "epoch": "ns"})
            response.raise_for_status()
            received += len(response.content)
    return {"day_read_s": (time.monotonic() - started) / len(days), "day_read_mb": received / 1e6 / len(days)}


def child_rollup(port: int, database: str, registry_path: Path) -> dict[str, float]:
    """Roll up every day of the month as the daily DAG does; seconds per day and peak RSS."""
    from park.month import Month
    from park.settings import InfluxSettings, Settings
    from pipeline.daily import compute_day_rollup, days_in

    settings = Settings(
        registry=registry_path, influx=_pipeline(InfluxSettings(port=port, database=database, timeout_s=600))
    )
    days = days_in(Month.of(PERIOD, TZ))
    started = time.monotonic()
    registers = 0
    for day in days:
        registers += int(compute_day_rollup(settings, day.isoformat())["registers"])  # type: ignore[call-overload]
    return {
        "rollup_s": (time.monotonic() - started) / len(days),
        "rollup_registers": registers / len(days),
        "peak_rss_mb": peak_rss_mb(),
    }


def child_compute(port: int, database: str, registry_path: Path) -> dict[str, float]:
    """Run the DAG's activity step for the month; its time and the process's peak RSS."""
    from park.settings import InfluxSettings, Settings
    from pipeline.monthly import compute_activity

    settings = Settings(
        registry=registry_path, influx=_pipeline(InfluxSettings(port=port, database=database, timeout_s=600))
    )
    baseline = peak_rss_mb()
    started = time.monotonic()
    summary = compute_activity(settings, PERIOD)
    return {
        "compute_s": time.monotonic() - started,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_imports_mb": baseline,
        "registers": float(summary["registers"]),  # type: ignore[arg-type]
        "meters_with_readings": float(summary["meters_with_readings"]),  # type: ignore[arg-type]
        "register_days_from_rollups": float(summary["register_days_from_rollups"]),  # type: ignore[arg-type]
    }


def in_child(kind: str, port: int, database: str, registry_path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(port), database, str(registry_path)],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {kind} step failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, nargs="+", default=[2000, 20000], help="park sizes to measure")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, port, database, path = args.child
        work = {"read": child_read, "compute": child_compute, "day_read": child_day_read, "rollup": child_rollup}[kind]
        print(json.dumps(work(int(port), database, Path(path))))
        return

    from park.registry import parse_registry
    from parkcarbon.services import LocalServices, free_ports, load_influx_credentials

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the services are stopped below
    run_dir = Path(tempfile.mkdtemp(prefix="bench-monthly-"))
    services = LocalServices(run_dir)
    sizes = sorted(args.meters)
    ports = services.up(parse_registry(registry_data(METERS_PER_ENTERPRISE)), free_ports())
    os.environ["PARKCARBON_INFLUX__USERNAME"] = "pipeline"
    os.environ["PARKCARBON_INFLUX__PASSWORD"] = load_influx_credentials(run_dir)["pipeline"]
    rows = []
    try:
        for n in sizes:
            path = run_dir / f"registry-{n}.yaml"
            path.write_text(yaml.safe_dump(registry_data(n)))
            database = f"bench_{n}"
            services.create_database(database)  # by the admin, with the roles' grants
            readings, write_s = write_month(ports.influx_http, database, path)
            read = in_child("read", ports.influx_http, database, path)
            compute = in_child("compute", ports.influx_http, database, path)
            assert compute["meters_with_readings"] == n and compute["register_days_from_rollups"] == 0, compute
            day_read = in_child("day_read", ports.influx_http, database, path)
            rollup = in_child("rollup", ports.influx_http, database, path)
            rolled = in_child("compute", ports.influx_http, database, path)
            assert rolled["register_days_from_rollups"] == 31 * n, rolled
            rows.append((n, readings, write_s, read, compute))
            print(
                f"{n:>6,} meters, {n // METERS_PER_ENTERPRISE:>4} enterprises: {readings:>11,} readings written in "
                f"{write_s:6.1f} s; InfluxDB returns them in {read['read_s']:6.1f} s ({read['read_mb']:,.0f} MB, "
                f"{read['requests']:.0f} requests); the step takes {compute['compute_s']:6.1f} s "
                f"({compute['compute_s'] / read['read_s']:.2f}× the read), peak RSS {compute['peak_rss_mb']:,.0f} MB "
                f"({compute['rss_after_imports_mb']:,.0f} MB after imports)\n"
                f"        daily rollup {rollup['rollup_s']:6.2f} s per day against InfluxDB's read of the day's raw "
                f"data {day_read['day_read_s']:6.2f} s ({rollup['rollup_s'] / day_read['day_read_s']:.2f}×, "
                f"{day_read['day_read_mb']:,.1f} MB), peak RSS {rollup['peak_rss_mb']:,.0f} MB\n"
                f"        monthly step from rollups {rolled['compute_s']:6.1f} s against {compute['compute_s']:6.1f} s "
                f"from raw ({compute['compute_s'] / rolled['compute_s']:.1f}× faster), peak RSS "
                f"{rolled['peak_rss_mb']:,.0f} MB",
                flush=True,
            )
    finally:
        services.down()
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"month {PERIOD}, 15-minute registers, {datetime.now(ZoneInfo(TZ)):%Y-%m-%d}, {len(rows)} sizes")


if __name__ == "__main__":
    main()
