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


# A test that uses a real service carries the service's declared marker, so ``-m "not services"``
# (and the like) selects exactly the tests that need none; collection fails for a test without it.
SERVICE_FIXTURES = {
    "local_services": "services",
    "ports": "services",
    "settings": "services",
    "store": "services",
    "airflow_home": "airflow",
    "postgres": "postgres",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [
        f"{item.nodeid} uses the fixture {fixture} without @pytest.mark.{marker}"
        for item in items
        for fixture, marker in SERVICE_FIXTURES.items()
        if fixture in getattr(item, "fixturenames", ()) and item.get_closest_marker(marker) is None
    ]
    if missing:
        raise pytest.UsageError("service-backed tests must carry their marker:\n" + "\n".join(missing))
