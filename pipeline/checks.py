"""What a run of the pipeline refuses before it computes anything: a month that has not ended yet or
that lies before the park's metering start, and an InfluxDB it cannot reach. These are wrong inputs
(or a wrong host or port), not transient faults: the run fails at once with one line that says why,
and retrying cannot help. A fault during the work (a timeout, InfluxDB answering 5xx) may be
transient: Airflow retries it, as often as the DAG's ``retries`` say."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx

from park.month import Month
from park.registry import Registry, RegistryError, metering_start_of
from park.settings import InfluxSettings
from park.store import InfluxError
from scoring.factors import UnknownFactorSetError
from scoring.inputs import InputError
from scoring.policy import PolicyError


class WrongInputError(ValueError):
    """A run that cannot succeed as asked (a wrong month, a bad file): fail it, do not retry it."""


class UnreachableError(RuntimeError):
    """A service the run needs does not answer when the run starts: a wrong host or port, or a service
    that is not running. Fail the run at once, naming it; retrying every few minutes for an hour would
    only hide the cause."""


TASK_HINT = (
    "check PARKCARBON_INFLUX__HOST and PARKCARBON_INFLUX__PORT (`parkcarbon airflow up` hands the tasks the"
    " ports `parkcarbon services up` chose) and that InfluxDB runs"
)


def require_influx(settings: InfluxSettings, timeout_s: float = 5.0, hint: str = TASK_HINT) -> None:
    """Raise :class:`UnreachableError` unless InfluxDB answers ``/ping`` at ``settings.url`` within
    ``timeout_s``; the message ends with ``hint``, what the reader should check (a task's settings by
    default; the command line says how to start the services)."""
    url = settings.url
    try:
        status = httpx.get(f"{url}/ping", timeout=timeout_s).status_code
    except httpx.TransportError as exc:
        raise UnreachableError(f"InfluxDB at {url} is not reachable: {_reason(exc)}; {hint}") from None
    if status != 204:
        raise UnreachableError(f"InfluxDB at {url} answered /ping with HTTP {status}: is that port InfluxDB's? {hint}")


def _reason(exc: BaseException) -> str:
    """'connection refused' rather than '[Errno 111] Connection refused'."""
    if isinstance(exc, httpx.TimeoutException):
        return "no answer (timed out)"
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__context__ or cause.__cause__
    text = (cause.strerror if isinstance(cause, OSError) else None) or str(exc) or type(exc).__name__
    return text[:1].lower() + text[1:]


def check_month(registry: Registry, month: Month, now: datetime | None = None) -> None:
    """Raise :class:`WrongInputError` unless ``month`` has ended and lies in the park's metering period."""
    now = now or datetime.now(UTC)
    if month.end > now:
        raise WrongInputError(
            f"{month.period} has not ended yet (it ends {month.end.isoformat()}): a month is computed once it is over"
        )
    try:
        start = metering_start_of(registry.park)
    except ValueError as exc:
        raise WrongInputError(str(exc)) from None
    if month.end.date() <= start:
        raise WrongInputError(
            f"{month.period} is before the park's metering start {start.isoformat()} (registry park.metering_start)"
        )


def run_start(logical_date: datetime | None, data_interval_start: datetime | None, timezone: str) -> datetime:
    """The start of the period a DAG run computes, in the park's ``timezone``: its logical date, which
    lies in that period (a scheduled or backfilled run's logical date is the period's start; a manual
    run's is the date it was triggered with: ``--logical-date 2026-09-15`` computes September).

    Airflow infers a manual run's data interval from the time it was triggered, not from its logical
    date (``airflow dags trigger`` on 29 November gives October whatever the logical date), so the data
    interval is used only by a run without a logical date. Without either, :class:`WrongInputError`.
    """
    given = logical_date if logical_date is not None else data_interval_start
    if given is None:
        raise WrongInputError(
            "the run has no logical date: trigger it with one inside the period to compute,"
            " e.g. `airflow dags trigger carbon_monthly --logical-date 2026-10-01T00:00:00+08:00`"
        )
    return given.astimezone(ZoneInfo(timezone))


def run_period(logical_date: datetime | None, data_interval_start: datetime | None, timezone: str) -> str:
    """The month (YYYY-MM) a ``carbon_monthly`` run computes: the one its logical date lies in (:func:`run_start`)."""
    local = run_start(logical_date, data_interval_start, timezone)
    return f"{local.year:04d}-{local.month:02d}"


# Errors that no retry can mend: the run's inputs are wrong.
WRONG_INPUTS = (WrongInputError, InputError, RegistryError, UnknownFactorSetError, PolicyError)


@contextmanager
def failing_fast(influx: InfluxSettings | None = None) -> Iterator[None]:
    """Around a task body: a wrong input fails the task at once with its one-line reason (Airflow's
    ``AirflowFailException``, which is not retried), and so does an InfluxDB that does not answer when
    the task starts (given ``influx``, it is pinged first) or that refuses a request for good (4xx: a
    wrong account, a missing database); anything else may be transient and is retried."""
    try:
        if influx is not None:
            require_influx(influx)
        yield
    except (*WRONG_INPUTS, UnreachableError) as exc:
        raise _fail(exc) from None
    except InfluxError as exc:
        if exc.retryable:
            raise
        raise _fail(exc) from None


def _fail(exc: Exception) -> Exception:
    """Airflow's ``AirflowFailException`` (never retried) with the reason in one line."""
    from airflow.sdk.exceptions import AirflowFailException

    # str() of a KeyError (an unknown factor set) is its quoted repr; its text is the argument.
    reason = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return AirflowFailException(" ".join(reason.split()))
