"""DAG files import without touching the network, with the schedule and retries they promise."""

from __future__ import annotations

import socket

import pytest

from park.registry import DEFAULT_TIMEZONE

pytestmark = pytest.mark.airflow


@pytest.mark.parametrize(
    ("name", "cron", "catchup", "tasks"),
    [
        ("carbon_monthly", "0 0 1 * *", True, {"groups", "activity", "park_activity", "scores", "report"}),
        ("carbon_annual", "0 0 1 1 *", True, {"settle"}),
        ("meter_quality_daily", "0 0 * * *", False, {"day", "late_data", "rollup", "late_rollups"}),
    ],
)
def test_dag_imports_offline(airflow_home, monkeypatch, name, cron, catchup, tasks):
    """Parsing the DAG file opens no socket; data intervals in the demo park's time zone, catchup as stated, retries."""

    def no_network(*_a, **_k):
        raise AssertionError("a DAG file touched the network at parse time")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    from parkcarbon.airflow_env import load_dag_module

    dag = getattr(load_dag_module(name), f"{name}_dag")
    assert dag.dag_id == name
    assert dag.catchup is catchup
    assert dag.default_args["retries"] == 2
    assert dag.timetable.summary == cron
    assert str(dag.timezone) == DEFAULT_TIMEZONE
    assert {t.task_id for t in dag.tasks} == tasks
    assert dag.doc_md and name in dag.doc_md


def test_dag_folder_has_no_import_errors(airflow_home):
    """What the scheduler would see: every file in dags/ parses into exactly the three DAGs."""
    from airflow.dag_processing.dagbag import DagBag

    from parkcarbon.airflow_env import DAGS_FOLDER

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"carbon_monthly", "carbon_annual", "meter_quality_daily"}


@pytest.mark.parametrize("name", ["carbon_monthly", "carbon_annual", "meter_quality_daily"])
def test_timetable_follows_the_registry_time_zone(airflow_home, monkeypatch, tmp_path, name):
    """The registry is the one source of the park's time zone: a DAG's timetable and start date use
    the time zone of the registry it is configured with, not a constant of its own."""
    import yaml

    from park.registry import load_registry
    from park.settings import DEMO_REGISTRY, Settings
    from parkcarbon.airflow_env import load_dag_module

    dag = getattr(load_dag_module(name), f"{name}_dag")
    assert str(dag.timezone) == load_registry(Settings().registry).park.timezone
    assert str(dag.timetable._timezone) == load_registry(Settings().registry).park.timezone

    document = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    document["park"]["timezone"] = "Europe/Berlin"
    berlin = tmp_path / "registry.yaml"
    berlin.write_text(yaml.safe_dump(document), encoding="utf-8")
    monkeypatch.setenv("PARKCARBON_REGISTRY", str(berlin))
    dag = getattr(load_dag_module(name), f"{name}_dag")
    assert str(dag.timezone) == "Europe/Berlin"
    assert str(dag.timetable._timezone) == "Europe/Berlin"


def test_monthly_activity_is_mapped_over_groups_then_reduced(airflow_home):
    """carbon_monthly: groups → activity (one mapped task per group of enterprises) → park_activity (the
    reduce, which gets every group's summary) → scores → report; every task has an execution timeout."""
    from datetime import timedelta

    from airflow.sdk.definitions.mappedoperator import MappedOperator

    from parkcarbon.airflow_env import load_dag_module

    module = load_dag_module("carbon_monthly")
    dag = module.carbon_monthly_dag
    tasks = {t.task_id: t for t in dag.tasks}
    assert isinstance(tasks["activity"], MappedOperator)
    assert [name for name, t in tasks.items() if isinstance(t, MappedOperator)] == ["activity"]
    # The mapped argument is the list the groups task returns (one mapped task per group).
    expand = tasks["activity"].op_kwargs_expand_input.value  # type: ignore[attr-defined]  # TaskFlow's mapped kwargs
    assert set(expand) == {"enterprises"} and expand["enterprises"].operator.task_id == "groups"
    upstream = {name: sorted(t.upstream_task_ids) for name, t in tasks.items()}
    assert upstream == {
        "groups": [],
        "activity": ["groups"],
        "park_activity": ["activity"],
        "scores": ["park_activity"],
        "report": ["scores"],
    }
    timeouts = {
        name: t.partial_kwargs["execution_timeout"] if name == "activity" else t.execution_timeout
        for name, t in tasks.items()
    }
    assert all(isinstance(v, timedelta) and v > timedelta(0) for v in timeouts.values()), timeouts
    assert timeouts["activity"] == module.GROUP_TIMEOUT and timeouts["scores"] == module.SCORES_TIMEOUT
    assert all(t.retries == 2 for t in tasks.values()), {n: t.retries for n, t in tasks.items()}
