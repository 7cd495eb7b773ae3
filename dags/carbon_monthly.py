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

1. **activity**: cumulative registers from InfluxDB (with the readings around the month) → per-meter
   consumption with rollover, reset, gap and month-boundary handling → `ACTIVITY_MONTHLY`, `DATA_QUALITY`,
   and `MONTH_COVERAGE`: an enterprise without readings has no data that month, never zeros.
2. **scores**: metered plus manual activity → `EMISSIONS_MONTHLY` (GB/T 32150), year-to-date
   `CREDITS`, grades and ratings (compliance with last year's obligation from the credit ledger),
   `NEAR_ZERO_PROGRESS`; a month in which the park has no data writes none of them.
3. **report**: `RUN/reports/YYYY-MM/`: the park's and each enterprise's HTML report (bilingual,
   with charts, factors and their sources), CSV files per measurement, a text summary.

Every task replaces exactly its month's points, so clearing a run recomputes that month, late data
included. Task bodies live in `pipeline.monthly`; nothing here touches the network at parse time.
"""

from __future__ import annotations

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


@dag(
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone=PARK_TZ),
    start_date=START,
    catchup=True,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["parkcarbon", "monthly"],
    doc_md=__doc__,
)
def carbon_monthly() -> None:
    @task
    def activity() -> dict[str, object]:
        from pipeline.checks import failing_fast
        from pipeline.monthly import compute_activity

        settings = Settings()
        with failing_fast(settings.influx):
            return compute_activity(settings, _period())

    @task
    def scores(summary: dict[str, object]) -> dict[str, object]:
        from pipeline.checks import failing_fast
        from pipeline.monthly import compute_scores

        settings = Settings()
        with failing_fast(settings.influx):
            return compute_scores(settings, str(summary["period"]))

    @task
    def report(summary: dict[str, object]) -> str:
        from pipeline.checks import failing_fast
        from reports.monthly import write_month_report

        settings = Settings()
        with failing_fast(settings.influx):
            return str(write_month_report(settings, str(summary["period"])))

    # TaskFlow calls pass XComArgs that Airflow resolves to the upstream task's dict at run time.
    report(scores(activity()))  # type: ignore[arg-type]


carbon_monthly_dag = carbon_monthly()
