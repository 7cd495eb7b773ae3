"""Replay a real interval-energy file as a meter's consumption.

The format is the UCI "Steel Industry Energy Consumption" CSV (dataset 851, CC BY 4.0): ``date``
as ``dd/mm/YYYY HH:MM``, period-ending, and ``Usage_kWh`` per 15 minutes. Its midnight rows carry
the day that is ending (``01/01/2018 00:00`` follows ``01/01/2018 23:45`` and means 2018-01-02
00:00), so they are moved one day on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def load_interval_kwh(path: Path) -> pd.DataFrame:
    """``end`` (naive local period-end) and ``energy_kwh`` per interval, midnight rows corrected."""
    frame = pd.read_csv(path, encoding="utf-8-sig", usecols=["date", "Usage_kWh"])
    stamp = pd.to_datetime(frame["date"], format="%d/%m/%Y %H:%M")
    midnight = (stamp.dt.hour == 0) & (stamp.dt.minute == 0)
    end = stamp + pd.to_timedelta(midnight.astype(int), unit="D")
    return pd.DataFrame({"end": end, "energy_kwh": frame["Usage_kWh"].astype(float)})


def replay_on(times: pd.DatetimeIndex, data: pd.DataFrame, timezone: str) -> np.ndarray:
    """The file's energy for the intervals ending at ``times``, matched by local wall-clock time; times
    the file does not have (another year) are matched by month, day and time (29 February by the 28th)."""
    local = times.tz_convert(timezone).tz_localize(None)
    series = data.set_index("end")["energy_kwh"]
    series = series[~series.index.duplicated()]
    values = series.reindex(local)
    missing = values.isna().to_numpy()
    if missing.any():  # another year: match by month, day and time in the file's year
        year = int(data["end"].iloc[len(data) // 2].year)
        mapped = pd.DatetimeIndex(
            [t.replace(year=year, day=min(t.day, 28) if t.month == 2 else t.day) for t in local[missing]]
        )
        values.iloc[missing] = series.reindex(mapped).to_numpy()
    result: np.ndarray = values.fillna(0.0).to_numpy()
    return result
