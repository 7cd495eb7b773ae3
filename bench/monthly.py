"""Monthly benchmark: the daily rollup's seconds per day next to InfluxDB's own read of that day's
raw data, and the seconds and peak memory of ``carbon_monthly``'s activity step (registers → per meter
consumption with validation and estimation → activity and data quality, written back) summing a
month of rolled-up days.

For each park size (default 2,000, 20,000 and 50,000 meters; 100 meters per enterprise, one main
meter and 99 workshop sub-meters each) the script writes 15-minute readings straight into a real
``influxd`` (as the collector stores them) and then, each in a fresh process:

- ``day_read``: InfluxDB returning each measured day's raw readings exactly as the daily rollup asks
  for them (same statements and headers; received in full, not parsed), per day: one request after
  another, and ``daily.READS_IN_FLIGHT`` at once as the rollup sends them;
- ``rollup``: :func:`pipeline.daily.compute_day_rollup` for each measured day, per day, with peak RSS;
- ``compute``: :func:`pipeline.monthly.compute_activity` for the month from its rolled-up days, with
  its peak RSS.

By default only ``MEASURED_DAYS`` get raw readings (and ``RAW_MARGIN`` around them): 50,000 meters'
whole month would be 150 M readings. The month's other days get ``meter_daily`` points copied from
the real rollup of a measured day and stamped at their own midnight (:func:`fill_rollups`), which is
what the rollup writes for days with the same readings; the monthly step's work depends on how many
register-days it sums, not on their values. ``--raw-month`` writes the whole month raw instead, rolls
up every day and also times the step from raw readings and InfluxDB's read of them (``read``).

``--celery 1 2`` then runs the month under a real scheduler (``parkcarbon airflow up --executor
celery --workers N``, for each N in turn; needs Debian's ``redis-server``) on the same rolled-up days:
the seconds from the run's first task to its reduce (``park_activity``), i.e. the groups' mapped
``activity`` tasks spread over N workers (:func:`celery_month`).

Run: ``.venv/bin/python bench/monthly.py [--meters 2000 20000 50000] [--raw-month] [--celery 1 2]``;
the figures printed are what docs/operations.md ("Scale") cites.
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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import yaml

from park.month import Month
from park.registry import DEFAULT_TIMEZONE

if TYPE_CHECKING:
    from park.settings import InfluxSettings

TZ = DEFAULT_TIMEZONE
PERIOD = "2026-03"
METERS_PER_ENTERPRISE = 100
WRITE_CHUNK_METERS = 500
# The days rolled up and timed unless --raw-month: two days in mid-month (no DST in Asia/Shanghai),
# with raw readings from RAW_MARGIN before to RAW_MARGIN after them (more than daily.NEAR).
MEASURED_DAYS = [date(2026, 3, 10), date(2026, 3, 11)]
RAW_MARGIN = timedelta(hours=2)


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


def write_days(port: int, database: str, registry_path: Path, first: date, last: date) -> tuple[int, float]:
    """Write 15-minute registers from ``RAW_MARGIN`` before the local midnight starting ``first`` to
    ``RAW_MARGIN`` after the one ending ``last``: each day with every reading the rollup reads for
    it (its readings and ``daily.NEAR`` around them); return (readings, seconds)."""
    from park.registry import load_registry
    from park.settings import InfluxSettings
    from park.store import InfluxStore
    from pipeline.daily import day_start
    from simulators.history import write_registers

    registry = load_registry(registry_path)
    index = pd.date_range(
        pd.Timestamp(day_start(first, TZ) - RAW_MARGIN),
        pd.Timestamp(day_start(last + timedelta(days=1), TZ) + RAW_MARGIN),
        freq="15min",
    ).tz_convert("UTC")
    rng = np.random.default_rng(7)
    started = time.monotonic()
    written = 0
    with InfluxStore(_pipeline(InfluxSettings(port=port, database=database, timeout_s=300))) as store:
        for first_meter in range(0, len(registry.meters), WRITE_CHUNK_METERS):
            chunk = registry.meters[first_meter : first_meter + WRITE_CHUNK_METERS]
            kwh = rng.gamma(2.0, 5.0, size=(len(index), len(chunk)))
            registers = (rng.uniform(0, 900_000, size=len(chunk)) + kwh.cumsum(axis=0)) % 1_000_000.0
            columns = pd.MultiIndex.from_tuples([(m.id, "active_energy_import") for m in chunk])
            written += write_registers(store, registry, pd.DataFrame(registers, index=index, columns=columns))
    return written, time.monotonic() - started


def fill_rollups(port: int, database: str, registry_path: Path, rolled: Sequence[date]) -> tuple[int, float]:
    """``METER_DAILY`` of every day of the month not in ``rolled``: the real rollup of the middle
    rolled-up day (read back from InfluxDB) stamped at each other day's midnight, i.e. what the rollup
    writes for a day whose readings are those of that day. The monthly step's work
    depends on the number of rolled-up register-days, not on their values. Returns (points, seconds)."""
    from park.month import Month
    from park.registry import load_registry
    from park.settings import InfluxSettings
    from park.store import InfluxStore
    from pipeline.daily import CHUNK_METERS, daily_points, day_end, day_start, days_in, read_rollups

    registry = load_registry(registry_path)
    measured = rolled[len(rolled) // 2]
    others = [d for d in days_in(Month.of(PERIOD, TZ)) if d not in rolled]
    started = time.monotonic()
    written = 0
    with InfluxStore(_pipeline(InfluxSettings(port=port, database=database, timeout_s=300))) as store:
        for first in range(0, len(registry.meters), CHUNK_METERS * 5):
            chunk = registry.meters[first : first + CHUNK_METERS * 5]
            stored = read_rollups(store, registry, day_start(measured, TZ), day_end(measured, TZ), chunk)
            assert sum(len(days) for days in stored.values()) == sum(len(m.registers) for m in chunk), "not rolled up"
            for day in others:
                copies = {key: {day: days[measured]} for key, days in stored.items()}
                written += store.write(daily_points(registry, copies, day))
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


def child_read(port: int, database: str, registry_path: Path, _days: Sequence[date]) -> dict[str, float]:
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


def child_day_read(port: int, database: str, registry_path: Path, days: Sequence[date]) -> dict[str, float]:
    """Time InfluxDB answering the daily rollup's raw read of each of ``days`` (the day and its small
    margin; the rare look-ups further back for silent registers are left out), in full, unparsed."""
    import httpx

    from park.month import Month
    from park.registry import load_registry
    from park.settings import InfluxSettings
    from pipeline import daily

    registry = load_registry(registry_path)
    month = Month.of(PERIOD, TZ)
    statements: list[str] = []

    class Recorder:  # collects the raw read of each day, without sending it
        def query_csv(self, statement: str, group_by: object = ()) -> pd.DataFrame:
            statements.append(statement)
            return pd.DataFrame(columns=["time"])

        def query_many(self, _statements: list[str]) -> list[pd.DataFrame]:
            return []

    meters = registry.meters
    for day in days:
        for first in range(0, len(meters), daily.CHUNK_METERS):
            chunk = meters[first : first + daily.CHUNK_METERS]
            daily.read_span(Recorder(), daily.day_start(day, TZ), daily.day_end(day, TZ), month, chunk)  # type: ignore[arg-type]
    account = _pipeline(InfluxSettings())
    auth = (account.username or "", account.password.get_secret_value() if account.password else "")
    figures = {}
    csv = {"Accept": "application/csv", "Accept-Encoding": "identity"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600, auth=auth) as client:

        def get(statement: str, headers: dict[str, str]) -> int:
            response = client.get("/query", params={"q": statement, "db": database, "epoch": "ns"}, headers=headers)
            response.raise_for_status()
            return len(response.content)

        # As InfluxStore.query_csv asks (the rollup's read), one request after another and then
        # daily.READS_IN_FLIGHT at once as the rollup sends them; then as InfluxStore.query would (JSON,
        # gzip: what the rollup asked before 2026-11-29, for comparison).
        for name, headers, in_flight in [
            ("day_read", csv, 1),
            ("day_read_parallel", csv, daily.READS_IN_FLIGHT),
            ("day_read_json", {"Accept": "application/json", "Accept-Encoding": "gzip"}, 1),
        ]:
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=in_flight) as pool:
                received = sum(pool.map(get, statements, [headers] * len(statements)))
            figures[f"{name}_s"] = (time.monotonic() - started) / len(days)
            figures[f"{name}_mb"] = received / 1e6 / len(days)
    return figures | {"in_flight": daily.READS_IN_FLIGHT}


def child_rollup(port: int, database: str, registry_path: Path, days: Sequence[date]) -> dict[str, float]:
    """Roll up each of ``days`` as the daily DAG does; seconds per day and peak RSS."""
    from park.settings import InfluxSettings, Settings
    from pipeline.daily import compute_day_rollup

    settings = Settings(
        registry=registry_path, influx=_pipeline(InfluxSettings(port=port, database=database, timeout_s=600))
    )
    started = time.monotonic()
    registers = 0
    for day in days:
        registers += int(compute_day_rollup(settings, day.isoformat())["registers"])  # type: ignore[call-overload]
    return {
        "rollup_s": (time.monotonic() - started) / len(days),
        "rollup_registers": registers / len(days),
        "peak_rss_mb": peak_rss_mb(),
    }


def child_compute(port: int, database: str, registry_path: Path, _days: Sequence[date]) -> dict[str, float]:
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


def celery_month(port: int, database: str, n_meters: int, workers: int, work_dir: Path) -> dict[str, float]:
    """Run ``carbon_monthly``'s month ``PERIOD`` under a real scheduler with ``workers`` Celery workers
    (``parkcarbon airflow up --executor celery``) on the park's rolled-up days: the seconds from the
    run's first task starting to its ``park_activity`` (the reduce after every group) finishing, and
    the sum of the mapped ``activity`` tasks' own durations. Scores and reports are not waited for:
    the bench park has no enterprises file of its own.

    The park starts metering in ``PERIOD``, so the scheduler's first run is that month's."""
    import sqlite3

    document = registry_data(n_meters)
    document["park"]["metering_start"] = f"{PERIOD}-01"  # type: ignore[index]
    run_dir = work_dir / f"celery-{n_meters}-{workers}"
    run_dir.mkdir(mode=0o700)
    registry_path = run_dir / "registry.yaml"
    registry_path.write_text(yaml.safe_dump(document))
    home = run_dir / "airflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARKCARBON_", "AIRFLOW"))}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "PARKCARBON_RUN_DIR": str(run_dir),
        "PARKCARBON_REGISTRY": str(registry_path),
        "PARKCARBON_INFLUX__PORT": str(port),
        "PARKCARBON_INFLUX__DATABASE": database,
        "PARKCARBON_INFLUX__USERNAME": os.environ["PARKCARBON_INFLUX__USERNAME"],
        "PARKCARBON_INFLUX__PASSWORD": os.environ["PARKCARBON_INFLUX__PASSWORD"],
        "AIRFLOW_HOME": str(home),
    }
    cli = [str(Path(sys.executable).parent / "parkcarbon"), "airflow"]
    up = [*cli, "up", "--free-port", "--dag", "carbon_monthly", "--executor", "celery", "--workers", str(workers)]
    subprocess.run(up, env=env, check=True, capture_output=True, text=True, timeout=600)
    # The run whose data interval starts with the month (its id names the interval's end).
    interval_start = f"{Month.of(PERIOD, TZ).start.astimezone(UTC):%Y-%m-%d %H:%M:%S}%"
    try:
        deadline = time.monotonic() + 3600
        while True:
            with sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True, timeout=30) as db:
                rows = db.execute(
                    "SELECT t.task_id, t.state, t.start_date, t.end_date FROM task_instance AS t"
                    " JOIN dag_run AS r ON r.dag_id = t.dag_id AND r.run_id = t.run_id"
                    " WHERE t.dag_id = 'carbon_monthly' AND r.data_interval_start LIKE ?"
                    " AND t.task_id IN ('groups', 'activity', 'park_activity')",
                    (interval_start,),
                ).fetchall()
            failed = [r for r in rows if r[1] in ("failed", "upstream_failed")]
            if failed:
                raise RuntimeError(f"{PERIOD}: {failed}; see {home / 'logs'}")
            if any(r[0] == "park_activity" and r[1] == "success" for r in rows):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{PERIOD} did not finish its activity within an hour: {rows}")
            time.sleep(2.0)
    finally:
        subprocess.run([*cli, "down"], env=env, check=False, capture_output=True, timeout=300)

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text)

    started = [at(r[2]) for r in rows if r[2]]
    ended = at(next(r[3] for r in rows if r[0] == "park_activity"))
    activity = [(at(r[3]) - at(r[2])).total_seconds() for r in rows if r[0] == "activity" and r[2] and r[3]]
    return {"wall_s": (ended - min(started)).total_seconds(), "activity_s": sum(activity), "groups": len(activity)}


def in_child(kind: str, port: int, database: str, registry_path: Path, days: Sequence[date]) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            kind,
            str(port),
            database,
            str(registry_path),
            ",".join(d.isoformat() for d in days),
        ],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the {kind} step failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, nargs="+", default=[2000, 20000, 50000], help="park sizes to measure")
    parser.add_argument(
        "--raw-month",
        action="store_true",
        help="write the whole month raw, time the activity step from raw readings too and roll up every day",
    )
    parser.add_argument(
        "--celery",
        type=int,
        nargs="*",
        metavar="WORKERS",
        help="also run the month under a real scheduler with this many Celery workers, each count in turn"
        " (e.g. --celery 1 2; needs redis-server)",
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, port, database, path, days = args.child
        work = {"read": child_read, "compute": child_compute, "day_read": child_day_read, "rollup": child_rollup}[kind]
        print(json.dumps(work(int(port), database, Path(path), [date.fromisoformat(d) for d in days.split(",")])))
        return

    from park.month import Month
    from park.registry import parse_registry
    from parkcarbon.services import LocalServices, free_ports, load_influx_credentials
    from pipeline.daily import days_in

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the services are stopped below
    run_dir = Path(tempfile.mkdtemp(prefix="bench-monthly-"))
    services = LocalServices(run_dir)
    sizes = sorted(args.meters)
    month_days = days_in(Month.of(PERIOD, TZ))
    days = month_days if args.raw_month else MEASURED_DAYS
    ports = services.up(parse_registry(registry_data(METERS_PER_ENTERPRISE)), free_ports())
    os.environ["PARKCARBON_INFLUX__USERNAME"] = "pipeline"
    os.environ["PARKCARBON_INFLUX__PASSWORD"] = load_influx_credentials(run_dir)["pipeline"]
    print(
        f"month {PERIOD}, 15-minute registers, {datetime.now(ZoneInfo(TZ)):%Y-%m-%d %H:%M}, raw readings for "
        + ("the whole month" if args.raw_month else f"{days[0]} to {days[-1]} ({RAW_MARGIN} either side)"),
        flush=True,
    )
    try:
        for n in sizes:
            path = run_dir / f"registry-{n}.yaml"
            path.write_text(yaml.safe_dump(registry_data(n)))
            database = f"bench_{n}"
            services.create_database(database)  # by the admin, with the roles' grants
            readings, write_s = write_days(ports.influx_http, database, path, days[0], days[-1])
            print(
                f"{n:>6,} meters, {n // METERS_PER_ENTERPRISE:>4} enterprises: {readings:>11,} readings written in "
                f"{write_s:6.1f} s",
                flush=True,
            )
            if args.raw_month:
                read = in_child("read", ports.influx_http, database, path, days)
                compute = in_child("compute", ports.influx_http, database, path, days)
                assert compute["meters_with_readings"] == n and compute["register_days_from_rollups"] == 0, compute
                print(
                    f"        InfluxDB returns the month in {read['read_s']:6.1f} s ({read['read_mb']:,.0f} MB, "
                    f"{read['requests']:.0f} requests); the step from raw takes {compute['compute_s']:6.1f} s "
                    f"({compute['compute_s'] / read['read_s']:.2f}× the read), peak RSS "
                    f"{compute['peak_rss_mb']:,.0f} MB ({compute['rss_after_imports_mb']:,.0f} MB after imports)",
                    flush=True,
                )
            day_read = in_child("day_read", ports.influx_http, database, path, days)
            rollup = in_child("rollup", ports.influx_http, database, path, days)
            print(
                f"        daily rollup {rollup['rollup_s']:6.2f} s per day against InfluxDB's read of the day's raw "
                f"data {day_read['day_read_s']:6.2f} s ({rollup['rollup_s'] / day_read['day_read_s']:.2f}×, "
                f"{day_read['day_read_mb']:,.1f} MB; {len(days)} days), peak RSS {rollup['peak_rss_mb']:,.0f} MB; "
                f"the same requests {day_read['in_flight']:.0f} at once take {day_read['day_read_parallel_s']:.2f} s "
                f"({rollup['rollup_s'] / day_read['day_read_parallel_s']:.2f}×); as JSON with gzip InfluxDB's read "
                f"takes {day_read['day_read_json_s']:.2f} s ({rollup['rollup_s'] / day_read['day_read_json_s']:.2f}×)",
                flush=True,
            )
            if not args.raw_month:
                copied, copy_s = fill_rollups(ports.influx_http, database, path, days)
                print(
                    f"        {copied:,} meter_daily points of the other {len(month_days) - len(days)} days copied "
                    f"from the rollup of {days[len(days) // 2]} in {copy_s:.1f} s",
                    flush=True,
                )
            rolled = in_child("compute", ports.influx_http, database, path, days)
            assert rolled["register_days_from_rollups"] == len(month_days) * n, rolled
            print(
                f"        monthly step from rollups {rolled['compute_s']:6.1f} s, peak RSS "
                f"{rolled['peak_rss_mb']:,.0f} MB ({rolled['rss_after_imports_mb']:,.0f} MB after imports)",
                flush=True,
            )
            for workers in args.celery or []:
                run = celery_month(ports.influx_http, database, n, workers, run_dir)
                print(
                    f"        under the scheduler with {workers} Celery worker(s): the month's activity in "
                    f"{run['wall_s']:6.1f} s from its first task to the reduce ({run['groups']:.0f} groups, "
                    f"{run['activity_s']:.1f} s of activity tasks)",
                    flush=True,
                )
    finally:
        services.down()
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
