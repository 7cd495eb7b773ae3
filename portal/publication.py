"""Publication (公示) of a year's result versions, the enterprises' objections, finalisation and the
reviewed issuance of credits, each change with its line in the audit log.

A **result version** (``ledger/results.py``; settlement records it)::

    (settled) draft ──publish──▶ published ──finalise (window over, no objection open or upheld)──▶ final
        └──────────────┴──────────────┴──(a re-settlement with other content)──▶ superseded

Publishing opens a window of :attr:`scoring.policy.Policy.publication_working_days` working days (the
State Council calendar, ``park.holidays``): ``window_ends_on`` is its last day. Finalising on or
before it is refused; so is finalising a version that an open objection holds or an upheld one has
found wrong (its correction is re-settled into the next version, published again).

An **objection** (the enterprise admin of the row's enterprise, with a reason, during the window)::

    (new) ──file──▶ open ──dismiss (with a reason)──▶ dismissed
                     └────uphold (with a reason)───▶ upheld

**Issuance** of a final version (``ledger.issuance = reviewed``)::

    proposed ──approve (a park admin; the ledger books it)──▶ approved

Only the transitions of the tables below exist, each for the roles it names: anything else raises
:class:`portal.workflow.IllegalTransitionError` (409), a role that may never make the change
:class:`portal.scope.ForbiddenError` (403). Every change is a conditional UPDATE (``WHERE state = <the
state it leaves>``): of two at once one happens and the other gets 409. Approval books
``Ledger.settle`` and marks the issuance approved in that booking's own database transaction, so two
approvals at once book once.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ledger.book import Ledger
from ledger.results import (
    Objection,
    ResultRow,
    ResultVersion,
    objections_of,
    result_objections,
    result_versions,
    rows_of,
    settled_credits,
    version_by_id,
)
from park.holidays import add_working_days
from portal.audit import Actor, record
from portal.scope import ForbiddenError, NotFoundError
from portal.workflow import NEW, IllegalTransitionError, InvalidInputError, check_transition

PARK_OFFICE = ("park_admin", "park_analyst")  # publish and finalise
DECIDERS = ("park_admin", "park_analyst")  # decide objections
OBJECTORS = ("enterprise_admin",)  # of the row's enterprise
ISSUANCE_APPROVERS = ("park_admin",)
VERSION_TRANSITIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("draft", "published"): PARK_OFFICE,
    ("published", "final"): PARK_OFFICE,
}
OBJECTION_TRANSITIONS: dict[tuple[str, str], tuple[str, ...]] = {
    (NEW, "open"): OBJECTORS,
    ("open", "dismissed"): DECIDERS,
    ("open", "upheld"): DECIDERS,
}
ISSUANCE_TRANSITIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("proposed", "approved"): ISSUANCE_APPROVERS,
}
MAX_REASON_CHARS = 2000
# The park office's lists drawn from a version (grades as scoring.credits gives them: 1 best … 5 worst).
LISTS = {
    "diagnosis": "诊断名单 diagnosis list: grades 4-5",
    "incentive": "激励候选 incentive candidates: grade 1, or a workshop with a near-zero target",
}
LIST_COLUMNS = (
    "year",
    "version",
    "enterprise",
    "industry",
    "grade",
    "rating",
    "credits_t",
    "intensity_t_per_10k_cny",
    "benchmark_t_per_10k_cny",
    "nearzero_workshops",
    "why",
    "inputs_sha256",
    "policy_version",
    "factor_set",
)


@dataclass(frozen=True)
class VersionView:
    """A version with its rows and objections as one person may see them."""

    version: ResultVersion
    rows: list[ResultRow]
    objections: list[Objection]

    def holding(self, today: date) -> list[str]:
        """Why finalising is refused on ``today`` (empty: it may be finalised)."""
        return _holds(self.version, self.objections, today)


def _what(version: ResultVersion) -> str:
    return f"result version {version.label}"


def _target(version: ResultVersion) -> str:
    return f"results:{version.year}:v{version.version}"


def _reason(text: str, what: str) -> str:
    reason = text.strip()
    if not reason:
        raise InvalidInputError(f"{what} needs a reason")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInputError(f"a reason has at most {MAX_REASON_CHARS} characters, not {len(reason)}")
    return reason


def window_end(published_on: date, working_days: int) -> date:
    """The last day of a 公示 window of ``working_days`` opened on ``published_on``."""
    return add_working_days(published_on, working_days)


def in_window(version: ResultVersion, today: date) -> bool:
    return version.state == "published" and version.window_ends_on is not None and today <= version.window_ends_on


def _holds(version: ResultVersion, objections: Collection[Objection], today: date) -> list[str]:
    holds = []
    if version.window_ends_on is not None and today <= version.window_ends_on:
        holds.append(f"the 公示 window runs until {version.window_ends_on.isoformat()} (today is {today.isoformat()})")
    for o in objections:
        if o.state == "open":
            holds.append(f"objection {o.id} of {o.enterprise_id} is open: an analyst decides it first")
        elif o.state == "upheld":
            holds.append(
                f"objection {o.id} of {o.enterprise_id} was upheld: its correction is re-settled into a new version"
            )
    return holds


# -- reading -----------------------------------------------------------------------------------------


def load_version(conn: Connection, version_id: int, enterprise_ids: Collection[str] | None = None) -> VersionView:
    """Version ``version_id`` with its rows and objections (only ``enterprise_ids``' if given: an
    enterprise sees its own row of a published, final or superseded version, and nothing of a draft)."""
    version = version_by_id(conn, version_id)
    if version is None:
        raise NotFoundError(f"result version {version_id}")
    if enterprise_ids is not None:
        rows = rows_of(conn, version_id, enterprise_ids)
        if version.published_at is None or not rows:  # a draft never published, or no row of theirs
            raise NotFoundError(f"result version {version_id}")
        return VersionView(version, rows, objections_of(conn, [version_id], enterprise_ids))
    return VersionView(version, rows_of(conn, version_id), objections_of(conn, [version_id]))


def _now_state(conn: Connection, version_id: int) -> ResultVersion:
    found = version_by_id(conn, version_id)
    assert found is not None
    return found


# -- the version's state -----------------------------------------------------------------------------


def publish(conn: Connection, actor: Actor, version_id: int, working_days: int, today: date, now: datetime) -> date:
    """Publish a draft for ``working_days`` working days from ``today``; the window's last day."""
    version = load_version(conn, version_id).version
    check_transition(VERSION_TRANSITIONS, _what(version), version.state, "published", actor.role)
    ends = window_end(today, working_days)
    changed = conn.execute(
        update(result_versions)
        .where(result_versions.c.id == version.id, result_versions.c.state == "draft")
        .values(state="published", published_at=now, published_by=actor.name, window_ends_on=ends)
    ).rowcount
    if changed != 1:
        raise IllegalTransitionError(
            _what(version), _now_state(conn, version.id).state, "published", "changed meanwhile"
        )
    record(
        conn,
        actor,
        "results.publish",
        _target(version),
        "draft",
        f"published: 公示 of {working_days} working days, until {ends.isoformat()}",
        now,
    )
    return ends


