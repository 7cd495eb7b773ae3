"""Data requests and submissions (maker/checker) on the platform: ``data_requests``, ``submissions``
(one row per version) and ``submission_evidence`` (``ledger/manual.py`` declares them; spelled here
again, as a migration must not import the code it migrates for). Triggers refuse deleting a request or
a submission, changing a submission's figures (a correction is a new version), and changing or
deleting an evidence file.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

FIXED_COLUMNS = ("request_id", "version", "quantity", "unit", "as_written", "submitted_at", "submitted_by")
# (trigger name, table, event): each refused.
REFUSED = (
    ("data_requests_no_delete", "data_requests", "DELETE"),
    ("submissions_no_delete", "submissions", "DELETE"),
    ("submissions_figures_fixed", "submissions", f"UPDATE OF {', '.join(FIXED_COLUMNS)}"),
    ("submission_evidence_no_update", "submission_evidence", "UPDATE"),
    ("submission_evidence_no_delete", "submission_evidence", "DELETE"),
)


def upgrade() -> None:
    op.create_table(
        "data_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("enterprise_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("due_on", sa.Date, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.String(64), nullable=True),
        sa.CheckConstraint("state IN ('open', 'closed')", name="ck_data_requests_state"),
    )
    op.create_index("ix_data_requests_enterprise", "data_requests", ["enterprise_id", "state"])
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("data_requests.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("quantity", sa.Float, nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("as_written", sa.Text, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_by", sa.String(64), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.String(64), nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.CheckConstraint("state IN ('submitted', 'approved', 'rejected', 'superseded')", name="ck_submissions_state"),
        sa.CheckConstraint("version >= 1", name="ck_submissions_version"),
        sa.UniqueConstraint("request_id", "version", name="uq_submissions_version"),
    )
    op.create_index("ix_submissions_state", "submissions", ["state"])
    op.create_table(
        "submission_evidence",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("submission_id", sa.Integer, sa.ForeignKey("submissions.id"), nullable=False),
        sa.Column("file_name", sa.String(200), nullable=False),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_submission_evidence_submission", "submission_evidence", ["submission_id"])
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
        for table in ("data_requests", "submissions", "submission_evidence"):
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION platform_append_only()"
            )


def downgrade() -> None:
    for table in ("submission_evidence", "submissions", "data_requests"):
        op.drop_table(table)
