"""Engines for the ledger's database, its migrations, the locks that serialize bookings, and the
application's database role.

SQLite is the embedded default (one file under the run directory), PostgreSQL the deployed one. On
SQLite every transaction starts with ``BEGIN IMMEDIATE`` so that concurrent writers queue for the
write lock instead of failing half-way; WAL lets readers go on meanwhile. On PostgreSQL writers run
side by side, and what must not interleave takes a lock of its own (``lock``).
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, func, select, text

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 60.0


def make_engine(url: str, read_only: bool = False) -> Engine:
    """An engine for ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://...``).

    ``read_only``: every transaction is read-only (PostgreSQL ``READ ONLY``; SQLite ``query_only``),
    for readers that must not change the book, its schema or its journal mode.
    """
    if url.startswith("sqlite") and read_only:
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _on_connect_read_only(dbapi_connection: Any, _record: Any) -> None:
            """Fires for each new DBAPI connection: refuse every write on it."""
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA query_only=ON")
            cursor.close()

        return engine
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            """Fires for each new DBAPI connection: let SQLAlchemy, not pysqlite, open transactions."""
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            """Fires when a transaction starts: take the write lock now, not at the first write."""
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_pre_ping=True)
    return engine.execution_options(postgresql_readonly=True) if read_only else engine


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str | None:
    """The newest migration's revision."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` with the ledger's Alembic migrations."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to ``revision`` (what the newer migrations added is dropped)."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def lock(conn: Connection, *names: str) -> None:
    """Hold a lock on each of ``names`` until the transaction ends (PostgreSQL; SQLite's writers are
    already one at a time). Taken in key order, so two transactions asking for the same names never
    wait for each other in a circle.

    Advisory locks rather than ``SELECT … FOR UPDATE``: what they guard has no row to lock in every
    case (an obligation not settled yet, the chain's next link), and row locks would need UPDATE
    rights the application role must not have on the booked tables.
    """
    if conn.dialect.name != "postgresql":
        return
    for key in sorted({_lock_key(name) for name in names}):
        conn.execute(select(func.pg_advisory_xact_lock(key)))


def _lock_key(name: str) -> int:
    """A 64-bit advisory lock key for ``name`` (another application's keys are unlikely to meet it)."""
    return int.from_bytes(hashlib.sha256(f"parkcarbon-ledger:{name}".encode()).digest()[:8], "big", signed=True)


# What the application does to each table: it appends to the booked ones and changes only holdings.
APP_RIGHTS = {
    "accounts": "SELECT, INSERT",
    "transactions": "SELECT, INSERT",
    "entries": "SELECT, INSERT",
    "holdings": "SELECT, INSERT, UPDATE",
    "obligations": "SELECT, INSERT",
    "settlements": "SELECT, INSERT",
    "external_units": "SELECT, INSERT",
    "registry_versions": "SELECT",  # the pipeline reads the registry as of a month (ledger/registry_store.py)
    # result versions (ledger/results.py): settlement records them, the platform moves their state and
    # issuance and its objections' (triggers keep the rows and what identifies them fixed)
    "result_versions": "SELECT, INSERT, UPDATE",
    "result_rows": "SELECT, INSERT",
    "result_objections": "SELECT, INSERT, UPDATE",
    "alembic_version": "SELECT",  # opening the ledger checks that it is migrated
}
APPENDED = ("transactions", "entries", "obligations", "settlements")  # with serial ids
WITH_SERIAL_ID = (*APPENDED, "result_versions", "result_objections")
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant_app_role(engine: Engine, role: str, password: str | None = None) -> None:
    """On PostgreSQL, make ``role`` the application's login: it may read, append and change holdings,
    and nothing else. It owns nothing, so it can neither drop nor disable the append-only triggers,
    nor alter the tables, nor set ``session_replication_role`` (superuser only).

    Run it as the tables' owner after each migration (it is idempotent: the rights are set anew).
    """
    if engine.dialect.name != "postgresql":
        raise ValueError("an application role needs PostgreSQL: SQLite has no roles")
    if not ROLE_NAME.match(role):
        raise ValueError(f"role {role!r} must be a lower-case SQL name")
    with engine.begin() as conn:
        if role == conn.execute(select(func.current_user())).scalar_one():
            raise ValueError(f"role {role!r} is the tables' owner: the application must connect as another role")
        name = conn.dialect.identifier_preparer.quote(role)
        attributes = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
        conn.execute(text(f"{'ALTER' if exists else 'CREATE'} ROLE {name} {attributes}"))
        if password is not None:  # a utility statement takes no parameters: psycopg quotes the literal
            from psycopg import sql

            statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
            conn.connection.driver_connection.execute(statement)  # type: ignore[union-attr]
        schema = conn.dialect.identifier_preparer.quote(conn.execute(select(func.current_schema())).scalar_one())
        conn.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {name}"))
        for table, rights in APP_RIGHTS.items():
            conn.execute(text(f"REVOKE ALL ON {table} FROM {name}"))
            conn.execute(text(f"GRANT {rights} ON {table} TO {name}"))
        for table in WITH_SERIAL_ID:  # the next id of an inserted row
            sequence = conn.execute(select(func.pg_get_serial_sequence(table, "id"))).scalar_one()
            conn.execute(text(f"GRANT USAGE ON SEQUENCE {sequence} TO {name}"))


def as_utc(value: datetime) -> datetime:
    """A time read back from the database (or a clock) as UTC: SQLite keeps no offset."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def as_utc_or_none(value: datetime | None) -> datetime | None:
    """:func:`as_utc` of a column that may be empty (a step not taken yet)."""
    return None if value is None else as_utc(value)