def finalise(conn: Connection, actor: Actor, version_id: int, today: date, now: datetime) -> None:
    """Make a published version final: only after its window, with no objection open or upheld."""
    view = load_version(conn, version_id)
    version = view.version
    check_transition(VERSION_TRANSITIONS, _what(version), version.state, "final", actor.role)
    holds = view.holding(today)
    if holds:
        raise IllegalTransitionError(_what(version), version.state, "final", "; ".join(holds))
    changed = conn.execute(
        update(result_versions)
        .where(result_versions.c.id == version.id, result_versions.c.state == "published")
        .values(state="final", finalised_at=now, finalised_by=actor.name)
    ).rowcount
    if changed != 1:
        raise IllegalTransitionError(_what(version), _now_state(conn, version.id).state, "final", "changed meanwhile")
    # An objection filed meanwhile (its insert and this update raced) holds the version after all.
    late = [o for o in objections_of(conn, [version.id]) if o.state in ("open", "upheld")]
    if late:
        raise IllegalTransitionError(_what(version), "published", "final", "; ".join(_holds(version, late, today)))
    record(conn, actor, "results.finalise", _target(version), "published", "final", now)


# -- objections --------------------------------------------------------------------------------------


def file_objection(
    conn: Connection, actor: Actor, enterprise_id: str, version_id: int, reason_text: str, today: date, now: datetime
) -> int:
    """An objection of ``enterprise_id`` (whose scope the caller resolved) to its row of a published
    version, during the window; its id."""
    if actor.role in OBJECTORS and actor.enterprise_id != enterprise_id:
        raise ForbiddenError("an objection is filed by the enterprise's own admin")
    view = load_version(conn, version_id, [enterprise_id])
    version = view.version
    check_transition(OBJECTION_TRANSITIONS, f"an objection to {_what(version)}", NEW, "open", actor.role)
    if not in_window(version, today):
        why = (
            f"the 公示 window closed on {version.window_ends_on.isoformat()}"
            if version.state == "published" and version.window_ends_on is not None
            else f"the version is {version.state}, not published"
        )
        raise IllegalTransitionError(f"an objection to {_what(version)}", NEW, "open", why)
    reason = _reason(reason_text, "an objection")
    # Taking the version's row first (a no-op UPDATE that still locks it) queues this behind a
    # finalisation running at the same time, as SQLite's writers always queue.
    taken = conn.execute(
        update(result_versions)
        .where(result_versions.c.id == version.id, result_versions.c.state == "published")
        .values(state="published")
    ).rowcount
    if taken != 1:
        raise IllegalTransitionError(
            f"an objection to {_what(version)}", NEW, "open", f"the version is {_now_state(conn, version.id).state}"
        )
    objection_id = int(
        conn.execute(
            insert(result_objections)
            .values(
                version_id=version.id,
                enterprise_id=enterprise_id,
                reason=reason,
                state="open",
                filed_at=now,
                filed_by=actor.name,
            )
            .returning(result_objections.c.id)
        ).scalar_one()
    )
    record(conn, actor, "results.object", f"{_target(version)} {enterprise_id}", NEW, f"open: {reason}", now)
    return objection_id


