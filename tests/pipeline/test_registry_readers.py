"""Issue #21: with ``registry_source = "database"`` the pipeline's remaining readers take the registry
from the database, as of what they compute — an enterprise, gateway and meter added there (and absent
from the registry file) get a ledger account, a row of the month's enterprise table and the day's
meter quality; a month before the addition has none of them. On a real InfluxDB."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from ledger import registry_store
from ledger.db import make_engine, migrate
from ledger.schema import accounts
from ledger.settlement import open_ledger
from park.measurements import METER_QUALITY_DAILY
from park.registry import load_registry
from park.settings import DEMO_REGISTRY, LedgerSettings
from pipeline.quality import compute_day_quality
from pipeline.registry_source import registry_of_period
from reports.monthly import enterprise_table
from tests.demo_rows import demo_enterprise_rows

pytestmark = pytest.mark.services

START, ADDED = date(2026, 1, 1), date(2026, 3, 1)
METER = {"gateway": "gw-echo", "enterprise": "ECHO", "carrier": "grid_electricity", "role": "main", "unit": "kWh"}


@pytest.fixture
def database_mode(settings, tmp_path):
    """The demo registry imported from 2026-01-01 and ECHO (gateway, meter) added from 2026-03-01; the
    settings read it from there, their registry file being the demo's (without ECHO)."""
    url = f"sqlite:///{tmp_path / 'platform.sqlite'}"
    engine = make_engine(url)
    migrate(engine)
    rows = demo_enterprise_rows()
    with engine.begin() as conn:
        registry_store.import_registry(conn, load_registry(DEMO_REGISTRY), rows, START, "office", "pilot")
        for kind, document in (
            (registry_store.ENTERPRISE, {"id": "ECHO", "name": "Echo Ceramics", "industry": "C30"}),
            (registry_store.GATEWAY, {"id": "gw-echo", "enterprise": "ECHO"}),
            (registry_store.METER, {"id": "ECHO-M1", **METER}),
        ):
            registry_store.put_entry(conn, kind, document, ADDED, "olga", "Echo joins the park")
    engine.dispose()
    return settings.model_copy(
        update={"registry_source": "database", "registry": DEMO_REGISTRY, "ledger": LedgerSettings(url=SecretStr(url))}
    )


def test_readers_take_the_database_registry_of_what_they_compute(database_mode, store):
    assert "ECHO" not in load_registry(database_mode.registry).enterprise_by_id  # the file does not have it

    with open_ledger(database_mode) as ledger, ledger.engine.connect() as conn:
        opened = set(conn.execute(select(accounts.c.enterprise_id)).scalars())
    assert "ECHO" in opened and "E01" in opened

    march, february = registry_of_period(database_mode, "2026-03"), registry_of_period(database_mode, "2026-02")
    assert "ECHO" in set(enterprise_table(database_mode, "2026-03", march)["enterprise"])
    assert "ECHO" not in set(enterprise_table(database_mode, "2026-02", february)["enterprise"])

    query = f'SELECT "readings", "expected" FROM {METER_QUALITY_DAILY.q} WHERE "meter" = \'ECHO-M1\''
    compute_day_quality(database_mode, "2026-02-25")  # before ECHO joined: no row of its meter
    assert len(store.query(query)) == 0
    compute_day_quality(database_mode, "2026-03-05")  # its month: its meter, silent (no readings stored)
    frame = store.query(query)
    assert len(frame) == 1 and float(frame["readings"].iloc[0]) == 0.0
