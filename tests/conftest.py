"""Shared fixtures. Service fixtures (Mosquitto, influxd, Airflow) live in tests/services.py and
start once per session, on free ports, in a temporary run directory; every test gets its own
InfluxDB database so tests stay independent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from simulators.replay import load_interval_kwh

DATA = Path(__file__).parent / "data"

pytest_plugins = ["tests.services"]


@pytest.fixture(scope="session")
def steel() -> pd.DataFrame:
    """The UCI steel plant's 15-minute kWh with true period-ending timestamps (midnight rows fixed)."""
    return load_interval_kwh(DATA / "steel_industry_data.csv")
