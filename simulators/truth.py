"""Ground truth: exactly what the simulator published, per meter and interval and per month."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from park.registry import Registry, parse_registry
from simulators.faults import FaultedRun
from simulators.park import SimulatedPark, truth_from_registers
from simulators.publisher import PublishStats


def interval_truth(park: SimulatedPark) -> pd.DataFrame:
    """time (end of the interval, UTC), meter, register, consumption (unit of the meter, multiplier applied)."""
    frame = truth_from_registers(park).iloc[1:]  # the first timestamp only starts the registers
    long = frame.stack(level=[0, 1], future_stack=True).rename("consumption").reset_index()
    long.columns = ["time", "meter", "register", "consumption"]
    return long


def monthly_truth(park: SimulatedPark) -> pd.DataFrame:
    """Consumption per meter, register and local calendar month (an interval belongs to the month
    in which it ends, its end excluded: (t - interval, t])."""
    intervals = interval_truth(park)
    step = park.times[1] - park.times[0]
    starts = (intervals["time"] - step).dt.tz_convert(park.registry.park.timezone)
    intervals["month"] = starts.dt.strftime("%Y-%m")
    monthly = intervals.groupby(["meter", "register", "month"], as_index=False)["consumption"].sum()
    meters = park.registry.meter_by_id
    monthly["enterprise"] = monthly["meter"].map(lambda m: meters[m].enterprise)
    monthly["workshop"] = monthly["meter"].map(lambda m: meters[m].workshop or "")
    monthly["carrier"] = monthly["meter"].map(lambda m: meters[m].carrier.value)
    monthly["role"] = monthly["meter"].map(lambda m: meters[m].role.value)
    monthly["unit"] = monthly["meter"].map(lambda m: meters[m].unit)
    return monthly


def write_truth(run: FaultedRun, out: Path, seed: int, stats: PublishStats) -> Path:
    """intervals.csv.gz and monthly.csv (what the meters counted), faults.json (what was injected and
    what a pipeline should make of it), registry_events.yaml (meter changes for the registry) and
    summary.json (counts, including the quarantine and broker refusals to expect)."""
    out.mkdir(parents=True, exist_ok=True)
    interval_truth(run.park).to_csv(out / "intervals.csv.gz", index=False)
    monthly_truth(run.park).to_csv(out / "monthly.csv", index=False)
    (out / "faults.json").write_text(json.dumps(run.faults_json(), indent=1, ensure_ascii=False) + "\n")
    (out / "registry_events.yaml").write_text(
        "# meter replacements the simulator made: add each to its meter's `replacements` in the registry\n"
        + yaml.safe_dump(run.registry_events, sort_keys=False)
    )
    park = run.park
    summary = {
        "registry_version": park.registry.version,
        "start": park.times[0].isoformat(),
        "end": park.times[-1].isoformat(),
        "interval_s": int((park.times[1] - park.times[0]).total_seconds()),
        "seed": seed,
        "messages_sent": stats.messages - stats.status_messages,
        "readings_sent": stats.readings,
        "distinct_readings": int(run.published.notna().to_numpy().sum()),
        "expected_quarantine": run.expected_quarantine,
        "expected_refused_by_broker": run.expected_refused,
        "refused_by_broker": stats.refused,
        "faults": len(run.faults),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out


def registry_with_events(registry: Registry, events: list[dict[str, object]]) -> Registry:
    """``registry`` with the simulator's meter replacements added, as an operator would record them."""
    data = registry.model_dump(mode="json")
    for event in events:
        meter = next(m for m in data["meters"] if m["id"] == event["meter"])
        meter["replacements"].append({k: v for k, v in event.items() if k != "meter"})
    return parse_registry(data, f"{registry.version} + simulated replacements")
