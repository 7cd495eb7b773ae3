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


def run_month(period: str) -> Any:
    """Run ``carbon_monthly`` for ``period`` with ``dag.test()``; return the DagRun."""
    import pendulum

    from pipeline.month import Month

    # Airflow 3.3's in-process execution API uses starlette's TestClient, which warns about httpx.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    dag = load_dag_module("carbon_monthly").carbon_monthly_dag
    month = Month.of(period, "Asia/Shanghai")
    # A data-interval timetable's run for a month is the one made at the month's end.
    run = dag.test(logical_date=pendulum.instance(month.end))
    start = pendulum.instance(run.data_interval_start)
    if start != pendulum.instance(month.start):
        raise RuntimeError(f"carbon_monthly ran for the interval from {start}, not for {period}")
    if run.state != "success":
        raise RuntimeError(f"carbon_monthly for {period} ended {run.state}")
    return run
