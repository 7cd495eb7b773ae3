"""Real services for integration and end-to-end tests, started once per session and stopped by PID.

Mosquitto and influxd run from a temporary run directory on free ports through the same code as
``parkcarbon services up``; each test that writes to InfluxDB gets a database of its own, created by
the admin account with each role's privilege on it, and works with the pipeline role's account (it
reads and writes, as the monthly pipeline does).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from park.registry import Registry, load_registry
from park.settings import DEMO_REGISTRY, InfluxSettings, LedgerSettings, MqttSettings, Settings
from park.store import InfluxStore
from parkcarbon.runtime import settings_for_run_dir
from parkcarbon.services import LocalServices, Ports, free_ports
from tests.postgres import PostgresServer

_db_counter = itertools.count()


@pytest.fixture(scope="session")
def demo_registry() -> Registry:
    return load_registry(DEMO_REGISTRY)


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def local_services(run_dir: Path, demo_registry: Registry) -> Iterator[LocalServices]:
    services = LocalServices(run_dir)
    services.up(demo_registry, free_ports())
    yield services
    services.down()


@pytest.fixture(scope="session")
def ports(local_services: LocalServices) -> Ports:
    found = local_services.ports()
    assert found is not None
    return found


@pytest.fixture
def settings(
    local_services: LocalServices, ports: Ports, run_dir: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> Settings:
    """Settings pointing at the session's services, with an InfluxDB database and a ledger of this
    test's own; the database is created (by the admin) before the test, and the test has the pipeline
    role's account (ALL on the database)."""
    database = f"t{next(_db_counter)}_{request.node.name[:40]}".replace("[", "_").replace("]", "_").replace("-", "_")
    local_services.create_database(database)
    own = Settings(
        run_dir=run_dir,
        mqtt=MqttSettings(port=ports.mqtt),
        influx=InfluxSettings(port=ports.influx_http, rpc_port=ports.influx_rpc, database=database),
        ledger=LedgerSettings(url=SecretStr(f"sqlite:///{tmp_path / 'ledger.sqlite'}")),
    )
    return settings_for_run_dir(own, role="pipeline")


@pytest.fixture
def store(settings: Settings, local_services: LocalServices) -> Iterator[InfluxStore]:
    """The test's database with the pipeline role's account; dropped afterwards by the admin."""
    with InfluxStore(settings.influx) as influx:
        yield influx
    local_services.drop_database(settings.influx.database)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Airflow metadata database for the session, migrated once, before anything imports Airflow."""
    from parkcarbon.airflow_env import prepare_airflow

    home = tmp_path_factory.mktemp("airflow")
    os.environ["AIRFLOW_HOME"] = str(home)
    return prepare_airflow(home)


@pytest.fixture
def clean_environ() -> Iterator[None]:
    """Undo what a test exports into os.environ (the demo exports its settings for Airflow's tasks)."""
    saved = dict(os.environ)
    yield
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL (Debian's ``postgresql``) in a temporary data directory on a free port."""
    server = PostgresServer.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty ledger database: an SQLite file, or a database of this test's own on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"t{next(_db_counter)}")
