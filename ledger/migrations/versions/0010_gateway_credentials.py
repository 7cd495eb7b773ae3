"""Gateways' broker credentials issued by the platform (issue #21): ``gateway_credentials``
(``portal/schema.py`` declares the table, spelled here again as a migration must not import the code
it migrates for). One row per registry gateway, keyed on the gateway id alone (no foreign key to the
registry's tables), holding only the Mosquitto ``$7$`` hash of the password.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_credentials",
        sa.Column("gateway_id", sa.String(64), primary_key=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(64), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotated_by", sa.String(64), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(64), nullable=True),
        sa.CheckConstraint("state IN ('active', 'revoked')", name="ck_gateway_credentials_state"),
        sa.CheckConstraint("generation >= 1", name="ck_gateway_credentials_generation"),
    )


def downgrade() -> None:
    op.drop_table("gateway_credentials")
