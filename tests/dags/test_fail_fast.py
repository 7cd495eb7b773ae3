"""A run whose InfluxDB does not answer (the wrong port, say) fails in seconds, once, with one line naming
the URL: the task is not put up for retry five minutes later, twice. dag.test() on a real Airflow
metadata database; no service runs."""

from __future__ import annotations

import socket
import time

import pytest

pytestmark = pytest.mark.airflow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_unreachable_influxdb_fails_the_run_at_once(airflow_home, monkeypatch, tmp_path, clean_environ):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    from parkcarbon.airflow_env import run_month

    port = _free_port()
    monkeypatch.setenv("PARKCARBON_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("PARKCARBON_INFLUX__PORT", str(port))
    began = time.monotonic()
    with pytest.raises(RuntimeError, match=r"did not succeed: activity: failed") as failed:
        run_month("2026-10")
    elapsed = time.monotonic() - began
    assert elapsed < 60, f"the run took {elapsed:.0f} s to fail"
    assert "\n" not in str(failed.value)
    with create_session() as session:
        activity = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == "carbon_monthly", TaskInstance.task_id == "activity")
            .order_by(TaskInstance.start_date.desc())
            .first()
        )
        assert activity is not None
        # Failed on its first try, not "up_for_retry": no retry was scheduled.
        assert (activity.state, activity.try_number) == ("failed", 1)
