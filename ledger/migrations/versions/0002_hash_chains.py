"""Hash chains over the booked tables: ``chain_sha256`` on transactions (with their entries),
obligations and settlements; an existing book is chained here, in booking (id) order.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

from ledger.chain import CHAINED, link

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Types the rows are read with, so that SQLite's stored text comes back as booking wrote it.
TYPES: dict[str, sa.types.TypeEngine[Any]] = {"requested_at": sa.DateTime(timezone=True), "deadline": sa.Date()}


def upgrade() -> None:
    for table in CHAINED:
        op.add_column(table, sa.Column("chain_sha256", sa.String(64), nullable=True))
    bind = op.get_bind()
    # Writing the hashes into booked rows is the one UPDATE the append-only triggers must let through.
    _updates_allowed(bind.dialect.name, True)
    for table in CHAINED:
        _chain(bind, table)
    _updates_allowed(bind.dialect.name, False)


def _chain(bind: sa.Connection, name: str) -> None:
    """Compute and store the chain of table ``name`` over its rows in id order."""
    columns = [sa.column(field, TYPES.get(field, sa.String())) for field in CHAINED[name]]
    table = sa.table(name, sa.column("id", sa.Integer), sa.column("chain_sha256", sa.String), *columns)
    entries: dict[int, list[tuple[str, int, int]]] = defaultdict(list)
    if name == "transactions":
        for t, a, v, kg in bind.execute(sa.text("SELECT transaction_id, account_id, vintage, amount_kg FROM entries")):
            entries[int(t)].append((str(a), int(v), int(kg)))
    previous = None
    for row in bind.execute(sa.select(table).order_by(table.c.id)).mappings().all():
        previous = link(previous, name, row, entries[int(row["id"])])
        bind.execute(sa.update(table).where(table.c.id == row["id"]).values(chain_sha256=previous))


def _updates_allowed(dialect: str, allowed: bool) -> None:
    for table in CHAINED:
        if dialect == "postgresql":
            op.execute(f"ALTER TABLE {table} {'DISABLE' if allowed else 'ENABLE'} TRIGGER {table}_append_only")
        elif dialect == "sqlite" and allowed:
            op.execute(f"DROP TRIGGER {table}_no_update")
        elif dialect == "sqlite":  # as 0001 created it
            op.execute(
                f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only: UPDATE refused'); END"
            )


def downgrade() -> None:
    for table in CHAINED:
        op.drop_column(table, "chain_sha256")
