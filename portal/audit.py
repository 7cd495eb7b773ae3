"""The append-only audit log: every login (success and failure), every change of state and every
download of another party's data. Rows are only ever inserted: the database refuses UPDATE and DELETE
on ``audit_log`` by triggers (``ledger/migrations/versions/0003_platform.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, insert

from portal.schema import audit_log


@dataclass(frozen=True)
class Actor:
    """Who does something: a user name (or, at a failed login, what was typed), role and enterprise."""

    name: str
    role: str
    enterprise_id: str | None
    client: str


def record(
    conn: Connection,
    actor: Actor,
    action: str,
    target: str,
    from_value: str = "",
    to_value: str = "",
    at: datetime | None = None,
) -> None:
    """Append one line to the audit log, in the caller's transaction (so it stands or falls with the
    change it describes)."""
    conn.execute(
        insert(audit_log).values(
            at=at or datetime.now(UTC),
            actor=actor.name[:64],
            actor_role=actor.role,
            actor_enterprise=actor.enterprise_id,
            client=actor.client[:64],
            action=action,
            target=target[:200],
            from_value=from_value,
            to_value=to_value,
        )
    )
