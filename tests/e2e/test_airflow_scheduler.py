"""carbon_monthly under a real Airflow scheduler, as a park runs it outside Docker: ``parkcarbon airflow up``
on the session's services (free ports, generated credentials) with a fresh metadata database.

The demo park with its metering start on 1 September 2026 and hourly registers for September and
October: the scheduler catches up both months by itself, and their credits and activity equal those
of ``dag.test()`` (``parkcarbon monthly``) on the same registers. The re-run command of
docs/operations.md §6, run exactly as written there, clears October only, and the re-run writes the
same points. A trigger with a logical date inside September computes September. ``down`` stops every
process it started, with their children; ``down`` again is no error. All of it twice: with the
LocalExecutor, and with ``--executor celery --workers 2`` (two Celery workers on Redis).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest
import yaml

from park.measurements import ACTIVITY_MONTHLY, CREDITS, EMISSIONS_MONTHLY
from park.month import Month, read_month
from park.registry import DEFAULT_TIMEZONE, load_registry
from park.settings import DEMO_REGISTRY, InfluxSettings, LedgerSettings, MqttSettings, Settings
from park.store import InfluxStore
from parkcarbon.airflow_local import LocalAirflow
from parkcarbon.cli import main
from parkcarbon.runtime import settings_for_run_dir
from parkcarbon.services import LocalServices, Ports
from simulators.history import write_registers
from simulators.park import simulate

pytestmark = [pytest.mark.services, pytest.mark.airflow]

TZ = ZoneInfo(DEFAULT_TIMEZONE)
MONTHS = ("2026-09", "2026-10")
RESULTS = (ACTIVITY_MONTHLY, EMISSIONS_MONTHLY, CREDITS)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


@dataclass(frozen=True)
class Scheduled:
    settings: Settings  # the scheduler's park: its run directory, database and registry
    reference: Settings  # the same registers in a database of their own, for dag.test()
    airflow: LocalAirflow
    home: Path
    up_output: str
    executor: str

    def env(self) -> dict[str, str]:
        """The environment for the `airflow` command: AIRFLOW_HOME as `parkcarbon airflow up` printed it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PARKCARBON_", "AIRFLOW"))}
        env["AIRFLOW_HOME"] = str(self.home)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    def runs(self) -> list[dict[str, object]]:
        return _rows(self.home, "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = 'carbon_monthly'")

    def tries(self, run_id: str) -> dict[str, int]:
        rows = _rows(
            self.home,
            "SELECT task_id, try_number FROM task_instance WHERE dag_id = 'carbon_monthly' AND run_id = ?",
            (run_id,),
        )
        return {str(r["task_id"]): int(str(r["try_number"])) for r in rows}

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
    }
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
        yield Scheduled(settings, reference, local, home, log.read_text(), executor)
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
        assert len(ids) == 6 and all(row["id"] for row in ids), ids
    for period in MONTHS:
        ours, theirs = _results(scheduled.settings, period), _results(scheduled.reference, period)
        assert len(ours["credits"]) == 12, period
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
    assert scheduled.tries(october) == {"activity": 1, "scores": 1, "report": 1}
    done = subprocess.run(command, env=scheduled.env(), capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    scheduled.wait(f"run_id = '{october}' AND state = 'success'")
    deadline = time.monotonic() + 300
    while scheduled.tries(october) != {"activity": 2, "scores": 2, "report": 2} and time.monotonic() < deadline:
        time.sleep(1.0)
        scheduled.wait(f"run_id = '{october}' AND state = 'success'")
    assert scheduled.tries(october) == {"activity": 2, "scores": 2, "report": 2}
    assert scheduled.tries(september) == {"activity": 1, "scores": 1, "report": 1}
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
        expected += ["redis", "worker-1", "worker-2"]
    assert sorted(scheduled.airflow.down()) == sorted(expected)
    for pgid in groups:  # no process of the groups is left (zombies are reaped by init within moments)
        deadline = time.monotonic() + 5
        while _group_left(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _group_left(pgid), f"process group {pgid} still has processes"
    assert scheduled.airflow.status() == {}
    assert scheduled.airflow.down() == []