def decide_objection(
    conn: Connection, actor: Actor, version_id: int, objection_id: int, to_state: str, reason_text: str, now: datetime
) -> None:
    """Dismiss or uphold an open objection, with a reason."""
    if to_state not in ("dismissed", "upheld"):
        raise InvalidInputError(f"an objection is dismissed or upheld, not {to_state!r}")
    view = load_version(conn, version_id)
    objection = next((o for o in view.objections if o.id == objection_id), None)
    if objection is None:
        raise NotFoundError(f"objection {objection_id}")
    what = f"objection {objection_id} of {objection.enterprise_id}"
    check_transition(OBJECTION_TRANSITIONS, what, objection.state, to_state, actor.role)
    reason = _reason(reason_text, f"{'dismissing' if to_state == 'dismissed' else 'upholding'} an objection")
    changed = conn.execute(
        update(result_objections)
        .where(result_objections.c.id == objection_id, result_objections.c.state == "open")
        .values(state=to_state, decided_at=now, decided_by=actor.name, decision=reason)
    ).rowcount
    if changed != 1:
        now_state = conn.execute(
            select(result_objections.c.state).where(result_objections.c.id == objection_id)
        ).scalar_one()
        raise IllegalTransitionError(what, str(now_state), to_state, "changed meanwhile")
    record(
        conn,
        actor,
        f"results.objection.{'dismiss' if to_state == 'dismissed' else 'uphold'}",
        f"{_target(view.version)} {objection.enterprise_id} objection:{objection_id}",
        "open",
        f"{to_state}: {reason}",
        now,
    )


# -- issuance ----------------------------------------------------------------------------------------


