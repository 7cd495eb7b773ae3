"""
### carbon_monthly

One run per calendar month in the park's time zone (the registry's `park.timezone`), for the month that just ended.

1. **activity**: cumulative registers from InfluxDB (with the readings around the month) → per-meter
   consumption with rollover, reset, gap and month-boundary handling → `ACTIVITY_MONTHLY`, `DATA_QUALITY`.
2. **scores**: metered plus manual activity → `EMISSIONS_MONTHLY` (GB/T 32150), year-to-date
   `CREDITS`, grades and ratings (compliance with last year's obligation from the credit ledger),
   `NEAR_ZERO_PROGRESS`.
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

from park.registry import park_timezone
from park.settings import Settings

# The registry is the one source of the park's time zone; reading its file is local and cheap.
PARK_TZ = park_timezone(Settings().registry)


def _period() -> str:
    start = get_current_context()["data_interval_start"]
    assert start is not None, "carbon_monthly runs on data intervals; trigger it for a month"
    local = pendulum.instance(start).in_timezone(PARK_TZ)
    return f"{local.year:04d}-{local.month:02d}"


@dag(
    schedule=CronDataIntervalTimetable("0 0 1 * *", timezone=PARK_TZ),
    start_date=pendulum.datetime(2025, 1, 1, tz=PARK_TZ),
    catchup=True,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["parkcarbon", "monthly"],
    doc_md=__doc__,
)
def carbon_monthly() -> None:
    @task
    def activity() -> dict[str, object]:
        from pipeline.monthly import compute_activity

        return compute_activity(Settings(), _period())

    @task
    def scores(summary: dict[str, object]) -> dict[str, object]:
        from pipeline.monthly import compute_scores

        return compute_scores(Settings(), str(summary["period"]))

    @task
    def report(summary: dict[str, object]) -> str:
        from reports.monthly import write_month_report

        return str(write_month_report(Settings(), str(summary["period"])))

    # TaskFlow calls pass XComArgs that Airflow resolves to the upstream task's dict at run time.
    report(scores(activity()))  # type: ignore[arg-type]


carbon_monthly_dag = carbon_monthly()
