"""Ground truth: exactly what the simulator published, per meter and interval and per month."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from simulators.park import SimulatedPark, truth_from_registers


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


def write_truth(park: SimulatedPark, out: Path, seed: int, readings_published: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    interval_truth(park).to_csv(out / "intervals.csv.gz", index=False)
    monthly_truth(park).to_csv(out / "monthly.csv", index=False)
    summary = {
        "registry_version": park.registry.version,
        "start": park.times[0].isoformat(),
        "end": park.times[-1].isoformat(),
        "interval_s": int((park.times[1] - park.times[0]).total_seconds()),
        "seed": seed,
        "readings_published": readings_published,
        "faults": [],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return out
