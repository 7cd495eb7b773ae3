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


def day(text: str) -> date:
    """An argument ``YYYY-MM-DD``."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day as YYYY-MM-DD") from None


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("simulate", help="publish a simulated park's meter readings over MQTT")
    p.add_argument("--registry", type=Path, help="registry YAML (default: settings, the demo park)")
    p.add_argument("--start", type=day, required=True, help="first day, YYYY-MM-DD (park time)")
    p.add_argument("--end", type=day, required=True, help="day after the last, YYYY-MM-DD")
    p.add_argument("--interval", default="15min", help="reading interval, e.g. 15min, 5min, 1h")
    p.add_argument(
        "--mode",
        choices=["backfill", "live"],
        default="backfill",
        help="backfill: as fast as the broker acks; live: paced by the readings' times",
    )
    p.add_argument("--speed", type=float, default=1.0, help="live mode: simulated seconds per second (60 = 1 min/s)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed sends the same readings")
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
    """Check what can fail at once (arguments, files, the broker, the credentials), then simulate (a
    few seconds to half a minute, said before it starts), then publish with a progress bar."""
    import time as clock

    from park.registry import load_registry
    from parkcarbon.cli.errors import CliError, require_broker
    from parkcarbon.services import load_credentials
    from simulators.faults import parse_faults
    from simulators.replay import load_interval_kwh
    from simulators.run import publish_run, simulate_run

    if args.end <= args.start:
        raise CliError(f"--end {args.end} must be after --start {args.start}")
    try:
        interval = pd.Timedelta(args.interval)
    except ValueError:
        raise CliError(f"--interval {args.interval!r} is not a duration such as 15min, 5min or 1h") from None
    registry = load_registry(args.registry or settings.registry)
    tz = ZoneInfo(registry.park.timezone)
    start, end = datetime.combine(args.start, time(), tz), datetime.combine(args.end, time(), tz)
    faults = parse_faults(args.faults)
    bad = [item for item in args.replay if "=" not in item]
    if bad:
        raise CliError(f"--replay {bad[0]!r} is not METER=FILE")
    files = dict(item.split("=", 1) for item in args.replay)
    unknown = set(files) - set(registry.meter_by_id)
    if unknown:
        raise CliError(f"--replay names meters not in the registry: {', '.join(sorted(unknown))}")
    replays = {meter: load_interval_kwh(Path(path)) for meter, path in files.items()}
    require_broker(settings)
    credentials = load_credentials(settings.run_dir)

    print(
        f"simulating {len(registry.meters)} meters on {len(registry.gateways)} gateways from {args.start} to"
        f" {args.end} every {args.interval} (seed {args.seed}) ...",
        flush=True,
    )
    began = clock.monotonic()
    run_ = simulate_run(registry, start, end, interval, args.seed, faults, replays, args.batch_intervals)
    readings = sum(m.readings for m in run_.plan)
    print(
        f"simulated {readings:,} readings in {len(run_.plan):,} messages in {clock.monotonic() - began:.1f} s;"
        f" publishing to mqtt://{settings.mqtt.host}:{settings.mqtt.port}",
        flush=True,
    )
    stats = publish_run(run_, settings, credentials, speed=args.speed if args.mode == "live" else None)
    if args.truth:
        from simulators.truth import write_truth

        write_truth(run_, args.truth, args.seed, stats)
        print(f"ground truth: {args.truth}")
    if stats.refused != run_.expected_refused:
        print(
            f"parkcarbon simulate: the broker refused {stats.refused} message(s), expected {run_.expected_refused}",
            file=sys.stderr,
        )
        return 1
    return 0
