"""Airflow for the local stack and tests: a SQLite metadata database under the run directory.

Airflow reads its configuration when first imported, so :func:`prepare_airflow` runs before any
Airflow import; an ``AIRFLOW_HOME`` already set in the environment is respected.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from park.settings import PROJECT_ROOT

DAGS_FOLDER = PROJECT_ROOT / "dags"


def prepare_airflow(run_dir: Path) -> Path:
    """Point Airflow at ``RUN/airflow`` (unless AIRFLOW_HOME is set) and migrate its database once."""
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(run_dir / "airflow")))
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(DAGS_FOLDER))
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    marker = home / ".migrated"
    if not marker.exists():
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            check=True,
            capture_output=True,
            env=os.environ.copy(),
        )
        marker.touch()
    return home


def load_dag_module(name: str) -> ModuleType:
    """Import a DAG file from ``dags/`` by path (the DAG folder is not a package)."""
    path = DAGS_FOLDER / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"parkcarbon_dags.{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_dag(name: str, start: datetime, end: datetime, conf: dict[str, Any] | None = None) -> Any:
    """Run the DAG ``dags/<name>.py`` with ``dag.test()`` for the period [start, end) (its logical date is
    ``start``, as the scheduler's run for that interval has); return the DagRun.

    Raises RuntimeError, with one line saying why, if the interval lies before the DAG's start date,
    Airflow ran another interval, a task did not run, or the run did not succeed.
    """
    import pendulum

    # Airflow 3.3's in-process execution API uses starlette's TestClient, which warns about httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    dag = getattr(load_dag_module(name), f"{name}_dag")
    if dag.start_date is not None and pendulum.instance(start) < pendulum.instance(dag.start_date):
        raise RuntimeError(
            f"{name}: the interval from {start.isoformat()} is before the DAG's start date "
            f"{pendulum.instance(dag.start_date).isoformat()} (the registry's park.metering_start)"
        )
    # The DAGs compute the period their run's logical date lies in; a scheduled run's logical date is
    # its interval's start, so this is the run the scheduler makes for the interval (the same
    # (dag_id, logical_date): a scheduler on this database skips the month, `airflow tasks clear`
    # with the month's bounds finds it).
    run = dag.test(logical_date=pendulum.instance(start), run_conf=conf)
    ran_for = pendulum.instance(run.logical_date)
    if ran_for != pendulum.instance(start):
        raise RuntimeError(f"{name} ran for the logical date {ran_for}, not {start}")
    states = _task_states(name, run.run_id)
    failed = sorted(t for t, state in states.items() if state != "success")
    if failed or not states:
        reason = ", ".join(f"{t}: {states[t]}" for t in failed) or "no task ran"
        raise RuntimeError(f"{name} for the interval from {start.isoformat()} did not succeed: {reason}")
    never_ran = sorted({t.task_id for t in dag.tasks} - set(states))
    if never_ran or run.state != "success":
        raise RuntimeError(f"{name} for {start.isoformat()} ended {run.state}; tasks that never ran: {never_ran}")
    return run


def _task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance.task_id, TaskInstance.state).filter(
            TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id
        )
        # A mapped task has one instance per map index: it counts as its worst (a non-success wins).
        states: dict[str, str] = {}
        for task_id, state in rows:
            if states.get(str(task_id), "success") == "success":
                states[str(task_id)] = str(state)
        return states


def run_month(period: str) -> Any:
    """Run ``carbon_monthly`` for ``period`` with ``dag.test()``; return the DagRun.

    The month's bounds are in the time zone of the registry the DAG's tasks read (the environment's
    settings, as :func:`parkcarbon.runtime.export_settings` put them there). A month that has not
    ended, or lies before the park's metering start, is refused before Airflow runs anything.
    """
    from park.month import Month
    from park.settings import Settings
    from pipeline.checks import WrongInputError, check_month
    from pipeline.registry_source import registry_of_period

    registry = registry_of_period(Settings(), period)  # the file, or the database's registry of the month
    month = Month.of(period, registry.park.timezone)
    try:
        check_month(registry, month)
    except WrongInputError as exc:
        raise RuntimeError(str(exc)) from None
    return run_dag("carbon_monthly", month.start, month.end)
