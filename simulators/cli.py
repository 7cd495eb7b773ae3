"""``parkcarbon simulate``: a simulated park over MQTT, with faults on demand and ground truth."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from park.registry import Registry
from park.settings import Settings
from simulators.faults import KINDS, FaultedRun, FaultSpecError, inject, parse_faults
from simulators.publisher import PublishStats


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


def run(args: argparse.Namespace) -> int:
    from park.registry import load_registry
    from park.services import ServiceError, load_credentials
    from pipeline.runtime import settings_for_run_dir
    from simulators.replay import load_interval_kwh

    settings = settings_for_run_dir(Settings())
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


def simulate_run(
    registry: Registry,
    start: datetime,
    end: datetime,
    interval: pd.Timedelta,
    seed: int,
    faults: dict[str, int] | None = None,
    replays: dict[str, pd.DataFrame] | None = None,
    batch_intervals: int = 4,
) -> FaultedRun:
    """Simulate the park, replay files onto meters, inject faults and plan the messages."""
    from simulators.park import simulate
    from simulators.replay import replay_on

    times = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"), freq=interval)
    replayed: dict[str, np.ndarray] = {
        meter: replay_on(times, data, registry.park.timezone) for meter, data in (replays or {}).items()
    }
    park = simulate(registry, start, end, interval, seed, replayed)
    return inject(park, faults or {}, batch_intervals, seed)


def publish_run(
    run: FaultedRun, settings: Settings, credentials: dict[str, str], speed: float | None = None
) -> PublishStats:
    """Send the plan with a progress bar and the rate; print what was sent."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from simulators.publisher import send_plan

    total = sum(m.readings for m in run.plan)
    label = "backfill" if speed is None else f"live x{speed:g}"
    columns = [
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8.0f} readings/s"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns) as progress:
        task = progress.add_task("publish", total=total, rate=0.0)
        started = datetime.now()

        def advance(count: int) -> None:
            elapsed = (datetime.now() - started).total_seconds() or 1e-9
            progress.update(task, advance=count, rate=(progress.tasks[0].completed + count) / elapsed)

        stats = send_plan(run.park.registry, run.plan, settings.mqtt, credentials, advance, speed)
    print(
        f"published {stats.readings} readings in {stats.messages - stats.status_messages} messages from "
        f"{len({m.gateway for m in run.plan})} gateways in {stats.seconds:.1f} s: "
        f"{stats.readings_per_s:,.0f} readings/s (QoS 1, all acknowledged)"
    )
    if run.faults:
        kinds = pd.Series([f.kind for f in run.faults]).value_counts().to_dict()
        print(f"faults injected: {kinds}; broker refusals {stats.refused} (expected {run.expected_refused})")
    elif stats.refused:
        print(f"the broker refused {stats.refused} messages: {stats.refusals}", file=sys.stderr)
    return stats
