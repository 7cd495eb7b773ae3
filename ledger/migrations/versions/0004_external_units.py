"""External units against obligations and the expiry of banked credits: the ``external_units`` table
(append-only, one row per lot, its serial unique park-wide) and a holdings CHECK that lets the new
source account ``park:external`` go negative as ``park:issuing`` does. The park's new accounts
(``park:external``, ``park:offsets``, ``park:expired``) are opened by ``Ledger.open_accounts``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CHECK = "ck_holdings_not_negative"
OLD_CHECK = "amount_kg >= 0 OR account_id = 'park:issuing'"
NEW_CHECK = "amount_kg >= 0 OR account_id IN ('park:issuing', 'park:external')"


def _holdings(check: str) -> sa.Table:
    """The holdings table as 0001 made it, with ``check``: what SQLite's batch mode rebuilds from."""
    return sa.Table(
        "holdings",
        sa.MetaData(),
        sa.Column("account_id", sa.String(80), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("vintage", sa.Integer, primary_key=True),
        sa.Column("amount_kg", sa.BigInteger, nullable=False),
        sa.CheckConstraint(check, name=CHECK),
    )


def _replace_check(old: str, new: str) -> None:
    if op.get_bind().dialect.name == "sqlite":  # SQLite alters a constraint by rebuilding the table
        with op.batch_alter_table("holdings", recreate="always", copy_from=_holdings(old)) as batch:
            batch.drop_constraint(CHECK, type_="check")
            batch.create_check_constraint(CHECK, sa.text(new))
    else:
        op.drop_constraint(CHECK, "holdings", type_="check")
        op.create_check_constraint(CHECK, "holdings", sa.text(new))


def upgrade() -> None:
    op.create_table(
        "external_units",
        sa.Column("serial", sa.String(120), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("vintage", sa.Integer, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("valid_until", sa.Date, nullable=True),
        sa.Column("amount_kg", sa.BigInteger, nullable=False),
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("obligation_year", sa.Integer, nullable=False),
        sa.Column("transaction_id", sa.Integer, sa.ForeignKey("transactions.id"), nullable=False, unique=True),
        sa.CheckConstraint("amount_kg > 0", name="ck_external_units_positive"),
        sa.CheckConstraint("kind IN ('gec', 'ccer', 'puhui')", name="ck_external_units_kind"),
    )
    op.create_index("ix_external_units_enterprise_year", "external_units", ["enterprise_id", "obligation_year"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":  # the function 0001 created refuses UPDATE and DELETE
        op.execute(
            "CREATE TRIGGER external_units_append_only BEFORE UPDATE OR DELETE ON external_units "
            "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        )
    elif dialect == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER external_units_no_{action.lower()} BEFORE {action} ON external_units "
                f"BEGIN SELECT RAISE(ABORT, 'ledger table external_units is append-only: {action} refused'); END"
            )
    _replace_check(OLD_CHECK, NEW_CHECK)


def downgrade() -> None:
    _replace_check(NEW_CHECK, OLD_CHECK)  # fails while park:external holds a negative balance: as it must
    op.drop_table("external_units")
