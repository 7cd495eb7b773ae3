"""carbon_monthly under a real Airflow scheduler, as a park runs it outside Docker: ``parkcarbon airflow up``
on the session's services (free ports, generated credentials) with a fresh metadata database.

The demo park with its metering start on 1 September 2026 and hourly registers for September and
October: the scheduler catches up both months by itself, and their credits and activity equal those
of ``dag.test()`` (``parkcarbon monthly``) on the same registers. The re-run command of
docs/operations.md §6, run exactly as written there, clears October only, and the re-run writes the
same points. A trigger with a logical date inside September computes September. ``down`` stops every
process it started, with their children; ``down`` again is no error. All of it twice: with the
LocalExecutor, and with ``--executor celery --workers 2`` (two Celery workers on Redis).

The monthly activity is mapped over groups of enterprises (here 20 meters a group: 3 groups of the
demo park's 12 enterprises). Under Celery, the Celery worker running one group (paused halfway, a
test-only setting, so that the kill is deterministic) is killed with SIGKILL, with its children: the
scheduler notices the missing heartbeats, the group is retried on the other worker, and the month's
points equal those of the untouched run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest
import yaml

from park.measurements import ACTIVITY_MONTHLY, CREDITS, DATA_QUALITY, EMISSIONS_MONTHLY, MONTH_COVERAGE
from park.month import Month, read_month
from park.registry import DEFAULT_TIMEZONE, load_registry
from park.settings import DEMO_REGISTRY, InfluxSettings, LedgerSettings, MqttSettings, Settings
from park.store import InfluxStore
from parkcarbon.airflow_local import LocalAirflow
from parkcarbon.cli import main
from parkcarbon.runtime import settings_for_run_dir
from parkcarbon.services import LocalServices, Ports
from pipeline.groups import enterprise_groups
from simulators.history import write_registers
from simulators.park import simulate

pytestmark = [pytest.mark.services, pytest.mark.airflow]

TZ = ZoneInfo(DEFAULT_TIMEZONE)
MONTHS = ("2026-09", "2026-10")
RESULTS = (ACTIVITY_MONTHLY, DATA_QUALITY, MONTH_COVERAGE, EMISSIONS_MONTHLY, CREDITS)
GROUP_METERS = 20  # the demo park's 59 meters in 3 groups: E01-E04, E05-E08, E09-E12
PAUSED = "E06"  # under Celery, its group pauses halfway for PAUSE_S while a flag file exists: time to kill its worker
PAUSE_S = 10.0
# The scheduler fails a task whose worker stopped heartbeating after this long (default 300 s) and
# retries it after RETRY_DELAY_S (default 300 s); shortened so the killed group is retried within the test.
HEARTBEAT_TIMEOUT_S = 20
RETRY_DELAY_S = 1
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


@dataclass(frozen=True)
class Scheduled:
    settings: Settings  # the scheduler's park: its run directory, database and registry
    reference: Settings  # the same registers in a database of their own, for dag.test()
    airflow: LocalAirflow
    home: Path
    up_output: str
    executor: str
    groups: list[list[str]]  # the activity's groups of enterprises, in map index order
    pause_flag: Path  # while this file exists, the group holding PAUSED pauses (Celery only)
    killed: list[str] = field(default_factory=list)  # workers a test killed (`down` no longer finds them)

    def env(self) -> dict[str, str]:
        """The environment for the `airflow` command: AIRFLOW_HOME as `parkcarbon airflow up` printed it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PARKCARBON_", "AIRFLOW"))}
        env["AIRFLOW_HOME"] = str(self.home)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def runs(self) -> list[dict[str, object]]:
        return _rows(self.home, "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = 'carbon_monthly'")

    def tries(self, run_id: str) -> dict[str, int]:
        """Each task's try number; a mapped task's instances as ``activity[0]``, ``activity[1]`` …"""
        rows = _rows(
            self.home,
            "SELECT task_id, map_index, try_number FROM task_instance WHERE dag_id = 'carbon_monthly' AND run_id = ?",
            (run_id,),
        )
        return {_ti_name(r): int(str(r["try_number"])) for r in rows}

    def every_try(self, number: int) -> dict[str, int]:
        """What :meth:`tries` gives when every task instance of a run is on try ``number``."""
        names = ["groups", *(f"activity[{i}]" for i in range(len(self.groups))), "park_activity", "scores", "report"]
        return {name: number for name in names}

    def wait(self, done: str, timeout_s: float = 300.0) -> list[dict[str, object]]:
        """Wait until ``done`` (an SQL condition on dag_run) holds for a run; fail at once on a failed run."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            runs = self.runs()
            failed = [r for r in runs if r["state"] == "failed"]
            assert not failed, f"{failed}; see {self.home / 'processes' / 'scheduler.log'} and {self.home / 'logs'}"
            found = _rows(self.home, f"SELECT run_id FROM dag_run WHERE dag_id = 'carbon_monthly' AND {done}")
            if found:
                return runs
            time.sleep(1.0)
        pytest.fail(f"no run of carbon_monthly with {done} within {timeout_s:.0f} s: {self.runs()}")


def _ti_name(row: dict[str, object]) -> str:
    index = int(str(row["map_index"]))
    return f"{row['task_id']}[{index}]" if index >= 0 else str(row["task_id"])


def _rows(home: Path, sql: str, args: tuple[object, ...] = ()) -> list[dict[str, object]]:
    with sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True, timeout=30) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(sql, args)]


def _results(settings: Settings, period: str) -> dict[str, pd.DataFrame]:
    month = Month.of(period, DEFAULT_TIMEZONE)
    frames = {}
    with InfluxStore(settings.influx) as store:
        for measurement in RESULTS:
            frame = read_month(store, measurement, month)
            frames[measurement.name] = frame.sort_values(sorted(frame.columns)).reset_index(drop=True)
    return frames


@pytest.fixture(scope="module", params=["local", "celery"])
def scheduled(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    airflow_home: Path,
    local_services: LocalServices,
    ports: Ports,
    run_dir: Path,
) -> Iterator[Scheduled]:
    import airflow  # noqa: F401  (configured now, on the session's home: dag.test() must not see the scheduler's)

    executor: str = request.param
    tmp = tmp_path_factory.mktemp(f"scheduled-{executor}")
    document = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    document["park"]["metering_start"] = "2026-09-01"
    registry_path = tmp / "registry.yaml"
    registry_path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    registry = load_registry(registry_path)
    registers = simulate(
        registry, datetime(2026, 9, 1, tzinfo=TZ), datetime(2026, 11, 1, 1, tzinfo=TZ), pd.Timedelta("1h"), 7
    ).registers

    def park(name: str) -> Settings:
        database = f"sched_{executor}_{name}"
        local_services.create_database(database)
        own = Settings(
            run_dir=run_dir,
            registry=registry_path,
            mqtt=MqttSettings(port=ports.mqtt),
            influx=InfluxSettings(port=ports.influx_http, rpc_port=ports.influx_rpc, database=database),
            ledger=LedgerSettings(url=None),
        )
        own = settings_for_run_dir(own, role="pipeline").model_copy(update={"run_dir": tmp / name})
        own.run_dir.mkdir(mode=0o700)
        with InfluxStore(own.influx) as store:
            write_registers(store, registry, registers)
        return own

    settings, reference = park("scheduler"), park("reference")
    home = settings.run_dir / "airflow"
    assert settings.influx.password is not None
    env = {
        "PARKCARBON_RUN_DIR": str(settings.run_dir),
        "PARKCARBON_REGISTRY": str(registry_path),
        "PARKCARBON_MQTT__PORT": str(ports.mqtt),
        "PARKCARBON_INFLUX__PORT": str(ports.influx_http),
        "PARKCARBON_INFLUX__RPC_PORT": str(ports.influx_rpc),
        "PARKCARBON_INFLUX__DATABASE": settings.influx.database,
        "PARKCARBON_INFLUX__USERNAME": "pipeline",
        "PARKCARBON_INFLUX__PASSWORD": settings.influx.password.get_secret_value(),
        "AIRFLOW_HOME": str(home),
        "PARKCARBON_MONTHLY__GROUP_METERS": str(GROUP_METERS),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
        "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": str(RETRY_DELAY_S),
    }
    if executor == "celery":
        env |= {
            "PARKCARBON_MONTHLY__TEST_PAUSE_S": str(PAUSE_S),
            "PARKCARBON_MONTHLY__TEST_PAUSE_ENTERPRISE": PAUSED,
            "PARKCARBON_MONTHLY__TEST_PAUSE_FLAG": str(tmp / "pause"),  # absent: no pause
        }
    groups = enterprise_groups(registry, GROUP_METERS)
    local = LocalAirflow(settings.run_dir)
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("PARKCARBON_")]:
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        log = tmp / "up.log"
        with log.open("w") as out:
            saved, sys.stdout = sys.stdout, out
            try:
                argv = ["airflow", "up", "--free-port", "--dag", "carbon_monthly"]
                code = main([*argv, *(["--executor", "celery", "--workers", "2"] if executor == "celery" else [])])
            finally:
                sys.stdout = saved
    try:
        assert code == 0, log.read_text()
        yield Scheduled(settings, reference, local, home, log.read_text(), executor, groups, tmp / "pause")
    finally:
        local.down()
        for name in ("scheduler", "reference"):
            local_services.drop_database(f"sched_{executor}_{name}")


def _environ(pid: int) -> dict[str, str]:
    pairs = [item.split("=", 1) for item in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in item]
    return {key: value for key, value in pairs}


def test_up_starts_three_processes_with_the_runs_settings(scheduled: Scheduled, ports: Ports):
    status = scheduled.airflow.status()
    celery = ["redis", "worker-1", "worker-2"] if scheduled.executor == "celery" else []
    assert status == {name: True for name in ["scheduler", "dag-processor", "api-server", *celery]}
    api = scheduled.airflow.api_url()
    assert api is not None and api in scheduled.up_output
    assert httpx.get(f"{api}/api/v2/monitor/health", timeout=5).status_code == 200
    processes = {p.name: p.pid for p in scheduled.airflow.processes()}
    scheduler = _environ(processes["scheduler"])
    assert scheduler["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"{api}/execution/"
    assert (
        scheduler["AIRFLOW__CORE__EXECUTOR"]
        == {"local": "LocalExecutor", "celery": "CeleryExecutor"}[scheduled.executor]
    )
    # The ports `services up --free-ports` chose reach every process.
    assert scheduler["PARKCARBON_INFLUX__PORT"] == str(ports.influx_http)
    assert scheduler["PARKCARBON_INFLUX__DATABASE"] == scheduled.settings.influx.database
    # Only the processes that run tasks get the pipeline's account: the scheduler with the LocalExecutor,
    # else the Celery workers. (Read from the commands: the DAG processor's, API server's and workers'
    # process titles overwrite what /proc/PID/environ shows.)
    broker = "redis://:x@127.0.0.1:1" if scheduled.executor == "celery" else None
    commands = scheduled.airflow.commands(scheduled.settings, scheduled.home, api, scheduled.executor, 2, broker)
    runners = ["worker-1", "worker-2"] if scheduled.executor == "celery" else ["scheduler"]
    for name in runners:
        assert commands[name][1]["PARKCARBON_INFLUX__USERNAME"] == "pipeline", name
        assert commands[name][1]["PARKCARBON_INFLUX__PASSWORD"], name
    if scheduled.executor == "local":
        assert scheduler["PARKCARBON_INFLUX__USERNAME"] == "pipeline"
    else:
        assert "PARKCARBON_INFLUX__PASSWORD" not in scheduler
    for name in sorted(set(commands) - set(runners)):
        env = commands[name][1]
        assert "PARKCARBON_INFLUX__PASSWORD" not in env and "PARKCARBON_INFLUX__USERNAME" not in env, name
        assert env["PARKCARBON_INFLUX__PORT"] == str(ports.influx_http), name
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == scheduler["AIRFLOW__API_AUTH__JWT_SECRET"], name
    paused = {str(r["dag_id"]): r["is_paused"] for r in _rows(scheduled.home, "SELECT dag_id, is_paused FROM dag")}
    assert paused == {"carbon_monthly": 0, "carbon_annual": 1, "meter_quality_daily": 1}


def test_catch_up_equals_dag_test(scheduled: Scheduled, clean_environ):
    from parkcarbon.airflow_env import run_month
    from parkcarbon.runtime import export_settings

    runs = scheduled.wait("run_type = 'scheduled' AND state = 'success' AND run_id LIKE 'scheduled__2026-10-31%'")
    scheduled_runs = sorted(str(r["run_id"]) for r in runs if r["run_type"] == "scheduled")
    # The two ended months (November has not ended on this machine's clock: 2026-11-29).
    assert scheduled_runs == ["scheduled__2026-09-30T16:00:00+00:00", "scheduled__2026-10-31T16:00:00+00:00"]
    export_settings(scheduled.reference)
    for period in MONTHS:
        run_month(period)
    if scheduled.executor == "celery":  # each task went through Celery (its task id is recorded)
        ids = _rows(
            scheduled.home, "SELECT external_executor_id AS id FROM task_instance WHERE dag_id = 'carbon_monthly'"
        )
        assert len(ids) == 2 * (4 + len(scheduled.groups)) and all(row["id"] for row in ids), ids
    for run_id in scheduled_runs:  # the activity ran as one mapped task per group, each once
        assert scheduled.tries(run_id) == scheduled.every_try(1), run_id
    assert len(scheduled.groups) == 3
    for period in MONTHS:
        ours, theirs = _results(scheduled.settings, period), _results(scheduled.reference, period)
        assert len(ours["credits"]) == 12 and len(ours["month_coverage"]) == 12, period
        for name, frame in ours.items():
            pd.testing.assert_frame_equal(frame, theirs[name], obj=f"{name} {period}")


def _docs_rerun_command() -> list[str]:
    section = DOCS.read_text(encoding="utf-8").split("## 6.", 1)[1].split("\n## 7.", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("airflow tasks clear ")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0], comments=True)


def test_the_documented_rerun_clears_exactly_that_month(scheduled: Scheduled):
    command = _docs_rerun_command()
    assert re.search(r"-s 2026-10-01\S* -e 2026-10-31\S*", " ".join(command)), command
    scheduled.wait("run_id = 'scheduled__2026-10-31T16:00:00+00:00' AND state = 'success'")
    september, october = "scheduled__2026-09-30T16:00:00+00:00", "scheduled__2026-10-31T16:00:00+00:00"
    before = _results(scheduled.settings, "2026-10")
    assert scheduled.tries(october) == scheduled.every_try(1)
    done = subprocess.run(command, env=scheduled.env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    scheduled.wait(f"run_id = '{october}' AND state = 'success'")
    deadline = time.monotonic() + 300
    while scheduled.tries(october) != scheduled.every_try(2) and time.monotonic() < deadline:
        time.sleep(1.0)
        scheduled.wait(f"run_id = '{october}' AND state = 'success'")
    assert scheduled.tries(october) == scheduled.every_try(2)
    assert scheduled.tries(september) == scheduled.every_try(1)
    after = _results(scheduled.settings, "2026-10")
    for name, frame in before.items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)


def test_a_trigger_inside_a_month_computes_that_month(scheduled: Scheduled):
    command = ["airflow", "dags", "trigger", "carbon_monthly", "--logical-date", "2026-09-15T00:00:00+08:00"]
    command += ["--run-id", "manual_2026-09-15"]
    done = subprocess.run(command, env=scheduled.env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    scheduled.wait("run_id = 'manual_2026-09-15' AND state = 'success'")
    rows = _rows(
        scheduled.home,
        "SELECT value FROM xcom WHERE dag_id = 'carbon_monthly' AND run_id = ? AND task_id = 'report'",
        ("manual_2026-09-15",),
    )
    assert len(rows) == 1
    value = rows[0]["value"]
    report = json.loads(value if isinstance(value, (str, bytes)) else str(value))
    assert report == str(scheduled.settings.run_dir / "reports" / "2026-09"), report


def _parent(pid: int) -> int:
    """The parent of ``pid`` (/proc/PID/stat's fourth field; the name in parentheses may hold spaces)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _ancestors(pid: int) -> list[int]:
    chain = [pid]
    while chain[-1] > 1:
        chain.append(_parent(chain[-1]))
    return chain


def _living(pgid: int) -> list[int]:
    """The processes of group ``pgid`` that are not zombies (a killed child stays one until reaped)."""
    living = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            living.append(int(stat.parent.name))
    return living


def test_a_worker_killed_mid_group_is_retried_and_changes_nothing(scheduled: Scheduled):
    if scheduled.executor != "celery":
        pytest.skip("a Celery worker is what gets killed")
    scheduled.wait("run_id = 'scheduled__2026-10-31T16:00:00+00:00' AND state = 'success'")
    before = _results(scheduled.settings, "2026-10")
    paused = next(i for i, group in enumerate(scheduled.groups) if PAUSED in group)
    run_id = "manual_kill_2026-10-15"
    flag = scheduled.pause_flag
    flag.touch()  # only this run's first try of the paused group pauses
    command = ["airflow", "dags", "trigger", "carbon_monthly", "--logical-date", "2026-10-15T00:00:00+08:00"]
    done = subprocess.run(
        [*command, "--run-id", run_id], env=scheduled.env(), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr

    # The paused group's task instance, running, with its process id: which worker runs it?
    deadline, running = time.monotonic() + 180, list[dict[str, object]]()
    while not running and time.monotonic() < deadline:
        running = _rows(
            scheduled.home,
            "SELECT pid FROM task_instance WHERE dag_id = 'carbon_monthly' AND run_id = ? AND task_id = 'activity' "
            "AND map_index = ? AND state = 'running' AND pid IS NOT NULL",
            (run_id, paused),
        )
        time.sleep(0.3)
    assert running, f"activity[{paused}] never ran: {scheduled.tries(run_id)}"
    workers = {p.pid: p.name for p in scheduled.airflow.processes() if p.name.startswith("worker-")}
    chain = _ancestors(int(str(running[0]["pid"])))
    worker = next((pid for pid in chain if pid in workers), None)
    assert worker is not None, f"the task's process {chain[0]} is not under a worker {workers}: {chain}"
    # The worker dies as a machine would lose it: SIGKILL to its whole process group, no clean-up.
    os.killpg(worker, signal.SIGKILL)
    flag.unlink()
    scheduled.killed.append(workers[worker])
    killed_at = time.monotonic()

    scheduled.wait(f"run_id = '{run_id}' AND state = 'success'", timeout_s=300)
    recovered_s = time.monotonic() - killed_at
    assert _living(worker) == [], "a process of the killed worker's group lives on"
    tries = scheduled.tries(run_id)
    assert tries == scheduled.every_try(1) | {f"activity[{paused}]": 2}, tries
    # The retry ran on the surviving worker; the month's points are those of the untouched run.
    after = _results(scheduled.settings, "2026-10")
    for name, frame in before.items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)
    print(f"killed {workers[worker]} (pid {worker}); the run succeeded {recovered_s:.0f} s later")


def _group_left(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_down_stops_every_process_and_is_idempotent(scheduled: Scheduled):
    groups = [p.pid for p in scheduled.airflow.processes()]
    expected = ["api-server", "dag-processor", "scheduler"]
    if scheduled.executor == "celery":
        expected += sorted({"redis", "worker-1", "worker-2"} - set(scheduled.killed))
    assert sorted(scheduled.airflow.down()) == sorted(expected)
    for pgid in groups:  # no process of the groups is left (zombies are reaped by init within moments)
        deadline = time.monotonic() + 5
        while _group_left(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_left(pgid), f"process group {pgid} still has processes"
    assert scheduled.airflow.status() == {}
    assert scheduled.airflow.down() == []
