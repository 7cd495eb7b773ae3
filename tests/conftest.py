"""Shared fixtures. Service fixtures (Mosquitto, influxd, Airflow) live in tests/services.py and
start once per session, on free ports, in a temporary run directory; every test gets its own
InfluxDB database so tests stay independent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).parent / "data"

pytest_plugins = ["tests.services"]


def load_steel() -> pd.DataFrame:
    """The UCI steel plant's 15-minute kWh with true period-ending timestamps (midnight rows fixed)."""
    frame = pd.read_csv(DATA / "steel_industry_data.csv", encoding="utf-8-sig", usecols=["date", "Usage_kWh"])
    stamp = pd.to_datetime(frame["date"], format="%d/%m/%Y %H:%M")
    midnight = (stamp.dt.hour == 0) & (stamp.dt.minute == 0)
    frame["end"] = stamp + pd.to_timedelta(midnight.astype(int), unit="D")
    frame["energy_kwh"] = frame["Usage_kWh"].astype(float)
    return frame[["end", "energy_kwh"]]


@pytest.fixture(scope="session")
def steel() -> pd.DataFrame:
    return load_steel()
