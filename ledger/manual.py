"""Manual data that the park office asked for and approved on the platform: data requests, the
enterprises' submissions (each correction a new version, never an edit) and their evidence files.

The platform (``portal/workflow.py``) writes these tables; the monthly pipeline reads only what was
approved, through :func:`read_approved`, in the shape the manual-data files give
(``scoring.inputs.read_activity`` and ``read_enterprises``). They live here, below both, because the
pipeline may not import the platform. The migration ``0005_data_requests`` creates them, with
triggers that refuse deleting a request or a submission, changing a submission's figures, and
changing or deleting an evidence file.

- ``data_requests``: what the park office asked an enterprise for (``kind``: value added for a year,
  or a monthly figure of one source), for which period (``YYYY`` or ``YYYY-MM``), by when (``due_on``),
  ``open`` or ``closed``.
- ``submissions``: one row per version of the enterprise's answer: the figure as the platform read it
  (``quantity`` in ``unit``, units as ``park.units`` names them; value added in 10k CNY) and as it was
  typed (``as_written``); ``state`` is ``submitted``, ``approved``, ``rejected`` (with the reviewer's
  reason) or ``superseded`` (an approved version a later approved correction replaced).
- ``submission_evidence``: the files of a version (PDF, PNG or JPEG), with their SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from sqlalchemy import (
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
)

from ledger.db import make_engine
from ledger.schema import metadata

VALUE_ADDED = "value_added"
VALUE_ADDED_UNIT = "10k CNY"  # 万元, as the enterprises file's value_added_10k_cny
# What a request may ask for → the activity source its figure is (None: value added for a year).
REQUEST_KINDS: dict[str, str | None] = {
    VALUE_ADDED: None,
    "natural_gas": "natural_gas",
    "purchased_heat": "purchased_heat",
    "diesel": "diesel",
    "green_electricity_certified": "green_electricity_certified",
    "pv_self_consumed": "pv_self_consumed",
    "pv_exported": "pv_exported",
}
REQUEST_STATES = ("open", "closed")
SUBMISSION_STATES = ("submitted", "approved", "rejected", "superseded")
# The frames' columns: those of scoring.inputs.read_activity / read_enterprises (spelled again here,
# as this layer may not import scoring; tests/pipeline/test_platform_manual.py compares them).
ACTIVITY_FRAME_COLUMNS = ["enterprise", "period", "source", "quantity", "unit", "workshop", "_row"]
VALUE_ADDED_FRAME_COLUMNS = ["enterprise", "year", "value_added_10k_cny", "_row"]

data_requests = Table(
    "data_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("enterprise_id", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("period", String(7), nullable=False),  # YYYY (value added) or YYYY-MM
    Column("due_on", Date, nullable=False),
    Column("note", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("closed_by", String(64), nullable=True),
    CheckConstraint("state IN ('open', 'closed')", name="ck_data_requests_state"),
    Index("ix_data_requests_enterprise", "enterprise_id", "state"),
)

submissions = Table(
    "submissions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer, ForeignKey("data_requests.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("quantity", Float, nullable=False),
    Column("unit", String(32), nullable=False),
    Column("as_written", Text, nullable=False),
    Column("submitted_at", DateTime(timezone=True), nullable=False),
    Column("submitted_by", String(64), nullable=False),
    Column("reviewed_at", DateTime(timezone=True), nullable=True),
    Column("reviewed_by", String(64), nullable=True),
    Column("reason", Text, nullable=True),
    CheckConstraint("state IN ('submitted', 'approved', 'rejected', 'superseded')", name="ck_submissions_state"),
    CheckConstraint("version >= 1", name="ck_submissions_version"),
    UniqueConstraint("request_id", "version", name="uq_submissions_version"),
    Index("ix_submissions_state", "state"),
)

submission_evidence = Table(
    "submission_evidence",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("submission_id", Integer, ForeignKey("submissions.id"), nullable=False),
    Column("file_name", String(200), nullable=False),
    Column("media_type", String(64), nullable=False),
    Column("size_bytes", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("uploaded_at", DateTime(timezone=True), nullable=False),
    Index("ix_submission_evidence_submission", "submission_id"),
)

TABLES = ("data_requests", "submissions", "submission_evidence")


@dataclass(frozen=True)
class ApprovedManual:
    """What the platform approved, in the files' shapes: activity rows as ``read_activity`` gives them
    (``_row`` is the submission's id) and value added per enterprise and year."""

    activity: pd.DataFrame
    value_added: pd.DataFrame


def approved(engine: Engine) -> ApprovedManual:
    """The approved figures in ``engine``'s database. Per enterprise, period and source (per enterprise
    and year for value added) the latest approval counts: a correction approved later replaces it."""
    query = (
        select(
            submissions.c.id,
            submissions.c.quantity,
            submissions.c.unit,
            submissions.c.reviewed_at,
            data_requests.c.enterprise_id,
            data_requests.c.kind,
            data_requests.c.period,
        )
        .join(data_requests, submissions.c.request_id == data_requests.c.id)
        .where(submissions.c.state == "approved")
        .order_by(submissions.c.reviewed_at, submissions.c.id)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    activity: dict[tuple[str, str, str], dict[str, object]] = {}
    value_added: dict[tuple[str, int], dict[str, object]] = {}
    for r in rows:  # in order of approval: a later one replaces an earlier one for the same key
        source = REQUEST_KINDS.get(r["kind"])
        if r["kind"] == VALUE_ADDED:
            year = int(r["period"])
            value_added[(r["enterprise_id"], year)] = {
                "enterprise": r["enterprise_id"],
                "year": year,
                "value_added_10k_cny": float(r["quantity"]),
                "_row": int(r["id"]),
            }
        elif source is not None:
            activity[(r["enterprise_id"], r["period"], source)] = {
                "enterprise": r["enterprise_id"],
                "period": r["period"],
                "source": source,
                "quantity": float(r["quantity"]),
                "unit": r["unit"],
                "workshop": "",
                "_row": int(r["id"]),
            }
    activity_frame = pd.DataFrame(list(activity.values()), columns=ACTIVITY_FRAME_COLUMNS)
    activity_frame["quantity"] = activity_frame["quantity"].astype(float)
    value_frame = pd.DataFrame(list(value_added.values()), columns=VALUE_ADDED_FRAME_COLUMNS)
    value_frame["year"] = value_frame["year"].astype(int)
    value_frame["value_added_10k_cny"] = value_frame["value_added_10k_cny"].astype(float)
    return ApprovedManual(activity_frame, value_frame)


def read_approved(url: str) -> ApprovedManual | None:
    """:func:`approved` of the database at ``url``, opened read-only; None when it has no platform
    tables (a park without the platform keeps its files). A database that cannot be reached is an
    error, not an empty answer: approved figures must not silently go missing."""
    engine = make_engine(url, read_only=True)
    try:
        names = set(inspect(engine).get_table_names())
        if not set(TABLES) <= names:
            return None
        return approved(engine)
    finally:
        engine.dispose()
