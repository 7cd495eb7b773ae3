"""The platform's rights on PostgreSQL for the application's database role.

``ledger.db.grant_app_role`` makes the role that the ledger's application connects as (it owns nothing,
so it cannot drop or disable triggers); this gives the same role what the platform does to its own
tables, and nothing more: the audit log only SELECT and INSERT, so that neither UPDATE nor DELETE is
possible even for a session that got past the triggers.
"""

from __future__ import annotations

from sqlalchemy import Engine, func, select, text

from ledger.db import ROLE_NAME

PLATFORM_RIGHTS = {
    "users": "SELECT, INSERT, UPDATE",
    "sessions": "SELECT, INSERT, DELETE",
    "login_throttle": "SELECT, INSERT, UPDATE, DELETE",
    "audit_log": "SELECT, INSERT",
    "data_requests": "SELECT, INSERT, UPDATE",  # open → closed
    "submissions": "SELECT, INSERT, UPDATE",  # the state only: triggers refuse changing the figures
    "submission_evidence": "SELECT, INSERT",
    "offers": "SELECT, INSERT, UPDATE",  # the state only: a trigger keeps the terms fixed
    "gateway_credentials": "SELECT, INSERT, UPDATE",  # issue, rotate, revoke; never DELETE
    "banks": "SELECT, INSERT",
    "bank_users": "SELECT, INSERT",
    "consents": "SELECT, INSERT, UPDATE",  # the state only: a trigger keeps the grant fixed
}
WITH_SERIAL_ID = ("users", "audit_log", "data_requests", "submissions", "submission_evidence", "offers", "consents")


def grant_platform_role(engine: Engine, role: str) -> None:
    """Give the existing login ``role`` (made by ``ledger.db.grant_app_role``) the platform's rights.
    Run it as the tables' owner after each migration; it is idempotent."""
    if engine.dialect.name != "postgresql":
        raise ValueError("an application role needs PostgreSQL: SQLite has no roles")
    if not ROLE_NAME.match(role):
        raise ValueError(f"role {role!r} must be a lower-case SQL name")
    with engine.begin() as conn:
        if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first() is None:
            raise ValueError(f"role {role!r} does not exist: make it with ledger.db.grant_app_role first")
        name = conn.dialect.identifier_preparer.quote(role)
        for table, rights in PLATFORM_RIGHTS.items():
            conn.execute(text(f"REVOKE ALL ON {table} FROM {name}"))
            conn.execute(text(f"GRANT {rights} ON {table} TO {name}"))
        for table in WITH_SERIAL_ID:
            sequence = conn.execute(select(func.pg_get_serial_sequence(table, "id"))).scalar_one()
            conn.execute(text(f"GRANT USAGE ON SEQUENCE {sequence} TO {name}"))
