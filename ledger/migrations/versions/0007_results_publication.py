"""Result versions, publication (公示), objections and issuance review (issue #16): ``result_versions``,
``result_rows`` and ``result_objections`` (``ledger/results.py`` declares them; spelled here again, as a
migration must not import the code it migrates for). Triggers refuse deleting any of them, changing a
version's rows, changing what identifies a version (year, number, content, who settled it when, the
deadline) and changing what an objection says (its version, enterprise, reason, who filed it when).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

VERSION_FIXED = ("year", "version", "content_sha256", "deadline", "created_at", "created_by")
OBJECTION_FIXED = ("version_id", "enterprise_id", "reason", "filed_at", "filed_by")
TABLES = ("result_versions", "result_rows", "result_objections")
# (trigger name, table, event): each refused.
REFUSED = (
    ("result_versions_no_delete", "result_versions", "DELETE"),
    ("result_versions_fixed", "result_versions", f"UPDATE OF {', '.join(VERSION_FIXED)}"),
    ("result_rows_no_update", "result_rows", "UPDATE"),
    ("result_rows_no_delete", "result_rows", "DELETE"),
    ("result_objections_no_delete", "result_objections", "DELETE"),
    ("result_objections_fixed", "result_objections", f"UPDATE OF {', '.join(OBJECTION_FIXED)}"),
)


def upgrade() -> None:
    op.create_table(
        "result_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("deadline", sa.Date, nullable=False),
        sa.Column("issuance", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("published_by", sa.String(64), nullable=True),
        sa.Column("window_ends_on", sa.Date, nullable=True),
        sa.Column("finalised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finalised_by", sa.String(64), nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issuance_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("issuance_by", sa.String(64), nullable=True),
        sa.CheckConstraint("state IN ('draft', 'published', 'final', 'superseded')", name="ck_result_versions_state"),
        sa.CheckConstraint("issuance IN ('proposed', 'approved', 'on_settlement')", name="ck_result_versions_issuance"),
        sa.CheckConstraint("version >= 1", name="ck_result_versions_version"),
        sa.UniqueConstraint("year", "version", name="uq_result_versions_version"),
    )
    op.create_table(
        "result_rows",
        sa.Column("version_id", sa.Integer, sa.ForeignKey("result_versions.id"), primary_key=True),
        sa.Column("enterprise_id", sa.String(64), primary_key=True),
        sa.Column("industry", sa.String(16), nullable=False),
        sa.Column("grade", sa.Integer, nullable=True),
        sa.Column("rating", sa.String(2), nullable=True),
        sa.Column("rating_score", sa.Float, nullable=True),
        sa.Column("credits_t", sa.Float, nullable=True),
        sa.Column("emissions_tco2", sa.Float, nullable=True),
        sa.Column("value_added_10k_cny", sa.Float, nullable=True),
        sa.Column("intensity_t_per_10k_cny", sa.Float, nullable=True),
        sa.Column("benchmark_t_per_10k_cny", sa.Float, nullable=True),
        sa.Column("inputs_sha256", sa.String(64), nullable=False),
        sa.Column("policy_version", sa.String(32), nullable=False),
        sa.Column("factor_set", sa.String(64), nullable=False),
        sa.Column("nearzero_workshops", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_table(
        "result_objections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("version_id", sa.Integer, sa.ForeignKey("result_versions.id"), nullable=False),
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("filed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("filed_by", sa.String(64), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decision", sa.Text, nullable=True),
        sa.CheckConstraint("state IN ('open', 'dismissed', 'upheld')", name="ck_result_objections_state"),
    )
    op.create_index("ix_result_objections_version", "result_objections", ["version_id", "state"])
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
        for table in TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION platform_append_only()"
            )


def downgrade() -> None:
    for table in ("result_objections", "result_rows", "result_versions"):
        op.drop_table(table)
