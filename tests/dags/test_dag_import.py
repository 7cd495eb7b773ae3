"""DAG files import without touching the network, with the schedule and retries they promise."""

from __future__ import annotations

import socket

import pytest

pytestmark = pytest.mark.airflow


@pytest.mark.parametrize(
    ("name", "cron", "catchup", "tasks"),
    [
        ("carbon_monthly", "0 0 1 * *", True, {"activity", "scores", "report"}),
        ("carbon_annual", "0 0 1 1 *", True, {"settle"}),
        ("meter_quality_daily", "0 0 * * *", False, {"day", "late_data"}),
    ],
)
def test_dag_imports_offline(airflow_home, monkeypatch, name, cron, catchup, tasks):
    """Parsing the DAG file opens no socket; data intervals in Asia/Shanghai, catchup as stated, retries."""

    def no_network(*_a, **_k):
        raise AssertionError("a DAG file touched the network at parse time")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    from pipeline.airflow_env import load_dag_module

    dag = getattr(load_dag_module(name), f"{name}_dag")
    assert dag.dag_id == name
    assert dag.catchup is catchup
    assert dag.default_args["retries"] == 2
    assert dag.timetable.summary == cron
    assert str(dag.timezone) == "Asia/Shanghai"
    assert {t.task_id for t in dag.tasks} == tasks
    assert dag.doc_md and name in dag.doc_md


def test_dag_folder_has_no_import_errors(airflow_home):
    """What the scheduler would see: every file in dags/ parses into exactly the three DAGs."""
    from airflow.dag_processing.dagbag import DagBag

    from pipeline.airflow_env import DAGS_FOLDER

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"carbon_monthly", "carbon_annual", "meter_quality_daily"}
