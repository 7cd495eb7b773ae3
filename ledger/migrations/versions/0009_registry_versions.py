"""The registry in the database, versioned with valid-from/valid-to (issue #21; ``ledger/registry_store.py``
declares the table, spelled here again as a migration must not import the code it migrates for).

A version's content is fixed once written and a closed version is fixed entirely: triggers refuse
DELETE, any UPDATE of the content columns, and any UPDATE of a row whose ``valid_to`` is set. The only
change a row ever takes is its closing (``valid_to``, ``closed_at``, ``closed_by``), once.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CONTENT_COLUMNS = ("kind", "entity_id", "valid_from", "document", "changed_at", "changed_by", "reason")
REFUSED = (
    ("registry_versions_no_delete", "DELETE", ""),
    ("registry_versions_content_fixed", f"UPDATE OF {', '.join(CONTENT_COLUMNS)}", ""),
    ("registry_versions_closed_fixed", "UPDATE", "OLD.valid_to IS NOT NULL"),
)


def upgrade() -> None:
    op.create_table(
        "registry_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(80), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date, nullable=True),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(64), nullable=True),
        sa.CheckConstraint(
            "kind IN ('park', 'enterprise', 'workshop', 'gateway', 'meter', 'value_added')", name="ck_registry_kind"
        ),
        sa.CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="ck_registry_interval"),
        sa.CheckConstraint("(valid_to IS NULL) = (closed_by IS NULL)", name="ck_registry_closed_by"),
    )
    op.create_index("ix_registry_versions_entity", "registry_versions", ["kind", "entity_id"])
    op.create_index(
        "ux_registry_versions_open",
        "registry_versions",
        ["kind", "entity_id"],
        unique=True,
        sqlite_where=sa.text("valid_to IS NULL"),
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    dialect = op.get_bind().dialect.name
    for name, event, when in REFUSED:
        if dialect == "postgresql":  # platform_append_only() of 0003 raises naming the table and operation
            condition = f"WHEN ({when}) " if when else ""
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON registry_versions FOR EACH ROW {condition}"
                "EXECUTE FUNCTION platform_append_only()"
            )
        elif dialect == "sqlite":
            condition = f"WHEN {when} " if when else ""
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON registry_versions FOR EACH ROW {condition}"
                f"BEGIN SELECT RAISE(ABORT, 'platform table registry_versions: {event} refused'); END"
            )
    if dialect == "postgresql":  # TRUNCATE fires no row trigger
        op.execute(
            "CREATE TRIGGER registry_versions_no_truncate BEFORE TRUNCATE ON registry_versions "
            "FOR EACH STATEMENT EXECUTE FUNCTION platform_append_only()"
        )


def downgrade() -> None:
    op.drop_table("registry_versions")
