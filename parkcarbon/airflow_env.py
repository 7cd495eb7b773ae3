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


def run_dag(name: str, start: datetime, end: datetime) -> Any:
    """Run the DAG ``dags/<name>.py`` with ``dag.test()`` for the data interval [start, end); return the DagRun.

    Raises if Airflow ran another interval or the run did not succeed.
    """
    import pendulum

    # Airflow 3.3's in-process execution API uses starlette's TestClient, which warns about httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    dag = getattr(load_dag_module(name), f"{name}_dag")
    # A data-interval timetable's run for an interval is the one made at the interval's end.
    run = dag.test(logical_date=pendulum.instance(end))
    ran_from = pendulum.instance(run.data_interval_start)
    if ran_from != pendulum.instance(start):
        raise RuntimeError(f"{name} ran for the interval from {ran_from}, not from {start}")
    if run.state != "success":
        raise RuntimeError(f"{name} for the interval from {start} ended {run.state}")
    return run


def run_month(period: str) -> Any:
    """Run ``carbon_monthly`` for ``period`` with ``dag.test()``; return the DagRun.

    The month's bounds are in the time zone of the registry the DAG's tasks read (the environment's
    settings, as :func:`parkcarbon.runtime.export_settings` put them there).
    """
    from park.month import Month
    from park.registry import park_timezone
    from park.settings import Settings

    month = Month.of(period, park_timezone(Settings().registry))
    return run_dag("carbon_monthly", month.start, month.end)
