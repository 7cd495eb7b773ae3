"""What a run of the pipeline refuses before it computes anything: a month that has not ended yet or
that lies before the park's metering start. These are wrong inputs, not transient faults: the run
fails at once with one line that says why, and retrying cannot help."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from park.month import Month
from park.registry import Registry, RegistryError, metering_start_of
from scoring.factors import UnknownFactorSetError
from scoring.inputs import InputError
from scoring.policy import PolicyError


class WrongInputError(ValueError):
    """A run that cannot succeed as asked (a wrong month, a bad file): fail it, do not retry it."""


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


# Errors that no retry can mend: the run's inputs are wrong.
WRONG_INPUTS = (WrongInputError, InputError, RegistryError, UnknownFactorSetError, PolicyError)


@contextmanager
def failing_fast() -> Iterator[None]:
    """Around a task body: a wrong input fails the task at once with its one-line reason (Airflow's
    ``AirflowFailException``, which is not retried); anything else may be transient and is retried."""
    try:
        yield
    except WRONG_INPUTS as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(str(exc)) from None
