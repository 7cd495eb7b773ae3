"""Result versions of a settled year: what settlement produced, frozen, and where it stands in
publication (公示) and issuance.

Settlement (``pipeline/annual.py``) records a version with :func:`record_version`; the platform
(``portal/publication.py``) publishes it, takes the enterprises' objections, finalises it and has a
park admin approve its issuance. The tables live here, below both, because the pipeline writes them and
may not import the platform; the migration ``0007_results_publication`` creates them, with triggers
that refuse deleting anything, changing a row of a version, and changing what identifies a version or
an objection.

- ``result_versions``: one per year and version number. ``state``: ``draft`` (settled, not shown to
  enterprises) → ``published`` (公示 until ``window_ends_on``, a number of working days the policy
  sets) → ``final``; any of them → ``superseded`` when a re-settlement with other content records the
  next version. ``issuance``: ``proposed`` (the ledger books it once a park admin approves the final
  version: ``ledger.issuance = reviewed``), ``approved`` (booked then), or ``on_settlement`` (booked by
  settlement itself: ``ledger.issuance = on_settlement``, a park without the platform).
- ``result_rows``: the version's rows, one per enterprise, as ``CREDITS_ANNUAL`` had them; never changed.
- ``result_objections``: an enterprise's objection to its row of a published version, with its reason;
  ``open`` until an analyst ``dismissed`` or ``upheld`` it (with a reason). An upheld objection is
  corrected through a data submission and a re-settlement, which records the next version.

Identical content (the rows' SHA-256, :func:`content_sha256`) is never recorded twice in a row: a
re-settlement that changes nothing keeps the version it had.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Date,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
    update,
)

from ledger.book import SettledCredit
from ledger.db import as_utc, as_utc_or_none, lock
from ledger.schema import metadata

VERSION_STATES = ("draft", "published", "final", "superseded")
ISSUANCE_STATES = ("proposed", "approved", "on_settlement")
OBJECTION_STATES = ("open", "dismissed", "upheld")
# ``ledger.issuance`` (park.settings.LedgerSettings) → the issuance a new version starts with.
ISSUANCE_OF_MODE = {"on_settlement": "on_settlement", "reviewed": "proposed"}

result_versions = Table(
    "result_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("year", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("deadline", Date, nullable=False),  # deficits of the year are due by it (when booked)
    Column("issuance", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("published_at", DateTime(timezone=True), nullable=True),
    Column("published_by", String(64), nullable=True),
    Column("window_ends_on", Date, nullable=True),  # the last day of the 公示 window
    Column("finalised_at", DateTime(timezone=True), nullable=True),
    Column("finalised_by", String(64), nullable=True),
    Column("superseded_at", DateTime(timezone=True), nullable=True),
    Column("issuance_at", DateTime(timezone=True), nullable=True),
    Column("issuance_by", String(64), nullable=True),
    CheckConstraint("state IN ('draft', 'published', 'final', 'superseded')", name="ck_result_versions_state"),
    CheckConstraint("issuance IN ('proposed', 'approved', 'on_settlement')", name="ck_result_versions_issuance"),
    CheckConstraint("version >= 1", name="ck_result_versions_version"),
    UniqueConstraint("year", "version", name="uq_result_versions_version"),
)

result_rows = Table(
    "result_rows",
    metadata,
    Column("version_id", Integer, ForeignKey("result_versions.id"), primary_key=True),
    Column("enterprise_id", String(64), primary_key=True),
    Column("industry", String(16), nullable=False),
    Column("grade", Integer, nullable=True),  # 1 (best) … 5; NULL without value added
    Column("rating", String(2), nullable=True),
    Column("rating_score", Float, nullable=True),
    Column("credits_t", Float, nullable=True),  # + surplus, − deficit [t CO2], unrounded; NULL: not bookable
    Column("emissions_tco2", Float, nullable=True),
    Column("value_added_10k_cny", Float, nullable=True),
    Column("intensity_t_per_10k_cny", Float, nullable=True),
    Column("benchmark_t_per_10k_cny", Float, nullable=True),
    Column("inputs_sha256", String(64), nullable=False),
    Column("policy_version", String(32), nullable=False),
    Column("factor_set", String(64), nullable=False),
    Column("nearzero_workshops", Text, nullable=False),  # workshops with a near-zero target, comma-separated
    Column("note", Text, nullable=False),
)

result_objections = Table(
    "result_objections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version_id", Integer, ForeignKey("result_versions.id"), nullable=False),
    Column("enterprise_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("filed_at", DateTime(timezone=True), nullable=False),
    Column("filed_by", String(64), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(64), nullable=True),
    Column("decision", Text, nullable=True),
    CheckConstraint("state IN ('open', 'dismissed', 'upheld')", name="ck_result_objections_state"),
    Index("ix_result_objections_version", "version_id", "state"),
)

TABLES = ("result_versions", "result_rows", "result_objections")


@dataclass(frozen=True)
class ResultRow:
    """One enterprise's settled result of a year, as ``CREDITS_ANNUAL`` has it."""

    enterprise_id: str
    industry: str
    grade: int | None
    rating: str | None
    rating_score: float | None
    credits_t: float | None
    emissions_tco2: float | None
    value_added_10k_cny: float | None
    intensity_t_per_10k_cny: float | None
    benchmark_t_per_10k_cny: float | None
    inputs_sha256: str
    policy_version: str
    factor_set: str
    nearzero_workshops: str = ""
    note: str = ""


