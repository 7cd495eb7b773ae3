"""Tamper evidence, on SQLite and on a real PostgreSQL: the database owner can get past the
append-only triggers (SQLite ``DROP TRIGGER``, PostgreSQL ``session_replication_role = replica``) and
even re-derive the holdings from the edited entries so that every sum agrees. The hash chains still
show the edit, ``check`` names the first broken row; and the application's own role cannot get past
the triggers at all."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError

from ledger.book import Ledger
from ledger.db import current_revision, downgrade, grant_app_role, head_revision, migrate
from ledger.schema import IMMUTABLE_TABLES, obligations, settlements, transactions
from park.registry import DEFAULT_TIMEZONE
from tests.ledger.test_book import DEADLINE, Clock, credit

CHAINS = (transactions, obligations, settlements)


@pytest.fixture
def book(ledger_url):
    """Settled 2026 (E01 +100 t, E02 −30 t), then transactions t1…t4: E01 sells 40 t to E03 and 30 t
    to E02, E02 surrenders its 30 t, E01 retires 5 t."""
    ledger = Ledger.open(ledger_url, DEFAULT_TIMEZONE)
    ledger.clock = Clock()
    ledger.open_accounts(["E01", "E02", "E03", "E04"])
    ledger.settle(2026, [credit("E01", 100), credit("E02", -30)], DEADLINE, "op")
    ledger.transfer("E01", "E03", "40", 2026, "t1", "E01 trader", price_cny_per_t="61")
    ledger.transfer("E01", "E02", "30", 2026, "t2", "E01 trader")
    ledger.surrender("E02", 2026, "30", 2026, "t3", "E02 office")
    ledger.retire("E01", "5", 2026, "t4", "E01 ESG")
    yield ledger
    ledger.close()


def txn_id(ledger: Ledger, reference: str) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(select(transactions.c.id).where(transactions.c.reference == reference)).scalar_one())


def bypass_triggers(conn: Connection) -> None:
    """What the database owner can do: switch the append-only triggers off."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL session_replication_role = replica"))  # no trigger fires
    else:
        for table in IMMUTABLE_TABLES:
            for action in ("update", "delete"):
                conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{action}"))


def cover_tracks(conn: Connection) -> None:
    """Re-derive the holdings from the (edited) entries, so that every sum agrees again."""
    conn.execute(text("DELETE FROM holdings"))
    conn.execute(
        text(
            "INSERT INTO holdings (account_id, vintage, amount_kg) "
            "SELECT account_id, vintage, SUM(amount_kg) FROM entries GROUP BY account_id, vintage"
        )
    )


