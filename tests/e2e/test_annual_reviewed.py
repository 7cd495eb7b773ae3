"""Settlement with ``ledger.issuance = reviewed`` (the platform's stack): the year is settled on real
services and recorded as a result version whose issuance is only proposed, so the ledger holds nothing
of the year; published, final after its window, approved by a park admin, the ledger holds each
enterprise's surplus and owes each deficit, as CREDITS_ANNUAL has them. Settling again with nothing
changed records no new version and books nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from ledger.amounts import credits_to_kg, kg_to_t
from ledger.book import Ledger
from ledger.results import current_version
from park.registry import DEFAULT_TIMEZONE
from park.settings import LedgerSettings
from parkcarbon.runtime import export_settings
from pipeline.annual import settle_year
from pipeline.monthly import compute_activity
from portal import publication
from portal.audit import Actor
from simulators.history import write_registers
from simulators.park import simulate
from tests.e2e.test_annual import TZ, past_park, periods

pytestmark = [pytest.mark.services]
ANALYST = Actor("ana", "park_analyst", None, "local")
ADMIN = Actor("olga", "park_admin", None, "local")


def test_a_reviewed_settlement_books_only_when_a_park_admin_approves(
    settings, store, clean_environ, demo_registry, tmp_path
):
    settings = past_park(settings, tmp_path)
    settings = settings.model_copy(update={"ledger": LedgerSettings(issuance="reviewed")})
    park = simulate(
        demo_registry, datetime(2024, 1, 1, tzinfo=TZ), datetime(2025, 1, 1, tzinfo=TZ), pd.Timedelta("1D"), 5
    )
    write_registers(store, demo_registry, park.registers)
    export_settings(settings)
    for period in periods(2024):
        compute_activity(settings, period)

    summary = settle_year(settings, 2024)
    assert (summary["result_version"], summary["issuance"], summary["issued_tco2"]) == (1, "proposed", 0.0)
    settled = store.query('SELECT * FROM "credits_annual"').set_index("enterprise")["credits_tco2"]
    with Ledger.open(settings.ledger_url, DEFAULT_TIMEZONE) as ledger:
        assert ledger.balances().query("enterprise_id != ''").empty  # proposed: nothing booked
        with ledger.engine.begin() as conn:
            version = current_version(conn, 2024)
            assert version is not None
            today = date(2025, 3, 3)
            ends = publication.publish(conn, ANALYST, version.id, 5, today, datetime.now(UTC))
            publication.finalise(conn, ANALYST, version.id, ends + timedelta(days=1), datetime.now(UTC))
        issued = publication.approve_issuance(ledger, ADMIN, version.id, datetime.now(UTC))
        for enterprise, credits_t in settled.items():
            kg = credits_to_kg(credits_t) if pd.notna(credits_t) else 0
            held = ledger.balances(str(enterprise)).query("vintage == 2024")["amount_t"].sum()
            assert held == float(kg_to_t(max(kg, 0))), enterprise
            assert issued.get(str(enterprise), 0) == max(kg, 0)
            assert ledger.obligation(str(enterprise), 2024)[0] == kg_to_t(max(-kg, 0)), enterprise
        assert ledger.check() == []

    again = settle_year(settings, 2024)  # nothing changed: the same version, nothing booked
    assert (again["result_version"], again["result_version_new"], again["issued_tco2"]) == (1, False, 0.0)
    assert Decimal(0) == Decimal(str(again["obligations_tco2"]))
