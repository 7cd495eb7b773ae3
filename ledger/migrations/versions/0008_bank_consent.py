"""Banks, bank users and enterprises' consent to their credit reports (issue #16; ``portal/schema.py``
declares the tables, spelled here again as a migration must not import the code it migrates for).

A bank user keeps the users table's own check (no enterprise): which bank it belongs to is the row of
``bank_users`` written with it. A consent is never deleted and its grant is fixed (a trigger refuses
changing who granted it to which bank until when); only its state and who ended it when change. At most
one consent per enterprise and bank is ``granted`` (a partial unique index).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FIXED_COLUMNS = ("enterprise_id", "bank_id", "valid_until", "granted_at", "granted_by")
REFUSED = (
    ("consents_no_delete", "consents", "DELETE"),
    ("consents_grant_fixed", "consents", f"UPDATE OF {', '.join(FIXED_COLUMNS)}"),
)


def upgrade() -> None:
    op.create_table(
        "banks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
    )
    op.create_table(
        "bank_users",
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("bank_id", sa.String(64), sa.ForeignKey("banks.id"), nullable=False),
    )
    op.create_index("ix_bank_users_bank", "bank_users", ["bank_id"])
    op.create_table(
        "consents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("bank_id", sa.String(64), sa.ForeignKey("banks.id"), nullable=False),
        sa.Column("valid_until", sa.Date, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(64), nullable=True),
        sa.CheckConstraint("state IN ('granted', 'revoked', 'expired')", name="ck_consents_state"),
    )
    op.create_index("ix_consents_bank", "consents", ["bank_id", "state"])
    op.create_index(
        "ux_consents_granted",
        "consents",
        ["enterprise_id", "bank_id"],
        unique=True,
        sqlite_where=sa.text("state = 'granted'"),
        postgresql_where=sa.text("state = 'granted'"),
    )
    dialect = op.get_bind().dialect.name
    for name, table, event in REFUSED:
        if dialect == "postgresql":  # platform_append_only() of 0003 raises naming the table and operation
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW EXECUTE FUNCTION platform_append_only()"
            )
        elif dialect == "sqlite":
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'platform table {table}: {event} refused'); END"
            )
    if dialect == "postgresql":  # TRUNCATE fires no row trigger
        op.execute(
            "CREATE TRIGGER consents_no_truncate BEFORE TRUNCATE ON consents "
            "FOR EACH STATEMENT EXECUTE FUNCTION platform_append_only()"
        )


def downgrade() -> None:
    op.drop_table("consents")
    op.drop_table("bank_users")
    op.drop_table("banks")
