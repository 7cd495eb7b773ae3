"""``parkcarbon demo`` and ``parkcarbon monthly``."""

from __future__ import annotations

import argparse
import re
import time

from park.settings import Settings


def _period(text: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a month as YYYY-MM")
    return text


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser("demo", help="simulated park → MQTT → collector → InfluxDB → monthly DAG → credits")
    demo.add_argument("--month", type=_period, help="YYYY-MM (default: the previous month)")
    demo.add_argument("--seed", type=int, default=2026, help="the simulator's random seed (default 2026)")
    demo.set_defaults(handler=_demo)
    monthly = subparsers.add_parser(
        "monthly",
        help="run the monthly DAG for one month (dag.test())",
        description="Run carbon_monthly for a month that has ended: activity, emissions, year-to-date credits,"
        " near-zero progress, data quality and the report RUN/reports/YYYY-MM/. Re-running replaces the month.",
    )
    monthly.add_argument(
        "month", type=_period, help="YYYY-MM, a month that has ended and is not before the metering start"
    )
    monthly.set_defaults(handler=_monthly)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from parkcarbon.demo import print_result, run_demo

    started = time.monotonic()
    result = run_demo(settings, args.month, args.seed)
    print_result(result, settings)
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in result.timings_s.items())
    print(f"demo finished in {time.monotonic() - started:.1f} s ({timings})")
    return 0


def _monthly(args: argparse.Namespace, settings: Settings) -> int:
    """What can fail at once (the registry, the month, InfluxDB) is checked before Airflow starts."""
    from park.month import Month
    from parkcarbon.airflow_env import prepare_airflow, run_month
    from parkcarbon.cli.errors import require_influx
    from parkcarbon.runtime import export_settings
    from pipeline.checks import check_month
    from pipeline.registry_source import registry_of_period
    from reports.monthly import enterprise_table, format_table

    registry = registry_of_period(settings, args.month)  # the file, or the database's month (issue #21)
    check_month(registry, Month.of(args.month, registry.park.timezone))
    require_influx(settings)
    started = time.monotonic()
    export_settings(settings)
    print(f"running carbon_monthly for {args.month} with dag.test() (about 20 s) ...", flush=True)
    prepare_airflow(settings.run_dir)
    run_month(args.month)
    print(format_table(enterprise_table(settings, args.month, registry)))
    report = settings.run_dir / "reports" / args.month / "index.html"
    print(f"\n{args.month} done in {time.monotonic() - started:.1f} s; the report: {report}")
    return 0
