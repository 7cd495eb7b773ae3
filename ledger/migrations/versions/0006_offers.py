"""Offers of credits between enterprises on the platform (``offers``; ``portal/schema.py`` declares the
table, spelled here again as a migration must not import the code it migrates for). An offer's terms
are fixed once made: a trigger refuses changing them and deleting an offer; only its state, who decided
it when, and the ledger transaction of an acceptance change.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

FIXED_COLUMNS = (
    "seller_id",
    "buyer_id",
    "vintage",
    "amount_kg",
    "price_fen_per_t",
    "expires_at",
    "created_at",
    "created_by",
)
REFUSED = (
    ("offers_no_delete", "offers", "DELETE"),
    ("offers_terms_fixed", "offers", f"UPDATE OF {', '.join(FIXED_COLUMNS)}"),
)


def upgrade() -> None:
    op.create_table(
        "offers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("seller_id", sa.String(64), nullable=False),
        sa.Column("buyer_id", sa.String(64), nullable=False),
        sa.Column("vintage", sa.Integer, nullable=False),
        sa.Column("amount_kg", sa.BigInteger, nullable=False),
        sa.Column("price_fen_per_t", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("transaction_id", sa.Integer, nullable=True),
        sa.CheckConstraint("state IN ('open', 'accepted', 'declined', 'withdrawn', 'expired')", name="ck_offers_state"),
        sa.CheckConstraint("amount_kg > 0", name="ck_offers_amount"),
        sa.CheckConstraint("price_fen_per_t >= 0", name="ck_offers_price"),
        sa.CheckConstraint("seller_id <> buyer_id", name="ck_offers_parties"),
    )
    op.create_index("ix_offers_seller", "offers", ["seller_id", "state"])
    op.create_index("ix_offers_buyer", "offers", ["buyer_id", "state"])
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
            "CREATE TRIGGER offers_no_truncate BEFORE TRUNCATE ON offers "
            "FOR EACH STATEMENT EXECUTE FUNCTION platform_append_only()"
        )


def downgrade() -> None:
    op.drop_table("offers")
