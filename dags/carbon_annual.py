"""
### carbon_annual

One run per calendar year in the park's time zone (the registry's `park.timezone`), for the year
that just ended, from the year the park's metering started (`park.metering_start`).

**settle**: checks that `carbon_monthly` ran for all twelve months, that no month has readings
stored after it ran (`LATE_DATA`) and that every enterprise has data in every month
(`MONTH_COVERAGE`) — otherwise it fails at once and names the months to clear and re-run, or to
accept as missing with the run parameter `accept_missing_months` (e.g. `{"accept_missing_months":
["2026-03"]}`); a year without any data is never settled — then scores the whole year and writes the
settled `CREDITS_ANNUAL` (stamped at 1 January, local time) and `RUN/reports/YYYY/`, books the year
into the credit ledger (surpluses issued, deficits owed by `PARKCARBON_LEDGER__DEADLINE_MONTH_DAY`
of the next year) and writes `COMPLIANCE` for the year and the one before. Re-running replaces the
year's points; the ledger books only differences, as correcting entries. The task body lives in
`pipeline.annual`; nothing here touches the network at parse time.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from park.registry import metering_start_of, park_of
from park.settings import Settings

# The registry is the one source of the park's time zone and of the day its metering started (the
# first data interval); reading its file is local and cheap.
PARK = park_of(Settings().registry)
PARK_TZ = PARK.timezone
# The first interval is the year the park's metering started in.
START = pendulum.datetime(metering_start_of(PARK).year, 1, 1, tz=PARK_TZ)


@dag(
    schedule=CronDataIntervalTimetable("0 0 1 1 *", timezone=PARK_TZ),
    start_date=START,
    catchup=True,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(hours=6)},
    tags=["parkcarbon", "annual"],
    params={
        "accept_missing_months": Param(
            [],
            type="array",
            items={"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
            description="months (YYYY-MM) to settle without data: the enterprises lacking them are scored on the"
            " months they have, value added prorated",
        )
    },
    doc_md=__doc__,
)
def carbon_annual() -> None:
    @task
    def settle() -> dict[str, object]:
        from pipeline.annual import settle_year
        from pipeline.checks import failing_fast, run_start

        context = get_current_context()
        accept = [str(p) for p in context["params"]["accept_missing_months"]]
        settings = Settings()
        with failing_fast(settings.influx):
            # The year the run's logical date lies in (a scheduled run's: 1 January, local time).
            year = run_start(context.get("logical_date"), context.get("data_interval_start"), PARK_TZ).year
            return settle_year(settings, year, accept)

    settle()


carbon_annual_dag = carbon_annual()
