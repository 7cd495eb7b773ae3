"""Data requests and submissions (maker/checker): which change of state is allowed, who may make it,
and the changes themselves, each with its line in the audit log.

A **request** (the park office asks an enterprise for a figure by a due date)::

    (new) ──open──▶ open ──close──▶ closed

A **submission** is one version of the enterprise's answer; a resubmission after a rejection and a
correction after an approval are new versions, never an edit::

    (new) ──submit──▶ submitted ──approve──▶ approved ──(a later version approved)──▶ superseded
                          └──────reject (with a reason)──▶ rejected

Only the transitions of :data:`REQUEST_TRANSITIONS` and :data:`SUBMISSION_TRANSITIONS` exist, each
for the roles it names: anything else raises :class:`IllegalTransitionError` (HTTP 409) or, for a role
that may never make such a change, :class:`portal.scope.ForbiddenError` (403). A new version needs an
open request with no version awaiting review; a request cannot be closed while one does.

Concurrency: every change of a state is a conditional UPDATE (``WHERE state = <the state it leaves>``),
so of two analysts approving the same version at once exactly one books it and the other gets 409.
Submitting and closing first take the request's row (an UPDATE of it), so they queue on PostgreSQL as
SQLite's writers always do. The tables are ``ledger/manual.py``'s, which the monthly pipeline reads.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger.manual import REQUEST_KINDS, VALUE_ADDED, VALUE_ADDED_UNIT, data_requests, submission_evidence, submissions
from park.units import UnitError, convert, normalize_unit
from portal.audit import Actor, record
from portal.scope import ForbiddenError, NotFoundError
from scoring.accounting import ACCOUNTING_UNIT, Source
from scoring.inputs import parse_number, parse_period

PARK_OFFICE = ("park_admin", "park_analyst")  # open and close requests
SUBMITTERS = ("enterprise_admin", "enterprise_reporter")  # of the request's enterprise only
REVIEWERS = ("park_admin", "park_analyst")
NEW = "new"  # the state before a request or a version exists

REQUEST_TRANSITIONS: dict[tuple[str, str], tuple[str, ...]] = {
    (NEW, "open"): PARK_OFFICE,
    ("open", "closed"): PARK_OFFICE,
}
SUBMISSION_TRANSITIONS: dict[tuple[str, str], tuple[str, ...]] = {
    (NEW, "submitted"): SUBMITTERS,
    ("submitted", "approved"): REVIEWERS,
    ("submitted", "rejected"): REVIEWERS,
    ("approved", "superseded"): REVIEWERS,  # only by approving a later version of the same request
}
KIND_NAMES = {
    VALUE_ADDED: "工业增加值 value added (year)",
    "natural_gas": "天然气 natural gas bill",
    "purchased_heat": "外购热力 purchased heat bill",
    "diesel": "柴油 diesel bill",
    "green_electricity_certified": "绿证电量 green electricity certificates",
    "pv_self_consumed": "光伏自用 PV generation used on site",
    "pv_exported": "光伏上网 PV generation exported",
}
VALUE_ADDED_UNITS = {"", "万元", "10k cny", "10^4 cny", "10000 cny"}
MAX_EVIDENCE_BYTES = 10 * 1024 * 1024  # 10 MiB per file
MAX_EVIDENCE_FILES = 5
# media type → (the file's first bytes, the file name endings it may have)
EVIDENCE_TYPES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "application/pdf": (b"%PDF-", (".pdf",)),
    "image/png": (b"\x89PNG\r\n\x1a\n", (".png",)),
    "image/jpeg": (b"\xff\xd8\xff", (".jpg", ".jpeg")),
}
MAX_NOTE_CHARS = 2000


class WorkflowError(Exception):
    """A request or submission the workflow refuses."""


class IllegalTransitionError(WorkflowError):
    """A change of state that the state machine does not allow from the present state (HTTP 409)."""

    def __init__(self, what: str, from_state: str, to_state: str, why: str = "") -> None:
        self.what, self.from_state, self.to_state = what, from_state, to_state
        super().__init__(f"{what}: {from_state} → {to_state} is not allowed" + (f" ({why})" if why else ""))


class InvalidInputError(WorkflowError):
    """A figure, a period, a date, a reason or an evidence file that cannot be taken (HTTP 400)."""


def check_transition(
    transitions: dict[tuple[str, str], tuple[str, ...]], what: str, from_state: str, to_state: str, role: str
) -> None:
    """Raise unless ``role`` may take ``what`` from ``from_state`` to ``to_state``: ForbiddenError for a
    role that may never bring anything into ``to_state``, IllegalTransitionError for a transition that
    does not exist from ``from_state``."""
    may = {r for (_, to), roles in transitions.items() if to == to_state for r in roles}
    if role not in may:
        raise ForbiddenError(f"a {role} cannot make {what} {to_state}")
    allowed = transitions.get((from_state, to_state))
    if allowed is None:
        raise IllegalTransitionError(what, from_state, to_state)
    if role not in allowed:
        raise ForbiddenError(f"a {role} cannot take {what} from {from_state} to {to_state}")


# -- what is read and shown ------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceFile:
    id: int
    file_name: str
    media_type: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class Version:
    id: int
    version: int
    state: str
    quantity: float
    unit: str
    as_written: str
    submitted_at: datetime
    submitted_by: str
    reviewed_at: datetime | None
    reviewed_by: str | None
    reason: str | None
    evidence: tuple[EvidenceFile, ...] = ()


@dataclass(frozen=True)
class Request:
    id: int
    enterprise_id: str
    kind: str
    period: str
    due_on: date
    note: str
    state: str
    created_at: datetime
    created_by: str
    closed_at: datetime | None
    closed_by: str | None
    versions: tuple[Version, ...] = field(default=())

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind)

    @property
    def unit_hint(self) -> str:
        """The unit the figure is accounted in (another of the same dimension is converted)."""
        source = REQUEST_KINDS.get(self.kind)
        return VALUE_ADDED_UNIT if source is None else ACCOUNTING_UNIT[Source(source)]

    @property
    def latest(self) -> Version | None:
        return self.versions[-1] if self.versions else None

    @property
    def awaiting_review(self) -> Version | None:
        latest = self.latest
        return latest if latest is not None and latest.state == "submitted" else None

    @property
    def approved(self) -> Version | None:
        """The version in force: the approved one (a later approved correction supersedes it)."""
        return next((v for v in reversed(self.versions) if v.state == "approved"), None)

    @property
    def may_submit(self) -> bool:
        return self.state == "open" and self.awaiting_review is None

    def overdue(self, today: date) -> bool:
        """Open, past its due date, and nothing approved or awaiting review."""
        return self.state == "open" and today > self.due_on and self.approved is None and self.awaiting_review is None

    @property
    def status(self) -> str:
        if self.state == "closed":
            return "closed"
        latest = self.latest
        return "open" if latest is None else f"v{latest.version} {latest.state}"


def load_requests(conn: Connection, enterprise_ids: Collection[str], request_id: int | None = None) -> list[Request]:
    """The requests of ``enterprise_ids`` (only the one with ``request_id`` if given), each with every
    version and its evidence, oldest first."""
    query = select(data_requests).where(data_requests.c.enterprise_id.in_(sorted(enterprise_ids)))
    if request_id is not None:
        query = query.where(data_requests.c.id == request_id)
    rows = conn.execute(query.order_by(data_requests.c.id)).mappings().all()
    if not rows:
        return []
    ids = [int(r["id"]) for r in rows]
    version_rows = (
        conn.execute(
            select(submissions)
            .where(submissions.c.request_id.in_(ids))
            .order_by(submissions.c.request_id, submissions.c.version)
        )
        .mappings()
        .all()
    )
    evidence: dict[int, list[EvidenceFile]] = {}
    if version_rows:
        files = conn.execute(
            select(
                submission_evidence.c.id,
                submission_evidence.c.submission_id,
                submission_evidence.c.file_name,
                submission_evidence.c.media_type,
                submission_evidence.c.size_bytes,
                submission_evidence.c.sha256,
            )
            .where(submission_evidence.c.submission_id.in_([int(v["id"]) for v in version_rows]))
            .order_by(submission_evidence.c.id)
        ).mappings()
        for f in files:
            evidence.setdefault(int(f["submission_id"]), []).append(
                EvidenceFile(int(f["id"]), f["file_name"], f["media_type"], int(f["size_bytes"]), f["sha256"])
            )
    versions: dict[int, list[Version]] = {}
    for v in version_rows:
        versions.setdefault(int(v["request_id"]), []).append(
            Version(
                id=int(v["id"]),
                version=int(v["version"]),
                state=v["state"],
                quantity=float(v["quantity"]),
                unit=v["unit"],
                as_written=v["as_written"],
                submitted_at=v["submitted_at"],
                submitted_by=v["submitted_by"],
                reviewed_at=v["reviewed_at"],
                reviewed_by=v["reviewed_by"],
                reason=v["reason"],
                evidence=tuple(evidence.get(int(v["id"]), [])),
            )
        )
    return [
        Request(
            id=int(r["id"]),
            enterprise_id=r["enterprise_id"],
            kind=r["kind"],
            period=r["period"],
            due_on=r["due_on"],
            note=r["note"],
            state=r["state"],
            created_at=r["created_at"],
            created_by=r["created_by"],
            closed_at=r["closed_at"],
            closed_by=r["closed_by"],
            versions=tuple(versions.get(int(r["id"]), [])),
        )
        for r in rows
    ]


def load_request(conn: Connection, enterprise_id: str, request_id: int) -> Request:
    """The request ``request_id`` of ``enterprise_id``; NotFoundError for any other (another
    enterprise's request answers as one that does not exist)."""
    found = load_requests(conn, [enterprise_id], request_id)
    if not found:
        raise NotFoundError(f"request {request_id}")
    return found[0]


def evidence_content(
    conn: Connection, enterprise_id: str, request_id: int, evidence_id: int
) -> tuple[EvidenceFile, bytes]:
    """An evidence file of a version of the request ``request_id`` of ``enterprise_id``, and its bytes."""
    row = (
        conn.execute(
            select(submission_evidence)
            .join(submissions, submission_evidence.c.submission_id == submissions.c.id)
            .join(data_requests, submissions.c.request_id == data_requests.c.id)
            .where(
                submission_evidence.c.id == evidence_id,
                data_requests.c.id == request_id,
                data_requests.c.enterprise_id == enterprise_id,
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError(f"evidence {evidence_id}")
    info = EvidenceFile(int(row["id"]), row["file_name"], row["media_type"], int(row["size_bytes"]), row["sha256"])
    return info, bytes(row["content"])


# -- what is typed ---------------------------------------------------------------------------------


def parse_request_period(kind: str, text: str) -> str:
    """The period a request asks for: a year (``YYYY``) for value added, else a month (``YYYY-MM``,
    as :func:`scoring.inputs.parse_period` reads a file's)."""
    if kind not in REQUEST_KINDS:
        raise InvalidInputError(f"unknown kind of request {kind!r}; expected one of {', '.join(REQUEST_KINDS)}")
    if kind == VALUE_ADDED:
        try:
            year = parse_number(text)
        except ValueError:
            year = math.nan
        if not (year.is_integer() and 1990 <= year <= 2100):
            raise InvalidInputError(f"{text!r} is not a year")
        return f"{int(year):04d}"
    try:
        return parse_period(text)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


def parse_figure(kind: str, quantity_text: str, unit_text: str) -> tuple[float, str]:
    """(quantity, canonical unit) of a submitted figure, by the manual-data files' rules
    (:func:`scoring.inputs.parse_number`, :func:`park.units.normalize_unit`, a unit the source's
    accounting unit can be converted from). Value added is in 10k CNY (万元)."""
    try:
        quantity = parse_number(quantity_text)
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    if not math.isfinite(quantity) or quantity < 0:
        raise InvalidInputError(f"{quantity_text!r} is not a number >= 0")
    source = REQUEST_KINDS.get(kind)
    if kind == VALUE_ADDED:
        if unit_text.strip().lower() not in VALUE_ADDED_UNITS:
            raise InvalidInputError(f"value added is given in 万元 (10k CNY), not {unit_text!r}")
        return quantity, VALUE_ADDED_UNIT
    if source is None:
        raise InvalidInputError(f"unknown kind of request {kind!r}")
    try:
        unit = normalize_unit(unit_text)
        convert(1.0, unit, ACCOUNTING_UNIT[Source(source)])
    except UnitError as exc:
        if unit_text.strip().lower() in ("m3", "立方米"):
            raise InvalidInputError("gas in m3 as metered needs the policy's correction: give Nm3") from None
        raise InvalidInputError(f"{exc} for {source}") from None
    return quantity, unit


@dataclass(frozen=True)
class Evidence:
    """An evidence file as uploaded, checked by :func:`evidence`."""

    file_name: str
    media_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def evidence(file_name: str, content: bytes) -> Evidence:
    """An uploaded file as evidence: PDF, PNG or JPEG by its first bytes (not only by its name, whose
    ending must agree), at most :data:`MAX_EVIDENCE_BYTES`."""
    name = re.sub(r"[\x00-\x1f\x7f/\\]", "_", file_name.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip()[-200:]
    if not name:
        raise InvalidInputError("an evidence file needs a name")
    if len(content) > MAX_EVIDENCE_BYTES:
        raise InvalidInputError(f"{name}: larger than {MAX_EVIDENCE_BYTES // (1024 * 1024)} MiB")
    if not content:
        raise InvalidInputError(f"{name}: empty")
    media_type = next((t for t, (magic, _) in EVIDENCE_TYPES.items() if content.startswith(magic)), None)
    if media_type is None:
        raise InvalidInputError(f"{name}: not a PDF, PNG or JPEG file (by its content)")
    if not name.lower().endswith(EVIDENCE_TYPES[media_type][1]):
        raise InvalidInputError(f"{name}: its content is {media_type}, its name says otherwise")
    return Evidence(name, media_type, content)


# -- changes ---------------------------------------------------------------------------------------


def _target(enterprise_id: str, request_id: int, version: int | None = None) -> str:
    return f"enterprise:{enterprise_id} request:{request_id}" + (f" version:{version}" if version else "")


def open_request(
    conn: Connection,
    actor: Actor,
    enterprise_id: str,
    kind: str,
    period_text: str,
    due_on_text: str,
    note: str,
    now: datetime,
) -> int:
    """A new open request to ``enterprise_id`` (whose scope the caller resolved); its id."""
    check_transition(REQUEST_TRANSITIONS, "a request", NEW, "open", actor.role)
    period = parse_request_period(kind, period_text)
    try:
        due_on = date.fromisoformat(due_on_text.strip())
    except ValueError:
        raise InvalidInputError(f"{due_on_text!r} is not a date (YYYY-MM-DD)") from None
    if len(note) > MAX_NOTE_CHARS:
        raise InvalidInputError(f"the note is longer than {MAX_NOTE_CHARS} characters")
    request_id = int(
        conn.execute(
            insert(data_requests)
            .values(
                enterprise_id=enterprise_id,
                kind=kind,
                period=period,
                due_on=due_on,
                note=note.strip(),
                state="open",
                created_at=now,
                created_by=actor.name,
            )
            .returning(data_requests.c.id)
        ).scalar_one()
    )
    record(
        conn, actor, "request.open", _target(enterprise_id, request_id), NEW, f"open: {kind} {period} due {due_on}", now
    )
    return request_id


def _take_open_request(conn: Connection, request: Request, to_state: str, now: datetime, actor: Actor) -> bool:
    """Move the request from open to ``to_state`` (open: only take its row) if it still is open."""
    values: dict[str, Any] = {"state": to_state}
    if to_state == "closed":
        values |= {"closed_at": now, "closed_by": actor.name}
    changed = conn.execute(
        update(data_requests).where(data_requests.c.id == request.id, data_requests.c.state == "open").values(**values)
    ).rowcount
    return bool(changed == 1)


def close_request(conn: Connection, actor: Actor, enterprise_id: str, request_id: int, now: datetime) -> None:
    """Close an open request: no more versions; refused while a version awaits review."""
    request = load_request(conn, enterprise_id, request_id)
    what = f"request {request_id}"
    check_transition(REQUEST_TRANSITIONS, what, request.state, "closed", actor.role)
    if not _take_open_request(conn, request, "closed", now, actor):
        raise IllegalTransitionError(what, "closed", "closed")
    pending = conn.execute(
        select(submissions.c.version).where(submissions.c.request_id == request_id, submissions.c.state == "submitted")
    ).first()
    if pending is not None:
        raise IllegalTransitionError(what, "open", "closed", f"version {pending[0]} awaits review")
    record(conn, actor, "request.close", _target(enterprise_id, request_id), "open", "closed", now)


def submit(
    conn: Connection,
    actor: Actor,
    enterprise_id: str,
    request_id: int,
    quantity_text: str,
    unit_text: str,
    files: Sequence[Evidence],
    now: datetime,
) -> int:
    """A new version answering the request: its version number. The request must be open and have no
    version awaiting review; at least one evidence file."""
    if actor.role in SUBMITTERS and actor.enterprise_id != enterprise_id:
        raise NotFoundError(f"request {request_id}")
    request = load_request(conn, enterprise_id, request_id)
    what = f"request {request_id}"
    check_transition(SUBMISSION_TRANSITIONS, f"a version of {what}", NEW, "submitted", actor.role)
    if request.state != "open" or not _take_open_request(conn, request, "open", now, actor):
        raise IllegalTransitionError(f"a version of {what}", NEW, "submitted", "the request is closed")
    quantity, unit = parse_figure(request.kind, quantity_text, unit_text)
    if not files:
        raise InvalidInputError("a submission needs at least one evidence file (PDF, PNG or JPEG)")
    if len(files) > MAX_EVIDENCE_FILES:
        raise InvalidInputError(f"at most {MAX_EVIDENCE_FILES} evidence files per version")
    latest = conn.execute(
        select(submissions.c.version, submissions.c.state)
        .where(submissions.c.request_id == request_id)
        .order_by(submissions.c.version.desc())
        .limit(1)
    ).first()
    if latest is not None and latest.state == "submitted":
        raise IllegalTransitionError(
            f"a version of {what}", NEW, "submitted", f"version {latest.version} awaits review"
        )
    version = 1 if latest is None else int(latest.version) + 1
    as_written = f"{quantity_text.strip()} {unit_text.strip()}".strip()
    try:
        submission_id = int(
            conn.execute(
                insert(submissions)
                .values(
                    request_id=request_id,
                    version=version,
                    state="submitted",
                    quantity=quantity,
                    unit=unit,
                    as_written=as_written,
                    submitted_at=now,
                    submitted_by=actor.name,
                )
                .returning(submissions.c.id)
            ).scalar_one()
        )
    except IntegrityError:  # another version was submitted at the same instant
        raise IllegalTransitionError(
            f"a version of {what}", NEW, "submitted", f"version {version} was submitted at the same time"
        ) from None
    for f in files:
        conn.execute(
            insert(submission_evidence).values(
                submission_id=submission_id,
                file_name=f.file_name,
                media_type=f.media_type,
                size_bytes=len(f.content),
                sha256=f.sha256,
                content=f.content,
                uploaded_at=now,
            )
        )
    files_text = ", ".join(f"{f.file_name} sha256:{f.sha256}" for f in files)
    record(
        conn,
        actor,
        "submission.submit",
        _target(enterprise_id, request_id, version),
        NEW,
        f"submitted: {quantity!r} {unit} ({as_written}); evidence {files_text}",
        now,
    )
    return version


def _version_of(request: Request, version: int) -> Version:
    found = next((v for v in request.versions if v.version == version), None)
    if found is None:
        raise NotFoundError(f"version {version}")
    return found


def _move(conn: Connection, submission_id: int, from_state: str, values: dict[str, Any]) -> bool:
    """The conditional UPDATE every change of a version's state is: it happens only from ``from_state``."""
    changed = conn.execute(
        update(submissions).where(submissions.c.id == submission_id, submissions.c.state == from_state).values(**values)
    ).rowcount
    return bool(changed == 1)


def _current_state(conn: Connection, submission_id: int) -> str:
    return str(conn.execute(select(submissions.c.state).where(submissions.c.id == submission_id)).scalar_one())


def approve(conn: Connection, actor: Actor, enterprise_id: str, request_id: int, version: int, now: datetime) -> None:
    """Approve a submitted version; an earlier approved version of the request becomes superseded."""
    request = load_request(conn, enterprise_id, request_id)
    what = f"version {version} of request {request_id}"
    row = _version_of(request, version)
    check_transition(SUBMISSION_TRANSITIONS, what, row.state, "approved", actor.role)
    if not _move(conn, row.id, "submitted", {"state": "approved", "reviewed_at": now, "reviewed_by": actor.name}):
        raise IllegalTransitionError(what, _current_state(conn, row.id), "approved", "changed meanwhile")
    record(conn, actor, "submission.approve", _target(enterprise_id, request_id, version), "submitted", "approved", now)
    for earlier in request.versions:
        if earlier.state == "approved" and earlier.id != row.id:
            check_transition(SUBMISSION_TRANSITIONS, f"version {earlier.version}", "approved", "superseded", actor.role)
            if _move(conn, earlier.id, "approved", {"state": "superseded"}):
                record(
                    conn,
                    actor,
                    "submission.supersede",
                    _target(enterprise_id, request_id, earlier.version),
                    "approved",
                    f"superseded by version {version}",
                    now,
                )


def reject(
    conn: Connection, actor: Actor, enterprise_id: str, request_id: int, version: int, reason: str, now: datetime
) -> None:
    """Reject a submitted version with a reason (refused without one); the enterprise may resubmit."""
    request = load_request(conn, enterprise_id, request_id)
    what = f"version {version} of request {request_id}"
    row = _version_of(request, version)
    check_transition(SUBMISSION_TRANSITIONS, what, row.state, "rejected", actor.role)
    reason = reason.strip()
    if not reason:
        raise InvalidInputError("a rejection needs a reason")
    if len(reason) > MAX_NOTE_CHARS:
        raise InvalidInputError(f"the reason is longer than {MAX_NOTE_CHARS} characters")
    values = {"state": "rejected", "reviewed_at": now, "reviewed_by": actor.name, "reason": reason}
    if not _move(conn, row.id, "submitted", values):
        raise IllegalTransitionError(what, _current_state(conn, row.id), "rejected", "changed meanwhile")
    record(
        conn,
        actor,
        "submission.reject",
        _target(enterprise_id, request_id, version),
        "submitted",
        f"rejected: {reason}",
        now,
    )