# Each edit behind the triggers' back (SQL, {tN}: the id of transaction tN), and the row ``check`` must name first.
EDITS = {
    "entry moved to another enterprise": (
        "UPDATE entries SET account_id = 'ent:E04' WHERE transaction_id = {t1} AND account_id = 'ent:E03'",
        "transaction {t1}",
    ),
    "amount edited on both sides": (
        "UPDATE entries SET amount_kg = amount_kg / 2 WHERE transaction_id = {t1}",
        "transaction {t1}",
    ),
    "transaction deleted": (
        "DELETE FROM entries WHERE transaction_id = {t1}; DELETE FROM transactions WHERE id = {t1}",
        "transaction {t2}",
    ),
    "who asked rewritten": (
        "UPDATE transactions SET requested_by = 'someone else' WHERE id = {t2}",
        "transaction {t2}",
    ),
    "price rewritten": ("UPDATE transactions SET price_fen_per_t = 100 WHERE id = {t1}", "transaction {t1}"),
    "obligation lowered": ("UPDATE obligations SET delta_kg = 0", "obligation 1"),
    "settlement rewritten": ("UPDATE settlements SET credits_kg = 0 WHERE enterprise_id = 'E02'", "settlement 2"),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_check_finds_an_edit_behind_the_triggers_back(book, edit):
    assert book.check() == []
    statements, first = EDITS[edit]
    ids = {f"t{i}": txn_id(book, f"t{i}") for i in range(1, 5)}
    with book.engine.begin() as conn:
        bypass_triggers(conn)
        for statement in statements.format(**ids).split("; "):
            conn.execute(text(statement))
        cover_tracks(conn)
    problems = book.check()
    assert problems, f"{edit}: not noticed"
    assert problems[0].startswith(first.format(**ids) + " "), problems


def test_an_untouched_book_passes_and_says_so(book):
    assert book.check() == []
    summary = book.summary()
    assert summary.startswith("5 transactions (10 entries), 1 obligations, 2 settlements; chain heads: transaction 5 ")
    with book.engine.connect() as conn:
        heads = [conn.execute(select(t.c.chain_sha256).order_by(t.c.id.desc())).scalars().first() for t in CHAINS]
    assert all(head and head in summary for head in heads)


def test_the_migration_chains_an_existing_book_as_booking_would(book):
    """Back to the schema before the chains (revision 0001) and up again: the migration computes, in
    booking order, exactly the hashes that booking wrote."""

    def hashes() -> list[list[str]]:
        with book.engine.connect() as conn:
            return [list(conn.execute(select(t.c.chain_sha256).order_by(t.c.id)).scalars()) for t in CHAINS]

    booked = hashes()
    assert all(booked) and all(all(h) for h in booked)
    downgrade(book.engine, "0001")
    assert current_revision(book.engine) == "0001"
    migrate(book.engine)
    assert current_revision(book.engine) == head_revision()
    assert hashes() == booked
    assert book.check() == []
    book.transfer("E03", "E04", "1", 2026, "after", "E03 trader")  # the chain goes on from there
    assert book.check() == []


@pytest.mark.postgres
def test_the_application_role_cannot_get_past_the_triggers(postgres):
    """The application connects as a role that owns nothing: it books and checks, and every way around
    the append-only triggers is refused to it."""
    owner_url = postgres.create_database("approle")
    with Ledger.open(owner_url, DEFAULT_TIMEZONE) as owner:
        owner.open_accounts(["E01", "E02"])
        grant_app_role(owner.engine, "ledger_app")
        grant_app_role(owner.engine, "ledger_app", password="it's:50%")  # again, as after each migration
        with owner.engine.connect() as conn:
            attributes = conn.execute(
                text(
                    "SELECT rolsuper, rolcreaterole, rolpassword LIKE 'SCRAM-SHA-256$%' "
                    "FROM pg_authid WHERE rolname = :r"
                ),
                {"r": "ledger_app"},
            ).one()
        assert tuple(attributes) == (False, False, True)
    app_url = owner_url.replace("//postgres@", "//ledger_app@")
    with Ledger.open(app_url, DEFAULT_TIMEZONE) as app:
        app.settle(2026, [credit("E01", 100), credit("E02", -30)], DEADLINE, "op")
        app.transfer("E01", "E02", "30", 2026, "t1", "E01 trader")
        app.surrender("E02", 2026, "30", 2026, "s1", "E02 office")
        for statement in (
            "SET session_replication_role = replica",
            "DROP TRIGGER entries_append_only ON entries",
            "ALTER TABLE entries DISABLE TRIGGER ALL",
            "UPDATE entries SET amount_kg = amount_kg * 2",
            "DELETE FROM transactions",
            "TRUNCATE entries CASCADE",
            "DROP TABLE entries CASCADE",
            "ALTER TABLE holdings DROP CONSTRAINT ck_holdings_not_negative",
            "CREATE TABLE shadow (id int)",
            "CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE sql AS 'SELECT NULL'",
        ):
            with pytest.raises(DBAPIError, match=r"permission denied|must be owner"), app.engine.begin() as conn:
                conn.execute(text(statement))
        assert app.check() == []
        assert app.compliance(2026, date(2027, 7, 1)).set_index("enterprise_id").loc["E02", "status"] == "covered"
