"""A simulated park's run: simulate, replay real files onto meters, inject faults, plan and publish."""

from __future__ import annotations

import sys
from datetime import datetime

import numpy as np
import pandas as pd

from park.registry import Registry
from park.settings import Settings
from simulators.faults import FaultedRun, inject
from simulators.publisher import PublishStats


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
