"""
### carbon_monthly

One run per calendar month in the park's time zone (the registry's `park.timezone`), for the month
that just ended, from the month the park's metering started (`park.metering_start`). A month that
has not ended, or lies before the metering start, fails at once; so does a wrong input (a bad file,
an unknown factor set), an InfluxDB that does not answer when a task starts (a wrong host or port)
or refuses its account: retries (2, 5 minutes apart) are for transient faults.

A run computes the month its logical date lies in, in the park's time zone: a scheduled run's
logical date is the month's start (October's: 2026-10-01T00:00:00+08:00 = 2026-09-30T16:00:00Z);
`airflow dags trigger carbon_monthly --logical-date 2026-09-15T00:00:00+08:00` computes September.

1. **groups**: the registry's enterprises in groups of about `monthly.group_meters` meters
   (`PARKCARBON_MONTHLY__GROUP_METERS`, 2,000 by default; whole enterprises, at most 256 groups,
   far below Airflow's `max_map_length` of 1024).
2. **activity**, one mapped task per group (dynamic task mapping), each written independently:
   cumulative registers from InfluxDB (with the readings around the month) → per-meter consumption
   with rollover, reset, gap and month-boundary handling → `ACTIVITY_MONTHLY`, `DATA_QUALITY` and
   `MONTH_COVERAGE` of the group's enterprises: an enterprise without readings has no data that
   month, never zeros. A group replaces exactly its enterprises' points of the month, so a retry
   (after a worker died) writes the same points and the other groups' stay.
3. **park_activity** (the reduce): every group finished and together they are the registry, each
   enterprise once; the points of enterprises no longer in the registry go; `LATE_DATA` is cleared.
4. **scores**: metered plus manual activity → `EMISSIONS_MONTHLY` (GB/T 32150), year-to-date
   `CREDITS`, grades and ratings (compliance with last year's obligation from the credit ledger),
   `NEAR_ZERO_PROGRESS`; a month in which the park has no data writes none of them. Needs every
   enterprise (industry means), so it runs after the reduce.
5. **report**: `RUN/reports/YYYY-MM/`: the park's and each enterprise's HTML report (bilingual,
   with charts, factors and their sources), CSV files per measurement, a text summary.

Each task has an `execution_timeout` several times its measured work (docs/operations.md §7: 2,000 meters
from raw readings take 39 s), so a hung InfluxDB fails the try instead of holding a worker forever.
Retries are 5 minutes apart (Airflow's `[core] default_task_retry_delay`, 300 s).

Every task replaces exactly its month's points, so clearing a run recomputes that month, late data
included. Task bodies live in `pipeline.monthly`; nothing here touches the network at parse time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from park.registry import metering_start_of, park_of
from park.settings import Settings

# The registry is the one source of the park's time zone and of the day its metering started (the
# first data interval); reading its file is local and cheap.
PARK = park_of(Settings().registry)
PARK_TZ = PARK.timezone
# The first interval is the month the park's metering started in.
START = pendulum.datetime(metering_start_of(PARK).year, metering_start_of(PARK).month, 1, tz=PARK_TZ)


def _period() -> str:
    """The month the run's logical date lies in, in the park's time zone: a scheduled run's logical
    date is its month's start (1 October 00:00 +08:00 = 30 September 16:00 UTC computes October); a
    run triggered with ``--logical-date 2026-09-15T00:00:00+08:00`` computes September."""
    from pipeline.checks import run_period

    context = get_current_context()
    return run_period(context.get("logical_date"), context.get("data_interval_start"), PARK_TZ)


# What each task may take before Airflow fails the try (and retries it): several times the work measured
# in docs/operations.md §7 (the activity of 2,000 meters from raw readings: 39.2 s).
GROUPS_TIMEOUT = timedelta(minutes=2)  # reads the registry file only
GROUP_TIMEOUT = timedelta(minutes=20)  # one group of ~2,000 meters: 39 s measured, 30× for a loaded InfluxDB
REDUCE_TIMEOUT = timedelta(minutes=5)  # three COUNT queries and a few deletes
SCORES_TIMEOUT = timedelta(minutes=30)  # the year's activity of every enterprise, the ledger's compliance
REPORT_TIMEOUT = timedelta(minutes=30)  # one HTML report per enterprise, with charts


@dag(
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone=PARK_TZ),
    start_date=START,
    catchup=True,
    max_active_runs=1,
    # retry_delay is Airflow's [core] default_task_retry_delay (300 s): the end-to-end test shortens it.
    default_args={"retries": 2},
    tags=["parkcarbon", "monthly"],
    doc_md=__doc__,
)
def carbon_monthly() -> None:
    @task(execution_timeout=GROUPS_TIMEOUT)
    def groups() -> list[list[str]]:
        from pipeline.checks import failing_fast
        from pipeline.monthly import month_groups

        with failing_fast():
            return month_groups(Settings(), _period())

    @task(execution_timeout=GROUP_TIMEOUT)
    def activity(enterprises: list[str]) -> dict[str, object]:
        from pipeline.checks import failing_fast
        from pipeline.monthly import compute_group

        settings = Settings()
        with failing_fast(settings.influx):
            return compute_group(settings, _period(), enterprises)

    @task(execution_timeout=REDUCE_TIMEOUT)
    def park_activity(summaries: Sequence[dict[str, object]]) -> dict[str, object]:
        from pipeline.checks import failing_fast
        from pipeline.monthly import finish_activity

        settings = Settings()
        with failing_fast(settings.influx):
            # A slice fetches every group's summary in one request (iterating asks item by item until
            # one is missing, and the task SDK logs that last miss as an error).
            return finish_activity(settings, _period(), list(summaries[:]))

    @task(execution_timeout=SCORES_TIMEOUT)
    def scores(summary: dict[str, object]) -> dict[str, object]:
        from pipeline.checks import failing_fast
        from pipeline.monthly import compute_scores

        settings = Settings()
        with failing_fast(settings.influx):
            return compute_scores(settings, str(summary["period"]))

    @task(execution_timeout=REPORT_TIMEOUT)
    def report(summary: dict[str, object]) -> str:
        from pipeline.checks import failing_fast
        from pipeline.registry_source import registry_of_period
        from reports.monthly import write_month_report

        settings = Settings()
        period = str(summary["period"])
        with failing_fast(settings.influx):
            return str(write_month_report(settings, period, registry_of_period(settings, period)))

    # TaskFlow calls pass XComArgs that Airflow resolves at run time: expand() makes one mapped
    # activity task per group; park_activity gets the list of every group's summary.
    summaries = activity.expand(enterprises=groups())
    report(scores(park_activity(summaries)))  # type: ignore[arg-type]


carbon_monthly_dag = carbon_monthly()
