"""The registry in the database: import of the demo registry equals the file, each change a new
version from a month's first day, history never edited, every change validated like the file."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from ledger import registry_store as store
from park.registry import MeterReplacement, load_registry
from park.settings import DEMO_REGISTRY
from tests.demo_rows import demo_enterprise_rows

AS_OF = date(2026, 1, 1)


@pytest.fixture
def imported(engine):
    with engine.begin() as conn:
        changes = store.import_registry(
            conn, load_registry(DEMO_REGISTRY), demo_enterprise_rows(), AS_OF, "office", "pilot start"
        )
    return changes


def meter_doc(conn, meter_id: str) -> dict:
    return store.documents_as_of(conn, date(2100, 1, 1))[(store.METER, meter_id)]


def test_import_of_the_demo_registry_gives_it_back(engine, imported):
    demo = load_registry(DEMO_REGISTRY)
    assert {c.action for c in imported} == {"registry.add"}
    assert len(imported) == 1 + len(demo.enterprises) + len(demo.workshops) + len(demo.gateways) + len(
        demo.meters
    ) + len(demo_enterprise_rows())
    with engine.connect() as conn:
        assert store.registry_as_of(conn, AS_OF) == demo
        assert store.registry_as_of(conn, date(2030, 6, 15)) == demo
        assert store.value_added_as_of(conn, AS_OF) == demo_enterprise_rows()
        with pytest.raises(store.RegistryChangeError, match="no park on 2025-12-31"):
            store.registry_as_of(conn, date(2025, 12, 31))
    with engine.begin() as conn:  # the same files again: nothing to change
        assert store.import_registry(conn, demo, demo_enterprise_rows(), date(2026, 2, 1), "office", "again") == []


def test_a_multiplier_change_is_a_new_version_from_a_month_start(engine, imported):
    demo = load_registry(DEMO_REGISTRY)
    meter = demo.meters[0]
    with engine.begin() as conn:
        document = meter_doc(conn, meter.id) | {"multiplier": meter.multiplier * 2}
        changes = store.put_entry(conn, store.METER, document, date(2026, 3, 1), "office", "CT 200/5 → 400/5")
    assert [(c.action, c.target) for c in changes] == [("registry.change", f"registry:meter:{meter.id}@2026-03-01")]
    assert json.loads(changes[0].before).get("multiplier", 1.0) == meter.multiplier
    assert json.loads(changes[0].after)["multiplier"] == meter.multiplier * 2
    with engine.connect() as conn:
        assert store.registry_as_of(conn, date(2026, 2, 28)).meter_by_id[meter.id].multiplier == meter.multiplier
        assert store.registry_as_of(conn, date(2026, 3, 1)).meter_by_id[meter.id].multiplier == meter.multiplier * 2
        versions = store.history(conn, store.METER, meter.id)
    assert [(v["valid_from"], v["valid_to"], v["closed_by"]) for v in versions] == [
        (AS_OF, date(2026, 3, 1), "office"),
        (date(2026, 3, 1), None, None),
    ]


def test_refused_changes_store_nothing(engine, imported):
    demo = load_registry(DEMO_REGISTRY)
    meter = demo.meters[0]
    with engine.connect() as conn:
        document = meter_doc(conn, meter.id)
    refusals = [
        (
            lambda c: store.put_entry(c, store.METER, document | {"multiplier": 3}, date(2026, 3, 15), "o", "r"),
            "a month's first day, not 2026-03-15",
        ),
        (
            lambda c: store.put_entry(c, store.METER, document | {"multiplier": 3}, date(2025, 12, 1), "o", "r"),
            "began 2026-01-01; a change from 2025-12-01 would rewrite it",
        ),
        (
            lambda c: store.put_entry(c, store.METER, document | {"gateway": "nope"}, date(2026, 3, 1), "o", "r"),
            "unknown gateway 'nope'",
        ),
        (
            lambda c: store.put_entry(c, store.METER, document | {"multiplier": 0}, date(2026, 3, 1), "o", "r"),
            "multiplier: Input should be greater than 0",
        ),
        (
            lambda c: store.put_entry(c, store.METER, document | {"multiplier": 3}, date(2026, 3, 1), "o", " "),
            "names who makes it and why",
        ),
        (
            lambda c: store.close_entry(c, store.GATEWAY, meter.gateway, date(2026, 3, 1), "o", "r"),
            f"unknown gateway '{meter.gateway}'",
        ),  # its meters still name it
        (
            lambda c: store.put_entry(
                c,
                store.ENTERPRISE,
                {"id": "E01", "name": "x", "industry": "C39", "credit_code": "914403001922038261"},
                date(2026, 3, 1),
                "o",
                "r",
            ),
            "check character '1' is wrong",
        ),
    ]
    for change, says in refusals:
        with pytest.raises(store.RegistryChangeError, match=says), engine.begin() as conn:
            change(conn)
    with engine.connect() as conn:
        assert store.registry_as_of(conn, date(2027, 1, 1)) == demo
        assert len(store.history(conn)) == len(imported)


def test_a_later_version_of_another_entry_is_checked_too(engine, imported):
    """A change from March is validated on every later date a version begins: a gateway moved to
    another enterprise from May makes its meters wrong from May, and a meter change from March that
    keeps them on it is checked against that too."""
    demo = load_registry(DEMO_REGISTRY)
    meter = demo.meters[0]
    with engine.connect() as conn:
        document = meter_doc(conn, meter.id)
        gateway = store.documents_as_of(conn, AS_OF)[(store.GATEWAY, meter.gateway)]
    other = next(e.id for e in demo.enterprises if e.id != meter.enterprise)
    with pytest.raises(store.RegistryChangeError, match="belongs to enterprise"), engine.begin() as conn:
        store.put_entry(conn, store.GATEWAY, gateway | {"enterprise": other}, date(2026, 5, 1), "o", "r")
    with engine.begin() as conn:
        store.put_entry(conn, store.METER, document | {"multiplier": 5}, date(2026, 3, 1), "o", "r")
        with pytest.raises(store.RegistryChangeError, match="began 2026-03-01; a change from 2026-02-01 would rewrite"):
            store.put_entry(conn, store.METER, document | {"multiplier": 6}, date(2026, 2, 1), "o", "r")


def test_history_cannot_be_edited(engine, imported):
    meter = load_registry(DEMO_REGISTRY).meters[0]
    with engine.begin() as conn:
        document = meter_doc(conn, meter.id) | {"multiplier": 7}
        store.put_entry(conn, store.METER, document, date(2026, 3, 1), "office", "new CT")
    statements = [
        "UPDATE registry_versions SET document = '{}' WHERE valid_to IS NULL",
        "UPDATE registry_versions SET valid_from = '2020-01-01' WHERE valid_to IS NULL",
        "UPDATE registry_versions SET valid_to = '2027-01-01' WHERE valid_to IS NOT NULL",
        "UPDATE registry_versions SET closed_by = 'someone' WHERE valid_to IS NOT NULL",
        "DELETE FROM registry_versions",
    ]
    for statement in statements:
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert store.registry_as_of(conn, date(2026, 3, 1)).meter_by_id[meter.id].multiplier == 7


def test_a_second_open_version_is_refused_by_the_database(engine, imported):
    """Two changes racing to open a version of one entry: the partial unique index lets one through."""
    meter = load_registry(DEMO_REGISTRY).meters[0]
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(
            store.registry_versions.insert().values(
                kind="meter",
                entity_id=meter.id,
                valid_from=date(2026, 4, 1),
                document="{}",
                changed_at=datetime.now(UTC),
                changed_by="x",
                reason="r",
            )
        )


def test_a_stale_change_books_nothing(engine, imported):
    """Closing a version another change closed meanwhile (the conditional UPDATE finds no open row)."""
    meter = load_registry(DEMO_REGISTRY).meters[0]
    with engine.begin() as conn:
        stale = store.open_row(conn, store.METER, meter.id)
        store.put_entry(conn, store.METER, json.loads(stale.document) | {"multiplier": 9}, date(2026, 3, 1), "a", "r")
        with pytest.raises(store.RegistryConflictError, match="changed meanwhile"):
            store._close(conn, stale, date(2026, 4, 1), "b", datetime.now(UTC))


def test_a_replacement_applies_from_its_months_start_with_its_instant(engine, imported):
    demo = load_registry(DEMO_REGISTRY)
    meter = next(m for m in demo.meters if not m.replacements)
    change = MeterReplacement.model_validate(
        {
            "at": "2026-03-14T10:30:00+08:00",
            "old_final_reading": 1234.5,
            "new_initial_reading": 0.0,
            "new_multiplier": 80.0,
            "new_serial": "SN-NEW",
        }
    )
    with engine.begin() as conn:
        changes = store.replace_meter(conn, meter.id, change, demo.park.timezone, "office", "meter swapped")
        assert [(c.action, c.valid_from) for c in changes] == [("registry.replace_meter", date(2026, 3, 1))]
        with pytest.raises(store.RegistryChangeError, match="is not after its last one"):
            store.replace_meter(conn, meter.id, change, demo.park.timezone, "office", "twice")
    with engine.connect() as conn:
        before = store.registry_as_of(conn, date(2026, 2, 1)).meter_by_id[meter.id]
        after = store.registry_as_of(conn, date(2026, 3, 1)).meter_by_id[meter.id]
    assert before.replacements == []
    assert after.replacements == [change]
    assert after.multiplier_at(datetime(2026, 3, 14, 2, 29, tzinfo=UTC)) == meter.multiplier
    assert after.multiplier_at(datetime(2026, 3, 14, 2, 30, tzinfo=UTC)) == 80.0


def test_value_added_is_versioned_and_checked(engine, imported):
    """A year's value added corrected from a month: the file's rows as of before and after; a row that
    is not a number, or carries columns the registry does not keep, is refused."""
    row = demo_enterprise_rows()[0]
    with engine.begin() as conn:
        changes = store.put_entry(
            conn, store.VALUE_ADDED, row | {"value_added_10k_cny": "70000.0"}, date(2027, 3, 1), "office", "audited"
        )
    assert [c.target for c in changes] == [f"registry:value_added:{row['enterprise']}:{row['year']}@2027-03-01"]
    with engine.connect() as conn:
        assert store.value_added_as_of(conn, date(2027, 2, 1))[0] == row
        assert store.value_added_as_of(conn, date(2027, 3, 1))[0]["value_added_10k_cny"] == "70000.0"
    for bad, says in (({"value_added_10k_cny": "lots"}, "is not a number"), ({"note": "x"}, "not kept")):
        with pytest.raises(store.RegistryChangeError, match=says), engine.begin() as conn:
            store.put_entry(conn, store.VALUE_ADDED, row | bad, date(2027, 4, 1), "office", "r")
