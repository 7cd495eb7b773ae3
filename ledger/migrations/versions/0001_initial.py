"""The ledger's first schema: accounts, transactions, entries, holdings, obligations, settlements,
and triggers that make the booked tables append-only.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BOOKED = ("transactions", "entries", "obligations", "settlements")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("enterprise_id", sa.String(64), nullable=True, unique=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "transactions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reference", sa.String(200), nullable=False, unique=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settlement_year", sa.Integer, nullable=True),
        sa.Column("obligation_year", sa.Integer, nullable=True),
        sa.Column("price_fen_per_t", sa.BigInteger, nullable=True),
        sa.Column("memo", sa.Text, nullable=False),
    )
    op.create_table(
        "entries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("transaction_id", sa.Integer, sa.ForeignKey("transactions.id"), nullable=False),
        sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("vintage", sa.Integer, nullable=False),
        sa.Column("amount_kg", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount_kg <> 0", name="ck_entries_nonzero"),
    )
    op.create_index("ix_entries_account_vintage", "entries", ["account_id", "vintage"])
    op.create_index("ix_entries_transaction", "entries", ["transaction_id"])
    op.create_table(
        "holdings",
        sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("vintage", sa.Integer, primary_key=True),
        sa.Column("amount_kg", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount_kg >= 0 OR account_id = 'park:issuing'", name="ck_holdings_not_negative"),
    )
    op.create_table(
        "obligations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("delta_kg", sa.BigInteger, nullable=False),
        sa.Column("deadline", sa.Date, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("reference", sa.String(200), nullable=False, unique=True),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_obligations_enterprise_year", "obligations", ["enterprise_id", "year"])
    op.create_table(
        "settlements",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("credits_kg", sa.BigInteger, nullable=False),
        sa.Column("inputs_sha256", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("factor_set", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(120), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_settlements_year_enterprise", "settlements", ["year", "enterprise_id"])
    _append_only(op.get_bind().dialect.name)


def _append_only(dialect: str) -> None:
    """Triggers that refuse UPDATE and DELETE on the booked tables: history is never edited."""
    if dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'ledger table % is append-only: % refused', TG_TABLE_NAME, TG_OP; END $$"
        )
        for table in BOOKED:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
            )
    elif dialect == "sqlite":
        for table in BOOKED:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'ledger table {table} is append-only: {action} refused'); END"
                )


def downgrade() -> None:
    for table in ("settlements", "obligations", "holdings", "entries", "transactions", "accounts"):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
