"""``parkcarbon simulate``: a simulated park backfilled over MQTT, with ground truth."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from park.registry import Registry
from park.settings import Settings
from simulators.publisher import PublishStats


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("simulate", help="publish a simulated park's meter readings over MQTT")
    p.add_argument("--registry", type=Path, help="registry YAML (default: settings, the demo park)")
    p.add_argument("--start", type=date.fromisoformat, required=True, help="first day, YYYY-MM-DD (park time)")
    p.add_argument("--end", type=date.fromisoformat, required=True, help="day after the last, YYYY-MM-DD")
    p.add_argument("--interval", default="15min", help="reading interval, e.g. 15min, 5min, 1h")
    p.add_argument("--mode", choices=["backfill"], default="backfill", help="backfill: as fast as the broker acks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-intervals", type=int, default=4, help="intervals per gateway message (store-and-forward)")
    p.add_argument("--truth", type=Path, help="write the ground truth into this directory")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from park.registry import load_registry
    from park.services import ServiceError, load_credentials
    from park.settings import Settings
    from pipeline.runtime import settings_for_run_dir

    settings = settings_for_run_dir(Settings())
    registry = load_registry(args.registry or settings.registry)
    tz = ZoneInfo(registry.park.timezone)
    start = datetime.combine(args.start, time(), tz)
    end = datetime.combine(args.end, time(), tz)
    if end <= start:
        print("parkcarbon simulate: --end must be after --start", file=sys.stderr)
        return 2
    try:
        credentials = load_credentials(settings.run_dir)
    except ServiceError as exc:
        print(f"parkcarbon simulate: {exc}", file=sys.stderr)
        return 2
    stats = backfill(
        registry,
        start,
        end,
        pd.Timedelta(args.interval),
        args.seed,
        settings,
        credentials,
        args.batch_intervals,
        args.truth,
    )
    return 0 if stats.refused == 0 else 1


def backfill(
    registry: Registry,
    start: datetime,
    end: datetime,
    interval: pd.Timedelta,
    seed: int,
    settings: Settings,
    credentials: dict[str, str],
    batch_intervals: int,
    truth_dir: Path | None,
) -> PublishStats:
    """Simulate and publish; show a progress bar with the rate; write the truth if asked."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from simulators.park import simulate
    from simulators.publisher import publish_park
    from simulators.truth import write_truth

    park = simulate(registry, start, end, interval, seed)
    total = int(park.registers.notna().to_numpy().sum())
    columns = [
        TextColumn("[bold]backfill[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>8.0f} readings/s"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task("publish", total=total, rate=0.0)
        started = datetime.now()

        def advance(count: int) -> None:
            elapsed = (datetime.now() - started).total_seconds() or 1e-9
            done = progress.tasks[0].completed + count
            progress.update(task, advance=count, rate=done / elapsed)

        stats = publish_park(park, settings.mqtt, credentials, batch_intervals, on_progress=advance)
    print(
        f"published {stats.readings} readings in {stats.messages} messages from {len(registry.gateways)} gateways "
        f"in {stats.seconds:.1f} s: {stats.readings_per_s:,.0f} readings/s (QoS 1, all acknowledged)"
    )
    if stats.refused:
        print(f"the broker refused {stats.refused} messages: {stats.refusals}", file=sys.stderr)
    if truth_dir:
        write_truth(park, truth_dir, seed, stats.readings)
        print(f"ground truth: {truth_dir}")
    return stats
