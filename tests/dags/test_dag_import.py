"""DAG files import without touching the network, with the schedule and retries they promise."""

from __future__ import annotations

import socket

import pytest

pytestmark = pytest.mark.airflow


def test_carbon_monthly_imports_offline(airflow_home, monkeypatch):
    """Parsing the DAG file opens no socket; monthly data intervals in Asia/Shanghai, catchup, retries."""

    def no_network(*_a, **_k):
        raise AssertionError("a DAG file touched the network at parse time")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    from pipeline.airflow_env import load_dag_module

    dag = load_dag_module("carbon_monthly").carbon_monthly_dag
    assert dag.dag_id == "carbon_monthly"
    assert dag.catchup is True
    assert dag.default_args["retries"] == 2
    assert dag.timetable.summary == "0 0 1 * *"
    assert str(dag.timezone) == "Asia/Shanghai"
    assert {t.task_id for t in dag.tasks} == {"activity", "scores", "report"}
    assert dag.doc_md and "carbon_monthly" in dag.doc_md
