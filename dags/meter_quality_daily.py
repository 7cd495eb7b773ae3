"""
### meter_quality_daily

One run per day in the park's time zone (the registry's `park.timezone`), for the day that just ended.

1. **day**: per meter register the day's readings, completeness and hours since its last reading
   (stale past `PARKCARBON_QUALITY__STALE_AFTER_HOURS`) → `METER_QUALITY_DAILY`; per gateway its
   readings, silent meters and announced status (offline if it said so or all its meters were
   silent) → `GATEWAY_QUALITY_DAILY`.
2. **rollup**: each meter register's consumption of the day with its data-quality flags →
   `METER_DAILY` (the same rules as the monthly step; a pair of readings across midnight apportioned
   by time); `carbon_monthly` sums a month's rolled-up days and reads raw readings only for the others.
3. **late_data**: recounts the readings of every month `carbon_monthly` has run (the last 13) and
   writes `LATE_DATA` where more are stored now than the month's run counted: clear that month's
   `carbon_monthly` run to include them.
4. **late_rollups**: rolled-up days of those months whose readings changed since (late readings),
   and the days around them that those readings change, are rolled up again.

No catchup: a new installation starts from today. Task bodies live in `pipeline.quality`.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

from park.registry import metering_start_of, park_of
from park.settings import Settings

# The registry is the one source of the park's time zone and of the day its metering started (the
# first data interval); reading its file is local and cheap.
PARK = park_of(Settings().registry)
PARK_TZ = PARK.timezone
# The first interval is the day the park's metering started.
START = pendulum.instance(datetime.combine(metering_start_of(PARK), time()), tz=PARK_TZ)


def _day() -> str:
    """The day (YYYY-MM-DD) the run's logical date lies in, in the park's time zone (a scheduled run's is
    the day's start)."""
    from pipeline.checks import run_start

    context = get_current_context()
    return run_start(context.get("logical_date"), context.get("data_interval_start"), PARK_TZ).date().isoformat()


@dag(
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone=PARK_TZ),
    start_date=START,
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
    tags=["parkcarbon", "quality"],
    doc_md=__doc__,
)
def meter_quality_daily() -> None:
    @task
    def day() -> dict[str, object]:
        from pipeline.checks import failing_fast
        from pipeline.quality import compute_day_quality

        settings = Settings()
        with failing_fast(settings.influx):
            return compute_day_quality(settings, _day())

    @task
    def late_data(summary: dict[str, object]) -> dict[str, int]:
        import datetime as dt

        from pipeline.checks import failing_fast
        from pipeline.quality import compute_late_data

        settings = Settings()
        with failing_fast(settings.influx):
            return compute_late_data(settings, dt.date.fromisoformat(str(summary["day"])))

    @task
    def rollup() -> dict[str, object]:
        from pipeline.checks import failing_fast
        from pipeline.daily import compute_day_rollup

        settings = Settings()
        with failing_fast(settings.influx):
            return compute_day_rollup(settings, _day())

    @task
    def late_rollups(summary: dict[str, object]) -> dict[str, int]:
        import datetime as dt

        from pipeline.checks import failing_fast
        from pipeline.daily import reroll_late_days

        settings = Settings()
        with failing_fast(settings.influx):
            return reroll_late_days(settings, dt.date.fromisoformat(str(summary["day"])))

    summary = day()
    late_data(summary)  # type: ignore[arg-type]
    late_rollups(rollup())  # type: ignore[arg-type]


meter_quality_daily_dag = meter_quality_daily()
