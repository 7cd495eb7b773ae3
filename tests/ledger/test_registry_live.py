"""The registry as of today for the running processes (ledger/registry_live.py): the file until the
database holds one; read again on the very next call after any change (an added entry, a closed one),
never re-materialised while nothing changed; an entry from a later month unknown today."""

from __future__ import annotations

from datetime import date

from ledger import registry_store as store
from ledger.registry_live import LiveRegistry
from park.registry import load_registry
from park.settings import DEMO_REGISTRY
from tests.demo_rows import demo_enterprise_rows

START = date(2026, 1, 1)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def test_the_file_until_imported_then_each_change_on_the_next_call(engine):
    demo = load_registry(DEMO_REGISTRY)
    fallback = demo.model_copy(update={"version": "the file"})
    live = LiveRegistry(engine, fallback)
    assert live.current() is fallback and live.loads == 0
    rows = demo_enterprise_rows()
    with engine.begin() as conn:
        store.import_registry(conn, demo, rows, START, "office", "pilot start")
    first = live.current()
    assert first == demo and live.loads == 1
    assert live.current() is first and live.loads == 1  # nothing changed: the same registry, not read again

    this_month = live.today().replace(day=1)
    echo = {"id": "ECHO", "name": "Echo Ceramics", "industry": "C30"}
    with engine.begin() as conn:
        store.put_entry(conn, store.ENTERPRISE, echo, this_month, "olga", "joins the park")
    assert "ECHO" in live.current().enterprise_by_id and live.loads == 2

    later = {"id": "FOXTROT", "name": "Foxtrot Foods", "industry": "C14"}
    with engine.begin() as conn:  # from next month: not in the registry of today
        store.put_entry(conn, store.ENTERPRISE, later, next_month(this_month), "olga", "joins next month")
    assert "FOXTROT" not in live.current().enterprise_by_id and live.loads == 3

    with engine.begin() as conn:  # a closure only (no version added): seen on the next call too
        store.close_entry(conn, store.ENTERPRISE, "ECHO", this_month, "olga", "never came")
    assert "ECHO" not in live.current().enterprise_by_id and live.loads == 4
