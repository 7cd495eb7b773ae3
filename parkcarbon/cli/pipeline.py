"""``parkcarbon demo`` and ``parkcarbon monthly``."""

from __future__ import annotations

import argparse
import re
import sys
import time

from park.settings import Settings


def _period(text: str) -> str:
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a month as YYYY-MM")
    return text


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser("demo", help="simulated park → MQTT → collector → InfluxDB → monthly DAG → credits")
    demo.add_argument("--month", type=_period, help="YYYY-MM (default: the previous month)")
    demo.add_argument("--seed", type=int, default=2026)
    demo.set_defaults(handler=_demo)
    monthly = subparsers.add_parser("monthly", help="run the monthly DAG for one month (dag.test())")
    monthly.add_argument("month", type=_period)
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
    from parkcarbon.airflow_env import prepare_airflow, run_month
    from parkcarbon.runtime import export_settings
    from reports.monthly import enterprise_table, format_table

    export_settings(settings)
    prepare_airflow(settings.run_dir)
    try:
        run_month(args.month)
    except RuntimeError as exc:
        print(f"parkcarbon monthly: {exc}", file=sys.stderr)
        return 1
    print(format_table(enterprise_table(settings, args.month)))
    return 0
