"""
### carbon_annual

One run per calendar year in the park's time zone (the registry's `park.timezone`), for the year that just ended.

**settle**: checks that `carbon_monthly` ran for all twelve months and that no month has readings
stored after it ran (`LATE_DATA`) — otherwise it fails and names the months to clear and re-run —
then scores the whole year and writes the settled `CREDITS_ANNUAL` (stamped at 1 January, local
time) and `RUN/reports/YYYY/`, books the year into the credit ledger (surpluses issued, deficits
owed by `PARKCARBON_LEDGER__DEADLINE_MONTH_DAY` of the next year) and writes `COMPLIANCE` for the
year and the one before. Re-running replaces the year's points; the ledger books only differences,
as correcting entries. The task body lives in `pipeline.annual`; nothing here touches the network
at parse time.
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


@dag(
    schedule=CronDataIntervalTimetable("0 0 1 1 *", timezone=PARK_TZ),
    start_date=pendulum.datetime(2025, 1, 1, tz=PARK_TZ),
    catchup=True,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(hours=6)},
    tags=["parkcarbon", "annual"],
    doc_md=__doc__,
)
def carbon_annual() -> None:
    @task
    def settle() -> dict[str, object]:
        from pipeline.annual import settle_year

        start = get_current_context()["data_interval_start"]
        assert start is not None, "carbon_annual runs on data intervals; trigger it for a year"
        return settle_year(Settings(), pendulum.instance(start).in_timezone(PARK_TZ).year)

    settle()


carbon_annual_dag = carbon_annual()
