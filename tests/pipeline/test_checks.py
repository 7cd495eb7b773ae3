"""Which period a DAG run computes, and which failures end a run at once instead of being retried."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime

import pytest

from park.settings import InfluxSettings
from park.store import InfluxError
from pipeline.checks import WrongInputError, failing_fast, run_period, run_start
from scoring.factors import UnknownFactorSetError

SHANGHAI = "Asia/Shanghai"


@pytest.mark.parametrize(
    ("logical_date", "interval_start", "period"),
    [
        # The scheduler's run for October 2026: logical date = the interval's start, 1 October local time.
        (datetime(2026, 9, 30, 16, tzinfo=UTC), datetime(2026, 9, 30, 16, tzinfo=UTC), "2026-10"),
        # `airflow dags trigger --logical-date 2026-09-15` on 29 November: Airflow infers the interval from
        # the trigger time (October); the logical date says September.
        (datetime(2026, 9, 14, 16, tzinfo=UTC), datetime(2026, 9, 30, 16, tzinfo=UTC), "2026-09"),
        # The last second of October, local time, is still October (in UTC it is 31 October 15:59:59).
        (datetime(2026, 10, 31, 15, 59, 59, tzinfo=UTC), None, "2026-10"),
        # Without a logical date (a run triggered without one), the data interval.
        (None, datetime(2026, 7, 31, 16, tzinfo=UTC), "2026-08"),
    ],
)
def test_the_period_is_the_month_of_the_logical_date(logical_date, interval_start, period):
    assert run_period(logical_date, interval_start, SHANGHAI) == period


def test_a_run_without_a_date_is_a_wrong_input():
    with pytest.raises(WrongInputError, match="--logical-date"):
        run_start(None, None, SHANGHAI)


def _fail_exception() -> type[Exception]:
    # Imported here, by tests that have the session's Airflow home: importing Airflow reads its
    # configuration once, and it must be that home's (tests/services.py).
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.airflow
def test_an_unreachable_influxdb_fails_at_once_in_one_line(airflow_home):
    port = _free_port()
    began = time.monotonic()
    with pytest.raises(_fail_exception()) as failed, failing_fast(InfluxSettings(port=port)):
        pytest.fail("the task body ran although InfluxDB does not answer")
    assert time.monotonic() - began < 6
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(f"InfluxDB at http://127.0.0.1:{port} is not reachable: connection refused; ")
    assert "PARKCARBON_INFLUX__PORT" in message


@pytest.mark.parametrize(
    "error",
    [
        WrongInputError("2099-01 has not ended yet"),
        UnknownFactorSetError("unknown factor set 'cn-1999'\n(known: cn-national-2023)"),
        InfluxError("InfluxDB GET /query answered 401: authorization failed", 401),
    ],
    ids=["wrong month", "factor set", "wrong account"],
)
@pytest.mark.airflow
def test_wrong_inputs_fail_without_retry(error, airflow_home):
    with pytest.raises(_fail_exception()) as failed, failing_fast():
        raise error
    assert "\n" not in str(failed.value)


@pytest.mark.parametrize(
    "error",
    [
        InfluxError("InfluxDB POST /write answered 503: overloaded", 503),
        InfluxError("InfluxDB at http://127.0.0.1:1 not reachable: timed out", 0),
        TimeoutError("read timed out"),
    ],
    ids=["503", "outage mid-run", "timeout"],
)
def test_transient_faults_are_left_to_airflow_retries(error):
    """Raised as they are: Airflow retries them (the DAGs' ``retries``: 2)."""
    with pytest.raises(type(error)) as raised, failing_fast():
        raise error
    assert raised.value is error
