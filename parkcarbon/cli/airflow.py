"""``parkcarbon airflow up|down|status``: a local Airflow (scheduler, DAG processor, API server) on the run's
services, as a park runs it outside Docker (``parkcarbon/airflow_local.py``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from park.settings import Settings

if TYPE_CHECKING:
    from parkcarbon.airflow_local import LocalAirflow

ACTIONS = {
    "up": "start the scheduler, DAG processor and API server (and Celery's) or confirm they run; unpause the DAGs",
    "down": "stop exactly what `up` started from this run directory (nothing running is fine)",
    "status": "say whether each process runs, and the API's URL; exit 1 if one does not",
}


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from parkcarbon.airflow_local import DAG_IDS, DEFAULT_API_PORT

    p = subparsers.add_parser(
        "airflow",
        help="start, stop or show a local Airflow that runs the DAGs on schedule",
        description="A local Airflow under the run directory (PARKCARBON_RUN_DIR): scheduler (LocalExecutor),"
        " DAG processor and API server with the ports and credentials of `parkcarbon services up`, stopped by PID.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="actions:\n" + "\n".join(f"  {name:8} {text}" for name, text in ACTIONS.items()),
    )
    p.add_argument("action", choices=list(ACTIONS), metavar="ACTION", help=f"one of: {', '.join(ACTIONS)} (below)")
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_API_PORT,
        help=f"up: the API server's port on 127.0.0.1 (default {DEFAULT_API_PORT}); the tasks reach the execution"
        " API there",
    )
    p.add_argument("--free-port", action="store_true", help="up: pick a free port for the API server instead")
    p.add_argument(
        "--dag",
        action="append",
        choices=list(DAG_IDS),
        metavar="DAG_ID",
        help=f"up: unpause only this DAG (repeatable; default all: {', '.join(DAG_IDS)}); the others stay as they are",
    )
    p.add_argument(
        "--executor",
        choices=["local", "celery"],
        default="local",
        help="up: where tasks run: local (LocalExecutor, in the scheduler's children; default) or celery (Celery"
        " workers on a Redis broker that `up` starts: Debian's redis-server)",
    )
    p.add_argument(
        "--workers", type=int, default=2, help="up with --executor celery: how many Celery workers (default 2)"
    )
    p.add_argument(
        "--timeout", type=float, default=180.0, help="up: seconds to wait for Airflow to be ready (default 180)"
    )
    p.set_defaults(handler=_airflow)


def _airflow(args: argparse.Namespace, settings: Settings) -> int:
    from parkcarbon.airflow_local import DAG_IDS, LocalAirflow
    from parkcarbon.cli.errors import CliError

    local = LocalAirflow(settings.run_dir)
    if args.action == "down":
        stopped = local.down()
        print(f"stopped: {', '.join(stopped) or 'nothing was running'} ({local.run_dir})")
        return 0
    if args.action == "status":
        status = local.status()
        if not status:
            raise CliError(f"nothing started from {local.run_dir}; start it with `parkcarbon airflow up`")
        for name, running in status.items():
            print(f"{name:14} {'running' if running else 'STOPPED'}")
        print(f"{'api':14} {local.api_url()}   (executor: {local.executor()})")
        return 0 if all(status.values()) else 1
    return _up(args, settings, local, list(args.dag or DAG_IDS))


def _up(args: argparse.Namespace, settings: Settings, local: LocalAirflow, dag_ids: list[str]) -> int:
    from park.registry import load_registry
    from parkcarbon.cli.errors import require_influx
    from parkcarbon.services import free_port

    # What can fail at once fails before anything starts: the registry the DAG files read, InfluxDB.
    load_registry(settings.registry)
    require_influx(settings)
    port = free_port() if args.free_port else args.port
    extra = f", redis, {args.workers} Celery workers" if args.executor == "celery" else ""
    print(f"starting Airflow (scheduler, dag-processor, api-server{extra}) under {local.run_dir} ...", flush=True)
    started = local.up(settings, port, dag_ids, args.timeout, args.executor, args.workers)
    for process in started.processes:
        print(f"{process.name:14} pid {process.pid}   log {process.log}")
    print(f"{'api':14} {started.api_url}   (user admin, password in {started.home / 'passwords.json'})")
    print(f"{'AIRFLOW_HOME':14} {started.home}   (for the `airflow` command: export AIRFLOW_HOME={started.home})")
    print(f"{'executor':14} {started.executor}")
    print(f"{'unpaused':14} {', '.join(started.unpaused)}")
    print(
        f"tasks use InfluxDB {settings.influx.url} (database {settings.influx.database}); stop: parkcarbon airflow down"
    )
    return 0
