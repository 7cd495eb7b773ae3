"""``parkcarbon simulate``: a simulated park over MQTT, with faults on demand and ground truth."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from park.settings import Settings
from simulators.faults import KINDS


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("simulate", help="publish a simulated park's meter readings over MQTT")
    p.add_argument("--registry", type=Path, help="registry YAML (default: settings, the demo park)")
    p.add_argument("--start", type=date.fromisoformat, required=True, help="first day, YYYY-MM-DD (park time)")
    p.add_argument("--end", type=date.fromisoformat, required=True, help="day after the last, YYYY-MM-DD")
    p.add_argument("--interval", default="15min", help="reading interval, e.g. 15min, 5min, 1h")
    p.add_argument(
        "--mode",
        choices=["backfill", "live"],
        default="backfill",
        help="backfill: as fast as the broker acks; live: paced by the readings' times",
    )
    p.add_argument("--speed", type=float, default=1.0, help="live mode: simulated seconds per second (60 = 1 min/s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--faults", default="", help=f"e.g. gap:2,reset:1,malformed:8; kinds: {', '.join(KINDS)}")
    p.add_argument(
        "--replay",
        action="append",
        default=[],
        metavar="METER=FILE",
        help="drive a meter with a real 15-minute kWh file (UCI steel-plant format)",
    )
    p.add_argument("--batch-intervals", type=int, default=4, help="intervals per gateway message (store-and-forward)")
    p.add_argument("--truth", type=Path, help="write the ground truth into this directory")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from park.registry import load_registry
    from parkcarbon.services import ServiceError, load_credentials
    from simulators.faults import FaultSpecError, parse_faults
    from simulators.replay import load_interval_kwh
    from simulators.run import publish_run, simulate_run

    registry = load_registry(args.registry or settings.registry)
    tz = ZoneInfo(registry.park.timezone)
    start, end = datetime.combine(args.start, time(), tz), datetime.combine(args.end, time(), tz)
    try:
        if end <= start:
            raise ValueError("--end must be after --start")
        faults = parse_faults(args.faults)
        files = dict(item.split("=", 1) for item in args.replay)
        unknown = set(files) - set(registry.meter_by_id)
        if unknown:
            raise ValueError(f"--replay names meters not in the registry: {sorted(unknown)}")
        replays = {meter: load_interval_kwh(Path(path)) for meter, path in files.items()}
        credentials = load_credentials(settings.run_dir)
    except (ValueError, FaultSpecError, OSError, ServiceError) as exc:
        print(f"parkcarbon simulate: {exc}", file=sys.stderr)
        return 2
    run_ = simulate_run(
        registry, start, end, pd.Timedelta(args.interval), args.seed, faults, replays, args.batch_intervals
    )
    stats = publish_run(run_, settings, credentials, speed=args.speed if args.mode == "live" else None)
    if args.truth:
        from simulators.truth import write_truth

        write_truth(run_, args.truth, args.seed, stats)
        print(f"ground truth: {args.truth}")
    return 0 if stats.refused == run_.expected_refused else 1
