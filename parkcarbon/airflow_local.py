"""A local Airflow under the run directory, as a park runs it outside Docker: ``parkcarbon airflow up|down|status``.

Three processes, each in a process group of its own: the scheduler (LocalExecutor: the DAGs' tasks
run in its children), the DAG processor and the API server (which also serves the execution API the
tasks report to). They share Airflow's home (``AIRFLOW_HOME``, default ``RUN/airflow``, the same
metadata database ``parkcarbon monthly`` uses) and get::

    PARKCARBON_*                              the run's settings: the ports `services up` chose,
                                              the registry, the database (parkcarbon.runtime)
    PARKCARBON_INFLUX__USERNAME/PASSWORD      the pipeline role's account, to the scheduler only
    AIRFLOW__CORE__EXECUTION_API_SERVER_URL   http://127.0.0.1:PORT/execution/
    AIRFLOW__API_AUTH__JWT_SECRET             generated once into RUN/airflow-secrets.json (0600)

With ``executor="celery"`` the tasks run in Celery workers (``airflow celery worker``, one process
each, which get the pipeline's credentials instead of the scheduler) on a Redis broker that ``up``
starts under ``RUN/redis/`` (Debian's ``redis-server``, 127.0.0.1 on a free port, a generated
password, no persistence: a queued task lost with it is re-queued by the scheduler).

``RUN/airflow.json`` records what ``up`` started (PIDs, the process start times, command lines,
the API port); ``down`` stops exactly those process groups: SIGTERM, then SIGKILL after a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from park.settings import Settings
from parkcarbon.airflow_env import DAGS_FOLDER, prepare_airflow
from parkcarbon.processes import port_in_use, reap, spawn, wait_for_port
from parkcarbon.runtime import CREDENTIAL_VARIABLES, settings_environ
from parkcarbon.services import free_port, private_dir, write_private

STATE_FILE = "airflow.json"
SECRETS_FILE = "airflow-secrets.json"
DAG_IDS = ("carbon_monthly", "carbon_annual", "meter_quality_daily")
COMPONENTS = ("scheduler", "dag-processor", "api-server")
DEFAULT_API_PORT = 18080
EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}


class AirflowError(RuntimeError):
    """The local Airflow could not be started, reached or stopped (the message is one line)."""


@dataclass
class AirflowProcess:
    name: str
    pid: int
    started: int  # the process's start time in clock ticks since boot (/proc/PID/stat): a reused PID differs
    argv: list[str]
    log: str


@dataclass(frozen=True)
class Started:
    api_url: str
    home: Path
    processes: list[AirflowProcess]
    unpaused: list[str]
    executor: str


class LocalAirflow:
    """Scheduler, DAG processor and API server for one run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir.resolve()

    @property
    def state_path(self) -> Path:
        return self.run_dir / STATE_FILE

    def state(self) -> dict[str, object] | None:
        if not self.state_path.exists():
            return None
        state: dict[str, object] = json.loads(self.state_path.read_text())
        return state

    def processes(self) -> list[AirflowProcess]:
        state = self.state()
        if state is None:
            return []
        found = state["processes"]
        assert isinstance(found, list)
        return [AirflowProcess(**p) for p in found]

    def api_url(self) -> str | None:
        state = self.state()
        return None if state is None else str(state["api_url"])

    def executor(self) -> str | None:
        state = self.state()
        return None if state is None else str(state.get("executor", "local"))

    def status(self) -> dict[str, bool]:
        """Each recorded process and whether it runs (empty if ``up`` started nothing here)."""
        return {p.name: _runs(p) for p in self.processes()}

    def up(
        self,
        settings: Settings,
        api_port: int = DEFAULT_API_PORT,
        dag_ids: Iterable[str] = DAG_IDS,
        timeout_s: float = 180.0,
        executor: str = "local",
        workers: int = 2,
    ) -> Started:
        """Start the processes (or confirm they run), wait until the API server answers and the DAG
        processor has stored ``dag_ids``, and unpause them. ``executor`` "celery" adds Redis and
        ``workers`` Celery workers."""
        if executor not in EXECUTORS:
            raise AirflowError(f"no executor {executor!r}: one of {', '.join(EXECUTORS)}")
        if workers < 1:
            raise AirflowError(f"--workers {workers}: at least 1 Celery worker is needed")
        wanted = list(dag_ids)
        unknown = sorted(set(wanted) - set(DAG_IDS))
        if unknown:
            raise AirflowError(f"no DAG {', '.join(unknown)} in {DAGS_FOLDER}: the DAGs are {', '.join(DAG_IDS)}")
        status = self.status()
        if status and all(status.values()):
            state = self.state()
            assert state is not None
            url, home = str(state["api_url"]), Path(str(state["home"]))
            running = str(state.get("executor", "local"))
            return Started(url, home, self.processes(), self._unpause(wanted, home, timeout_s), running)
        if status:
            self.down()
        if port_in_use(api_port):
            raise AirflowError(f"port {api_port} is already in use: choose another with --port, or --free-port")
        private_dir(self.run_dir)
        try:
            home = prepare_airflow(self.run_dir)
        except subprocess.CalledProcessError as exc:
            output = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr or "")
            raise AirflowError(f"`airflow db migrate` failed: {_last_line_of(output)}") from None
        api_url = f"http://127.0.0.1:{api_port}"
        logs = private_dir(home / "processes")
        started: list[AirflowProcess] = []
        state = {"api_url": api_url, "home": str(home), "executor": executor, "processes": started}

        def record() -> None:
            self.state_path.write_text(json.dumps({**state, "processes": [asdict(p) for p in started]}, indent=1))

        # SIGTERM while starting (a service manager giving up) stops what was started, as Ctrl-C does.
        previous = _raise_on_sigterm()
        try:
            broker_url = None
            if executor == "celery":
                redis_port = free_port()
                argv = self._redis_command(redis_port)
                started.append(self._spawn("redis", argv, _clean_environ(), logs))
                record()
                _wait_tcp(redis_port, 30.0, Path(started[-1].log))
                broker_url = f"redis://:{self._secrets()['redis']}@127.0.0.1:{redis_port}"
            commands = self.commands(settings, home, api_url, executor, workers, broker_url)
            started += [self._spawn(name, argv, env, logs) for name, (argv, env) in commands.items()]
            record()
            self._wait_api(api_url, timeout_s)
            unpaused = self._unpause(wanted, home, timeout_s)
        except BaseException:
            record()
            self.down()
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return Started(api_url, home, started, unpaused, executor)

    def down(self, timeout_s: float = 30.0) -> list[str]:
        """Stop what ``up`` recorded, each process with its children: SIGTERM to the process group, then
        SIGKILL to what is left after ``timeout_s``. Nothing running is not an error."""
        records = self.processes()
        groups = {p.pid: p.name for p in records if _runs(p)}
        # Airflow first, the broker its workers talk to last.
        for phase in ([g for g, n in groups.items() if n != "redis"], [g for g, n in groups.items() if n == "redis"]):
            for pgid in phase:
                _signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while any(_group_alive(g) for g in phase) and time.monotonic() < deadline:
                time.sleep(0.1)
            for pgid in phase:
                if _group_alive(pgid):
                    _signal_group(pgid, signal.SIGKILL)
            for pgid in phase:
                _wait_group(pgid, 10.0)
        self.state_path.unlink(missing_ok=True)
        return [name for name in groups.values()]

    def commands(
        self,
        settings: Settings,
        home: Path,
        api_url: str,
        executor: str = "local",
        workers: int = 2,
        broker_url: str | None = None,
    ) -> dict[str, tuple[list[str], dict[str, str]]]:
        """Each Airflow process's command line and environment (the run's settings; Airflow's, pointing
        the tasks at the execution API on ``api_url``). The processes that run tasks (the scheduler with
        the LocalExecutor, else the Celery workers) get the pipeline's credentials, the others not."""
        base = _clean_environ()
        base.update(self._airflow_environ(home, api_url))
        base["AIRFLOW__CORE__EXECUTOR"] = EXECUTORS[executor]
        run_settings = settings_environ(settings)
        without_credentials = {k: v for k, v in run_settings.items() if k not in CREDENTIAL_VARIABLES}
        python = [sys.executable, "-m", "airflow"]
        port = api_url.rsplit(":", 1)[1]
        celery: dict[str, str] = {}
        if executor == "celery":
            assert broker_url is not None, "the Celery executor needs the broker's URL"
            celery = {
                "AIRFLOW__CELERY__BROKER_URL": f"{broker_url}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"{broker_url}/1",
            }
        scheduler_env = {**base, **(run_settings if executor == "local" else without_credentials), **celery}
        commands = {
            "scheduler": ([*python, "scheduler"], scheduler_env),
            "dag-processor": ([*python, "dag-processor"], {**base, **without_credentials}),
            "api-server": (
                [*python, "api-server", "--host", "127.0.0.1", "--port", port, "--workers", "1"],
                {**base, **without_credentials},
            ),
        }
        if executor == "celery":
            for n in range(1, workers + 1):
                # One task at a time per worker; the workers share this machine, so none serves logs on a port
                # (the API server reads the task logs from AIRFLOW_HOME/logs).
                argv = [*python, "celery", "worker", "--concurrency", "1", "--celery-hostname", f"worker-{n}@%h"]
                commands[f"worker-{n}"] = ([*argv, "--skip-serve-logs"], {**base, **run_settings, **celery})
        return commands

    def _secrets(self) -> dict[str, str]:
        """Generated once into RUN/airflow-secrets.json (0600): the JWT secret, the admin's and Redis's passwords."""
        path = self.run_dir / SECRETS_FILE
        generated: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        wanted = {"jwt_secret": 48, "admin": 12, "redis": 24}
        if not set(wanted) <= set(generated):
            for key, size in wanted.items():
                generated.setdefault(key, secrets.token_urlsafe(size))
            write_private(path, json.dumps(generated, indent=1))
        return generated

    def _redis_command(self, port: int) -> list[str]:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise AirflowError("redis-server is not installed: run `make bootstrap` (apt-get install redis-server)")
        directory = private_dir(self.run_dir / "redis")
        conf = directory / "redis.conf"
        write_private(
            conf,
            f"bind 127.0.0.1\nport {port}\nrequirepass {self._secrets()['redis']}\ndir {directory}\n"
            'save ""\nappendonly no\ndaemonize no\nprotected-mode yes\n',
        )
        return [binary, str(conf)]

    # -- helpers ------------------------------------------------------------------------------------------------

    def _airflow_environ(self, home: Path, api_url: str) -> dict[str, str]:
        generated = self._secrets()
        passwords = home / "passwords.json"
        if not passwords.exists():
            write_private(passwords, json.dumps({"admin": generated["admin"]}))
        return {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": api_url.rsplit(":", 1)[1],
            "AIRFLOW__API_AUTH__JWT_SECRET": generated["jwt_secret"],
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            # A new DAG file (or a changed registry) is seen within 30 s, not 5 minutes.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        }

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> AirflowProcess:
        log = logs / f"{name}.log"
        pid = spawn(argv, log, env=env, cwd=self.run_dir)
        return AirflowProcess(name=name, pid=pid, started=_start_ticks(pid) or 0, argv=argv, log=str(log))

    def _check_alive(self) -> None:
        for process in self.processes():
            if not _runs(process):
                raise AirflowError(
                    f"the {process.name} exited at start: {_last_line(Path(process.log))} (see {process.log})"
                )

    def _wait_api(self, api_url: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_alive()
            try:
                if httpx.get(f"{api_url}/api/v2/monitor/health", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AirflowError(f"the API server did not answer at {api_url} within {timeout_s:.0f} s")
            time.sleep(0.5)

    def _unpause(self, dag_ids: list[str], home: Path, timeout_s: float) -> list[str]:
        """Unpause each DAG once the DAG processor has stored it (``airflow dags unpause`` fails until then)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARKCARBON_")}
        env["AIRFLOW_HOME"] = str(home)
        deadline = time.monotonic() + timeout_s
        left = list(dag_ids)
        while left:
            self._check_alive()
            done = subprocess.run(
                [sys.executable, "-m", "airflow", "dags", "unpause", left[0], "-y"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode == 0:
                left.pop(0)
                continue
            if time.monotonic() > deadline:
                reason = _last_line_of(done.stderr or done.stdout)
                raise AirflowError(
                    f"{left[0]} did not appear in Airflow within {timeout_s:.0f} s ({reason});"
                    f" see {home / 'processes' / 'dag-processor.log'}"
                )
            time.sleep(2.0)
        return dag_ids


def _raise_on_sigterm() -> signal._HANDLER:
    """Make SIGTERM raise SystemExit in the main thread; return the handler it replaced (None elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, stop)


def _clean_environ() -> dict[str, str]:
    """This process's environment without the run's settings (each process gets its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PARKCARBON_")}


def _wait_tcp(port: int, timeout_s: float, log: Path) -> None:
    if not wait_for_port(port, timeout_s):
        raise AirflowError(f"redis-server did not listen on {port} within {timeout_s:.0f} s: {_last_line(log)}")


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if fields[0] == "Z":
        reap(pid)
        return None
    return int(fields[19])  # field 22 of stat: starttime


def _runs(process: AirflowProcess) -> bool:
    """True if the PID is alive and is the process ``up`` started (same start time: not a reused PID)."""
    reap(process.pid)
    return _start_ticks(process.pid) == process.started


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """True while a process of the group runs (a zombie leader that is our child is reaped first)."""
    reap(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _wait_group(pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _last_line(log: Path) -> str:
    try:
        return _last_line_of(log.read_text(errors="replace"))
    except OSError:
        return "no log"


def _last_line_of(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
