"""Registry changes proposed by an enterprise admin and reviewed by a park analyst (issue #21;
``registry_proposals``, which ``portal/schema.py`` declares, spelled here again as a migration must not
import the code it migrates for).

A proposal names its enterprise, what it proposes (a new meter, a new workshop, a meter replacement),
the entry's document and the reason; those are fixed once proposed (a trigger refuses changing them and
deleting a proposal). Only its state, who decided it when and the reason of a rejection change, once.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

FIXED_COLUMNS = (
    "enterprise_id",
    "kind",
    "entity_id",
    "valid_from",
    "document",
    "reason",
    "created_at",
    "created_by",
)
REFUSED = (
    ("registry_proposals_no_delete", "DELETE"),
    ("registry_proposals_content_fixed", f"UPDATE OF {', '.join(FIXED_COLUMNS)}"),
)


def upgrade() -> None:
    op.create_table(
        "registry_proposals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("entity_id", sa.String(80), nullable=False),
        sa.Column("valid_from", sa.Date, nullable=True),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decision_reason", sa.Text, nullable=True),
        sa.CheckConstraint(
            "state IN ('proposed', 'approved', 'rejected', 'withdrawn')", name="ck_registry_proposals_state"
        ),
        sa.CheckConstraint("kind IN ('meter', 'workshop', 'replacement')", name="ck_registry_proposals_kind"),
        sa.CheckConstraint("(kind = 'replacement') = (valid_from IS NULL)", name="ck_registry_proposals_valid_from"),
        sa.CheckConstraint(
            "state <> 'rejected' OR decision_reason IS NOT NULL", name="ck_registry_proposals_rejection"
        ),
    )
    op.create_index("ix_registry_proposals_enterprise", "registry_proposals", ["enterprise_id", "state"])
    op.create_index("ix_registry_proposals_state", "registry_proposals", ["state"])
    dialect = op.get_bind().dialect.name
    for name, event in REFUSED:
        if dialect == "postgresql":  # platform_append_only() of 0003 raises naming the table and operation
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON registry_proposals FOR EACH ROW "
                "EXECUTE FUNCTION platform_append_only()"
            )
        elif dialect == "sqlite":
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON registry_proposals "
                f"BEGIN SELECT RAISE(ABORT, 'platform table registry_proposals: {event} refused'); END"
            )
    if dialect == "postgresql":  # TRUNCATE fires no row trigger
        op.execute(
            "CREATE TRIGGER registry_proposals_no_truncate BEFORE TRUNCATE ON registry_proposals "
            "FOR EACH STATEMENT EXECUTE FUNCTION platform_append_only()"
        )


def downgrade() -> None:
    op.drop_table("registry_proposals")