@dataclass(frozen=True)
class ResultVersion:
    id: int
    year: int
    version: int
    state: str
    content_sha256: str
    deadline: date
    issuance: str
    created_at: datetime
    created_by: str
    published_at: datetime | None
    published_by: str | None
    window_ends_on: date | None
    finalised_at: datetime | None
    finalised_by: str | None
    superseded_at: datetime | None
    issuance_at: datetime | None
    issuance_by: str | None

    @property
    def label(self) -> str:
        return f"{self.year} v{self.version}"


@dataclass(frozen=True)
class Objection:
    id: int
    version_id: int
    enterprise_id: str
    reason: str
    state: str
    filed_at: datetime
    filed_by: str
    decided_at: datetime | None
    decided_by: str | None
    decision: str | None


def _finite(value: object) -> float | None:
    """A figure as the rows keep it: None for what is missing (None, NaN, infinite, not a number)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def row_of(record: dict[str, Any], nearzero_workshops: Collection[str] = ()) -> ResultRow:
    """A result row from a row of the settled ``CREDITS_ANNUAL`` frame (``pipeline.annual``)."""
    grade = _finite(record.get("grade"))
    rating = record.get("rating")
    return ResultRow(
        enterprise_id=str(record["enterprise"]),
        industry=str(record.get("industry") or ""),
        grade=None if grade is None else int(grade),
        rating=str(rating) if isinstance(rating, str) and rating else None,
        rating_score=_finite(record.get("rating_score")),
        credits_t=_finite(record.get("credits_tco2")),
        emissions_tco2=_finite(record.get("emissions_tco2")),
        value_added_10k_cny=_finite(record.get("value_added_used_10k_cny", record.get("value_added_10k_cny"))),
        intensity_t_per_10k_cny=_finite(record.get("intensity_t_per_10k_cny")),
        benchmark_t_per_10k_cny=_finite(record.get("benchmark_t_per_10k_cny")),
        inputs_sha256=str(record.get("inputs_sha256") or ""),
        policy_version=str(record.get("policy_version") or ""),
        factor_set=str(record.get("factor_set") or ""),
        nearzero_workshops=",".join(sorted(nearzero_workshops)),
        note=str(record.get("note") or "") if not _is_nan(record.get("note")) else "",
    )


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def content_sha256(year: int, rows: Sequence[ResultRow]) -> str:
    """The SHA-256 of a year's rows, in enterprise order (floats as ``repr``, so any change shows)."""
    canonical = [
        {k: (repr(v) if isinstance(v, float) else v) for k, v in asdict(r).items()}
        for r in sorted(rows, key=lambda r: r.enterprise_id)
    ]
    text = json.dumps({"year": year, "rows": canonical}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _version(row: Any) -> ResultVersion:
    return ResultVersion(
        id=int(row["id"]),
        year=int(row["year"]),
        version=int(row["version"]),
        state=row["state"],
        content_sha256=row["content_sha256"],
        deadline=row["deadline"],
        issuance=row["issuance"],
        created_at=as_utc(row["created_at"]),
        created_by=row["created_by"],
        published_at=as_utc_or_none(row["published_at"]),
        published_by=row["published_by"],
        window_ends_on=row["window_ends_on"],
        finalised_at=as_utc_or_none(row["finalised_at"]),
        finalised_by=row["finalised_by"],
        superseded_at=as_utc_or_none(row["superseded_at"]),
        issuance_at=as_utc_or_none(row["issuance_at"]),
        issuance_by=row["issuance_by"],
    )


def _objection(row: Any) -> Objection:
    return Objection(
        id=int(row["id"]),
        version_id=int(row["version_id"]),
        enterprise_id=row["enterprise_id"],
        reason=row["reason"],
        state=row["state"],
        filed_at=as_utc(row["filed_at"]),
        filed_by=row["filed_by"],
        decided_at=as_utc_or_none(row["decided_at"]),
        decided_by=row["decided_by"],
        decision=row["decision"],
    )


# -- reading -----------------------------------------------------------------------------------------


def versions(conn: Connection, year: int | None = None) -> list[ResultVersion]:
    """Every version (of ``year`` if given), newest year and version first; superseded ones included."""
    query = select(result_versions).order_by(result_versions.c.year.desc(), result_versions.c.version.desc())
    if year is not None:
        query = query.where(result_versions.c.year == year)
    return [_version(r) for r in conn.execute(query).mappings()]


def version_by_id(conn: Connection, version_id: int) -> ResultVersion | None:
    row = conn.execute(select(result_versions).where(result_versions.c.id == version_id)).mappings().first()
    return None if row is None else _version(row)


def current_version(conn: Connection, year: int) -> ResultVersion | None:
    """The year's newest version (the one not superseded), whatever its state; None before settlement."""
    found = versions(conn, year)
    return found[0] if found else None


def final_version(conn: Connection, year: int) -> ResultVersion | None:
    """The year's final version (published, window passed, no objection holding it), if any: what a
    credit report or a list for the park office should rest on."""
    return next((v for v in versions(conn, year) if v.state == "final"), None)


def rows_of(conn: Connection, version_id: int, enterprise_ids: Collection[str] | None = None) -> list[ResultRow]:
    """The rows of version ``version_id`` (only those of ``enterprise_ids`` if given), in enterprise order."""
    query = select(result_rows).where(result_rows.c.version_id == version_id).order_by(result_rows.c.enterprise_id)
    if enterprise_ids is not None:
        query = query.where(result_rows.c.enterprise_id.in_(sorted(enterprise_ids)))
    return [ResultRow(**{k: v for k, v in r.items() if k != "version_id"}) for r in conn.execute(query).mappings()]


def objections_of(
    conn: Connection, version_ids: Collection[int], enterprise_ids: Collection[str] | None = None
) -> list[Objection]:
    """The objections to ``version_ids`` (only those of ``enterprise_ids`` if given), oldest first."""
    query = (
        select(result_objections)
        .where(result_objections.c.version_id.in_(sorted(version_ids)))
        .order_by(result_objections.c.id)
    )
    if enterprise_ids is not None:
        query = query.where(result_objections.c.enterprise_id.in_(sorted(enterprise_ids)))
    return [_objection(r) for r in conn.execute(query).mappings()]


def settled_credits(rows: Sequence[ResultRow]) -> list[SettledCredit]:
    """What the ledger books of a version: every row with credits (an enterprise without value added
    has none, and nothing of it is booked)."""
    return [
        SettledCredit(r.enterprise_id, r.credits_t, r.inputs_sha256, r.policy_version, r.factor_set)
        for r in rows
        if r.credits_t is not None
    ]


# -- recording a settlement --------------------------------------------------------------------------


def record_version(
    engine: Engine,
    year: int,
    rows: Sequence[ResultRow],
    deadline: date,
    issuance: str,
    created_by: str,
    now: datetime | None = None,
) -> tuple[ResultVersion, bool]:
    """Record what settling ``year`` produced: (the version, True) when its content differs from the
    year's newest version (which is superseded) or the year had none, (the newest version, False)
    when it is the same. ``issuance``: ``proposed`` or ``on_settlement`` (see :data:`ISSUANCE_OF_MODE`).
    Two settlements at once queue on a lock of the year (PostgreSQL; SQLite's writers always do)."""
    if issuance not in ("proposed", "on_settlement"):
        raise ValueError(f"a new version's issuance is proposed or on_settlement, not {issuance!r}")
    if not rows:
        raise ValueError(f"no result rows for {year}: nothing to record")
    twice = sorted({r.enterprise_id for r in rows if sum(o.enterprise_id == r.enterprise_id for o in rows) > 1})
    if twice:
        raise ValueError(f"the results of {year} name {', '.join(twice)} more than once")
    now = now or datetime.now(UTC)
    digest = content_sha256(year, rows)
    with engine.begin() as conn:
        lock(conn, f"results:{year}")
        newest = current_version(conn, year)
        if newest is not None and newest.content_sha256 == digest:
            return newest, False
        if newest is not None and newest.state != "superseded":
            conn.execute(
                update(result_versions)
                .where(result_versions.c.id == newest.id, result_versions.c.state == newest.state)
                .values(state="superseded", superseded_at=now)
            )
        version_id = int(
            conn.execute(
                insert(result_versions)
                .values(
                    year=year,
                    version=1 if newest is None else newest.version + 1,
                    state="draft",
                    content_sha256=digest,
                    deadline=deadline,
                    issuance=issuance,
                    created_at=now,
                    created_by=created_by[:64],
                    issuance_at=now if issuance == "on_settlement" else None,
                    issuance_by=created_by[:64] if issuance == "on_settlement" else None,
                )
                .returning(result_versions.c.id)
            ).scalar_one()
        )
        conn.execute(insert(result_rows), [{"version_id": version_id, **asdict(r)} for r in rows])
        recorded = version_by_id(conn, version_id)
    assert recorded is not None
    return recorded, True
