"""Engines for the ledger's database, and its migrations.

SQLite is the embedded default (one file under the run directory), PostgreSQL the deployed one. On
SQLite every transaction starts with ``BEGIN IMMEDIATE`` so that concurrent writers queue for the
write lock instead of failing half-way; WAL lets readers go on meanwhile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

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


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