def approve_issuance(ledger: Ledger, actor: Actor, version_id: int, now: datetime) -> dict[str, int]:
    """Approve the proposed issuance of a final version: the ledger books its credits (only the
    differences to what an earlier version booked) and the issuance becomes approved in the same
    database transaction. kg issued (+) or clawed back (−) by enterprise."""
    with ledger.engine.connect() as conn:
        view = load_version(conn, version_id)
    version = view.version
    what = f"the issuance of {_what(version)}"
    check_transition(ISSUANCE_TRANSITIONS, what, version.issuance, "approved", actor.role)
    if version.state != "final":
        raise IllegalTransitionError(what, version.issuance, "approved", f"the version is {version.state}, not final")

    def mark_approved(conn: Connection) -> None:
        changed = conn.execute(
            update(result_versions)
            .where(
                result_versions.c.id == version.id,
                result_versions.c.issuance == "proposed",
                result_versions.c.state == "final",
            )
            .values(issuance="approved", issuance_at=now, issuance_by=actor.name)
        ).rowcount
        if changed != 1:
            raise IllegalTransitionError(what, _now_state(conn, version.id).issuance, "approved", "changed meanwhile")
        record(conn, actor, "results.issuance.approve", _target(version), "proposed", "approved: booked", now)

    credits = settled_credits(view.rows)
    if not credits:  # nothing bookable (no enterprise has value added): approving books nothing
        with ledger.engine.begin() as conn:
            mark_approved(conn)
        return {}
    report = ledger.settle(version.year, credits, version.deadline, actor.name, after=mark_approved)
    return dict(report.issued_kg)


# -- lists by grade ----------------------------------------------------------------------------------


def list_rows(view: VersionView, kind: str) -> list[dict[str, Any]]:
    """The rows of the park office's list ``kind`` (:data:`LISTS`) drawn from a version, in enterprise
    order: the same version gives the same list, whatever has happened since."""
    out = []
    for r in view.rows:
        whys = []
        if kind == "diagnosis":
            if r.grade in (4, 5):
                whys.append(f"grade {r.grade}")
        elif kind == "incentive":
            if r.grade == 1:
                whys.append("grade 1")
            if r.nearzero_workshops:
                whys.append(f"near-zero workshops {r.nearzero_workshops.replace(',', ' ')}")
        else:
            raise NotFoundError(f"list {kind}")
        if not whys:
            continue
        out.append(
            {
                "year": view.version.year,
                "version": view.version.version,
                "enterprise": r.enterprise_id,
                "industry": r.industry,
                "grade": "" if r.grade is None else r.grade,
                "rating": r.rating or "",
                "credits_t": _fixed(r.credits_t, 3),
                "intensity_t_per_10k_cny": _fixed(r.intensity_t_per_10k_cny, 6),
                "benchmark_t_per_10k_cny": _fixed(r.benchmark_t_per_10k_cny, 6),
                "nearzero_workshops": r.nearzero_workshops.replace(",", " "),
                "why": "; ".join(whys),
                "inputs_sha256": r.inputs_sha256,
                "policy_version": r.policy_version,
                "factor_set": r.factor_set,
            }
        )
    return out


def _fixed(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def list_csv(view: VersionView, kind: str) -> bytes:
    """The list as CSV (UTF-8 with a byte-order mark, so that Excel reads the Chinese): same version,
    same bytes."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LIST_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(list_rows(view, kind))
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def list_xlsx(view: VersionView, kind: str) -> bytes:
    """The list as an Excel workbook: the same rows as the CSV, figures as numbers, and the version's
    content hash on a second sheet (so that a copy can be traced to its version)."""
    from openpyxl import Workbook  # only the download needs it

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = kind
    sheet.append(list(LIST_COLUMNS))
    for row in list_rows(view, kind):
        sheet.append([_cell(c, row[c]) for c in LIST_COLUMNS])
    about = book.create_sheet("version")
    version = view.version
    for key, value in (
        ("list", LISTS[kind]),
        ("year", version.year),
        ("version", version.version),
        ("state", version.state),
        ("content_sha256", version.content_sha256),
    ):
        about.append([key, value])
    # Fixed document times, so that the workbook of a version does not change with the clock.
    book.properties.created = book.properties.modified = version.created_at.replace(tzinfo=None)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


NUMERIC_COLUMNS = ("grade", "credits_t", "intensity_t_per_10k_cny", "benchmark_t_per_10k_cny")


def _cell(column: str, value: object) -> object:
    """A CSV field as a spreadsheet cell: the figures as numbers."""
    if column in NUMERIC_COLUMNS and isinstance(value, str) and value:
        return float(value)
    return value
