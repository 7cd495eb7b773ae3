"""The park registry edited on the platform: the park admin changes it, an enterprise admin proposes
changes of its own enterprise's entries that a park analyst approves, everyone allowed reads it as of
any date, with each entry's history.

Every change goes through ``ledger/registry_store.py`` (versioned from a month's first day, validated by
materialising the whole registry and running the registry's own checks, exactly as ``registry check``
does, so each error names the entry and the field), and each of its :class:`RegistryChange` lines is
recorded in the audit log in the same transaction.

A **proposal** (``registry_proposals``) is an enterprise admin's new meter, new workshop or meter
replacement (the old meter's final reading and the new one's first, at the instant of the change), with
a reason::

    (new) ──propose (the enterprise's admin)──▶ proposed ──approve (a park analyst)──▶ approved
                                                   ├──reject (a park analyst, with a reason)──▶ rejected
                                                   └──withdraw (the enterprise's admin)──▶ withdrawn

Only :data:`PROPOSAL_TRANSITIONS` exist, each for the roles it names (``portal.workflow.check_transition``:
409 for a transition that does not exist, 403 for a role that may never make it). Every change of state
is a conditional UPDATE (``WHERE state = 'proposed'``); approval applies the change in the same
transaction after it, so two analysts approving at once apply it once and the second gets 409. A change
the registry refuses at approval rolls back with the approval: the proposal stays proposed, and the
analyst sees every error (and may reject it).

Tenant isolation: an enterprise's admin proposes only for its own enterprise, names only its own
gateways, workshops and meters (another's answer as if they did not exist), and sees only its own
entries and proposals; the registry's own checks, whose messages may name other enterprises' entries,
are shown to the park's roles only.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, insert, select, update

from ledger import registry_store
from ledger.registry_store import ENTERPRISE, GATEWAY, METER, WORKSHOP, RegistryChange
from park.registry import Enterprise, Gateway, Meter, MeterReplacement, Workshop
from portal.audit import Actor, record
from portal.schema import registry_proposals
from portal.scope import ForbiddenError, NotFoundError
from portal.workflow import NEW, IllegalTransitionError, InvalidInputError, check_transition

EDITORS = ("park_admin",)  # change the registry directly
PROPOSERS = ("enterprise_admin",)  # of its own enterprise
REVIEWERS = ("park_analyst",)
PROPOSAL_TRANSITIONS: dict[tuple[str, str], tuple[str, ...]] = {
    (NEW, "proposed"): PROPOSERS,
    ("proposed", "approved"): REVIEWERS,
    ("proposed", "rejected"): REVIEWERS,
    ("proposed", "withdrawn"): PROPOSERS,
}
PROPOSAL_ACTIONS = {
    "proposed": "registry_proposal.propose",
    "approved": "registry_proposal.approve",
    "rejected": "registry_proposal.reject",
    "withdrawn": "registry_proposal.withdraw",
}
REPLACEMENT = "replacement"
MAX_REASON_CHARS = 2000
# The entries the park admin edits, and the fields their forms carry. A field left empty keeps what the
# entry had (nothing, for a new one); CLEARED takes the field out; a change keeps every field the form
# does not carry (e.g. a meter's replacements).
CLEARED = "-"
MODELS: dict[str, type[BaseModel]] = {ENTERPRISE: Enterprise, WORKSHOP: Workshop, GATEWAY: Gateway, METER: Meter}
FORM_FIELDS: dict[str, tuple[str, ...]] = {
    ENTERPRISE: ("id", "name", "industry", "credit_code", "pilot_status", "pilot_from", "pilot_until"),
    WORKSHOP: ("id", "enterprise", "name"),
    GATEWAY: ("id", "enterprise", "model", "format"),
    METER: (
        "id",
        "gateway",
        "enterprise",
        "workshop",
        "carrier",
        "role",
        "unit",
        "registers",
        "multiplier",
        "serial",
        "device_ref",
        "interval_minutes",
    ),
}
LIST_FIELDS = ("registers",)  # typed comma-separated
NUMBER_FIELDS = {"multiplier": float, "interval_minutes": int}
PROPOSED_KINDS = (METER, WORKSHOP)  # besides a replacement
KIND_NAMES = {
    ENTERPRISE: "企业 enterprise",
    WORKSHOP: "车间 workshop",
    GATEWAY: "网关 gateway",
    METER: "计量表 meter",
    REPLACEMENT: "换表 meter replacement",
}


# -- what is typed ---------------------------------------------------------------------------------


def parse_month_start(text: str) -> date:
    """The date a change applies from: a month's first day (``YYYY-MM-DD`` or ``YYYY-MM``)."""
    value = text.strip()
    try:
        day = date.fromisoformat(value if len(value) != 7 else f"{value}-01")
    except ValueError:
        raise InvalidInputError(f"valid_from: {text!r} is not a date (YYYY-MM-DD)") from None
    if day.day != 1:
        raise InvalidInputError(
            f"valid_from: a registry change applies from a month's first day, not {day.isoformat()}"
            " (a meter changed inside a month is a replacement)"
        )
    return day


def parse_day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(f"as_of: {text!r} is not a date (YYYY-MM-DD)") from None


def _reason(text: str, what: str = "a registry change") -> str:
    reason = text.strip()
    if not reason:
        raise InvalidInputError(f"reason: {what} needs a reason")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInputError(f"reason: longer than {MAX_REASON_CHARS} characters")
    return reason


def _model_problems(label: str, exc: ValidationError) -> list[str]:
    """Pydantic's errors as ``<label>: field: message`` lines (the label names the entry)."""
    return [
        f"{label}: {'.'.join(str(p) for p in err['loc']) or '(entry)'}: "
        + str(err["msg"]).removeprefix("Value error, ")
        for err in exc.errors()
    ]


def entry_document(kind: str, fields: Mapping[str, str], current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The entry's document (as the registry file writes it) from a form's fields, over ``current`` (the
    entry's document before the change, if any): an empty field keeps its value, ``-`` removes it. A
    valid entry is written as the registry writes it (defaults left out), so an unchanged entry stays
    unchanged; an invalid one is passed on as typed, for the registry's checks to name each wrong field."""
    if kind not in FORM_FIELDS:
        raise InvalidInputError(f"kind: unknown kind of registry entry {kind!r}")
    document: dict[str, Any] = dict(current or {})
    for name in FORM_FIELDS[kind]:
        if name not in fields:
            continue
        text = fields[name].strip()
        if not text:
            continue  # left empty: as it was (nothing, for a new entry)
        if text == CLEARED:
            document.pop(name, None)
        elif name in LIST_FIELDS:
            document[name] = [part.strip() for part in text.split(",") if part.strip()]
        elif name in NUMBER_FIELDS:
            try:
                document[name] = NUMBER_FIELDS[name](text.replace(",", ""))
            except ValueError:
                document[name] = text  # the registry's check names it
        else:
            document[name] = text
    if not document.get("id"):
        raise InvalidInputError(f"{kind}: id: an entry needs its id")
    try:
        return MODELS[kind].model_validate(document).model_dump(mode="json", exclude_defaults=True)
    except ValidationError:
        return document


def _in_force(conn: Connection, kind: str, entity_id: str) -> dict[str, Any] | None:
    """The entry's version in force (open), or None."""
    row = registry_store.open_row(conn, kind, entity_id)
    if row is None:
        return None
    document: dict[str, Any] = json.loads(row.document)
    return document


# -- the park admin's changes ----------------------------------------------------------------------


def _audit(conn: Connection, actor: Actor, changes: list[RegistryChange], now: datetime) -> None:
    for change in changes:
        record(conn, actor, change.action, change.target, change.before, change.after, now)


def _applied(what: str, apply: Any) -> list[RegistryChange]:
    """Run a registry_store change, its refusals as the platform's errors: the registry's checks → 400
    (each line names the entry and the field), a change meanwhile → 409."""
    try:
        changes: list[RegistryChange] = apply()
    except registry_store.RegistryConflictError as exc:
        raise IllegalTransitionError(what, "in force", "changed", str(exc)) from None
    except registry_store.RegistryChangeError as exc:
        raise InvalidInputError(str(exc)) from None
    return changes


def require_editor(actor: Actor) -> None:
    if actor.role not in EDITORS:
        raise ForbiddenError("the registry is changed by the park admin (an enterprise's admin proposes)")


def put(
    conn: Connection,
    actor: Actor,
    kind: str,
    mode: str,
    fields: Mapping[str, str],
    valid_from_text: str,
    reason_text: str,
    now: datetime,
) -> list[RegistryChange]:
    """Add (``mode`` add) or change (``mode`` change) an enterprise, workshop, gateway or meter from a
    month's first day, by the park admin; the changes, each in the audit log."""
    require_editor(actor)
    if mode not in ("add", "change"):
        raise InvalidInputError(f"mode: {mode!r} is neither add nor change")
    valid_from = parse_month_start(valid_from_text)
    reason = _reason(reason_text)
    entity_id = fields.get("id", "").strip()
    current = _in_force(conn, kind, entity_id) if entity_id and kind in FORM_FIELDS else None
    if mode == "add" and current is not None:
        raise InvalidInputError(f"{kind} {entity_id!r}: id: already in the registry (change it instead)")
    if mode == "change" and current is None:
        raise InvalidInputError(f"{kind} {entity_id!r}: id: not in the registry (add it instead)")
    document = entry_document(kind, fields, current)
    changes = _applied(
        f"{kind} {entity_id}",
        lambda: registry_store.put_entry(conn, kind, document, valid_from, actor.name, reason),
    )
    if not changes:
        raise InvalidInputError(f"{kind} {entity_id!r}: the entry is unchanged")
    _audit(conn, actor, changes, now)
    return changes


def close(
    conn: Connection, actor: Actor, kind: str, entity_id: str, valid_from_text: str, reason_text: str, now: datetime
) -> list[RegistryChange]:
    """Take an entry out of the registry from a month's first day (its history stays), by the park admin."""
    require_editor(actor)
    if kind not in FORM_FIELDS:
        raise InvalidInputError(f"kind: unknown kind of registry entry {kind!r}")
    valid_from = parse_month_start(valid_from_text)
    reason = _reason(reason_text)
    if _in_force(conn, kind, entity_id) is None:
        raise NotFoundError(f"{kind} {entity_id}")
    changes = _applied(
        f"{kind} {entity_id}",
        lambda: registry_store.close_entry(conn, kind, entity_id, valid_from, actor.name, reason),
    )
    _audit(conn, actor, changes, now)
    return changes


# -- what is read and shown ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """An entry of the registry as of a date, with every version it ever had (oldest first)."""

    kind: str
    entity_id: str
    document: dict[str, Any]
    versions: tuple[dict[str, Any], ...]

    @property
    def enterprise_id(self) -> str:
        return self.entity_id if self.kind == ENTERPRISE else str(self.document.get("enterprise", ""))

    @property
    def summary(self) -> str:
        return _summary(self.document)


def _summary(document: Mapping[str, Any]) -> str:
    """An entry's fields as the pages show them (lists and replacements as JSON)."""
    return ", ".join(
        f"{k}: {v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
        for k, v in document.items()
        if k != "id"
    )


def _belongs(kind: str, entity_id: str, document: Mapping[str, Any], enterprise_id: str) -> bool:
    if kind == ENTERPRISE:
        return entity_id == enterprise_id
    return document.get("enterprise") == enterprise_id


def entries(conn: Connection, day: date, enterprise_id: str | None = None) -> list[Entry]:
    """The entries in force on ``day`` (of ``enterprise_id`` only, if given), in the registry's order,
    each with its history. The park and value added are not edited here."""
    in_force = _in_force_on(conn, day, enterprise_id)
    versions: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in registry_store.history(conn):
        versions.setdefault((row["kind"], row["entity_id"]), []).append(row)
    return [
        Entry(kind, entity_id, dict(document), tuple(versions.get((kind, entity_id), ())))
        for kind, entity_id, document in in_force
    ]


def _in_force_on(conn: Connection, day: date, enterprise_id: str | None) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(kind, id, document) of the entries :func:`entries` lists, without their history."""
    return [
        (kind, entity_id, document)
        for (kind, entity_id), document in registry_store.documents_as_of(conn, day).items()
        if kind in FORM_FIELDS and (enterprise_id is None or _belongs(kind, entity_id, document, enterprise_id))
    ]


def export(conn: Connection, day: date) -> tuple[str, str]:
    """The registry YAML and the enterprises CSV as they were on ``day``, as ``parkcarbon registry
    export`` writes them."""
    try:
        return registry_store.export_texts(conn, day)
    except registry_store.RegistryChangeError as exc:
        raise InvalidInputError(str(exc)) from None


# -- proposals -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proposal:
    id: int
    enterprise_id: str
    kind: str
    entity_id: str
    valid_from: date | None
    document: dict[str, Any]
    reason: str
    state: str
    created_at: datetime
    created_by: str
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, self.kind)

    @property
    def summary(self) -> str:
        return _summary(self.document)


def _proposal(row: Any) -> Proposal:
    return Proposal(
        id=int(row["id"]),
        enterprise_id=row["enterprise_id"],
        kind=row["kind"],
        entity_id=row["entity_id"],
        valid_from=row["valid_from"],
        document=json.loads(row["document"]),
        reason=row["reason"],
        state=row["state"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        decided_at=row["decided_at"],
        decided_by=row["decided_by"],
        decision_reason=row["decision_reason"],
    )


def load_proposals(
    conn: Connection, enterprise_ids: Collection[str] | None = None, state: str | None = None
) -> list[Proposal]:
    """The proposals (of ``enterprise_ids``; in ``state``), newest first."""
    query = select(registry_proposals).order_by(registry_proposals.c.id.desc())
    if enterprise_ids is not None:
        query = query.where(registry_proposals.c.enterprise_id.in_(sorted(enterprise_ids)))
    if state is not None:
        query = query.where(registry_proposals.c.state == state)
    return [_proposal(r) for r in conn.execute(query).mappings()]


def load_proposal(conn: Connection, enterprise_ids: Collection[str], proposal_id: int) -> Proposal:
    """The proposal ``proposal_id`` of one of ``enterprise_ids``; NotFoundError for any other."""
    row = (
        conn.execute(
            select(registry_proposals).where(
                registry_proposals.c.id == proposal_id,
                registry_proposals.c.enterprise_id.in_(sorted(enterprise_ids)),
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError(f"proposal {proposal_id}")
    return _proposal(row)


def _target(enterprise_id: str, proposal_id: int, kind: str, entity_id: str) -> str:
    return f"enterprise:{enterprise_id} registry_proposal:{proposal_id} {kind}:{entity_id}"


def _own(actor: Actor, enterprise_id: str) -> None:
    """An enterprise's admin acts for its own enterprise only: any other answers as one that does not exist."""
    if actor.role in PROPOSERS and actor.enterprise_id != enterprise_id:
        raise NotFoundError(enterprise_id)


def _insert(
    conn: Connection,
    actor: Actor,
    enterprise_id: str,
    kind: str,
    entity_id: str,
    valid_from: date | None,
    document: Mapping[str, Any],
    reason: str,
    now: datetime,
) -> int:
    proposal_id = int(
        conn.execute(
            insert(registry_proposals)
            .values(
                enterprise_id=enterprise_id,
                kind=kind,
                entity_id=entity_id,
                valid_from=valid_from,
                document=json.dumps(document, ensure_ascii=False, sort_keys=True),
                reason=reason,
                state="proposed",
                created_at=now,
                created_by=actor.name,
            )
            .returning(registry_proposals.c.id)
        ).scalar_one()
    )
    when = valid_from.isoformat() if valid_from else str(document.get("at", ""))
    record(
        conn,
        actor,
        PROPOSAL_ACTIONS["proposed"],
        _target(enterprise_id, proposal_id, kind, entity_id),
        NEW,
        f"proposed from {when}: {json.dumps(document, ensure_ascii=False, sort_keys=True)}; reason: {reason}",
        now,
    )
    return proposal_id


def _own_ids(conn: Connection, enterprise_id: str, day: date) -> dict[str, set[str]]:
    """The ids of ``enterprise_id``'s entries in force on ``day``, by kind."""
    ids: dict[str, set[str]] = {kind: set() for kind in FORM_FIELDS}
    for kind, entity_id, _ in _in_force_on(conn, day, enterprise_id):
        ids[kind].add(entity_id)
    return ids


def propose_entry(
    conn: Connection,
    actor: Actor,
    enterprise_id: str,
    kind: str,
    fields: Mapping[str, str],
    valid_from_text: str,
    reason_text: str,
    now: datetime,
) -> int:
    """A new meter or workshop of the actor's own enterprise, proposed from a month's first day; its id.
    Checked here as far as it concerns the enterprise's own entries (the fields, its own gateway and
    workshop, an id not yet in the registry); the whole registry's checks run at approval."""
    _own(actor, enterprise_id)
    check_transition(PROPOSAL_TRANSITIONS, "a registry proposal", NEW, "proposed", actor.role)
    if kind not in PROPOSED_KINDS:
        raise InvalidInputError(f"kind: an enterprise proposes a new meter or workshop, or a replacement, not {kind!r}")
    valid_from = parse_month_start(valid_from_text)
    reason = _reason(reason_text, "a proposal")
    typed = dict(fields)
    if typed.get("enterprise", "").strip() not in ("", enterprise_id):
        raise InvalidInputError(f"{kind}: enterprise: a proposal is for {enterprise_id}'s own entries")
    typed["enterprise"] = enterprise_id
    document = entry_document(kind, typed)
    entity_id = str(document["id"])
    try:
        MODELS[kind].model_validate(document)
    except ValidationError as exc:
        raise InvalidInputError("\n".join(_model_problems(f"{kind} {entity_id!r}", exc))) from None
    if registry_store.history(conn, kind, entity_id):
        raise InvalidInputError(f"{kind} {entity_id!r}: id: already used in the registry; choose another")
    own = _own_ids(conn, enterprise_id, valid_from)
    for name, of_kind in (("gateway", GATEWAY), ("workshop", WORKSHOP)):
        wanted = document.get(name)
        if wanted is not None and kind == METER and wanted not in own[of_kind]:
            raise InvalidInputError(f"{kind} {entity_id!r}: {name}: {enterprise_id} has no {name} {wanted!r}")
    return _insert(conn, actor, enterprise_id, kind, entity_id, valid_from, document, reason, now)


def parse_replacement(
    meter_id: str,
    at_text: str,
    old_final_text: str,
    new_initial_text: str,
    new_multiplier_text: str,
    new_serial: str,
    timezone: str,
) -> MeterReplacement:
    """A replacement as typed: the instant (a local time of the park, ``YYYY-MM-DDTHH:MM`` as a browser
    sends it), the old meter's final reading, the new one's first, and optionally the new multiplier and
    serial. Every error names the meter and the field."""
    what = f"meter {meter_id!r}: replacement"
    try:
        at = datetime.fromisoformat(at_text.strip())
    except ValueError:
        raise InvalidInputError(f"{what}: at: {at_text!r} is not a time (YYYY-MM-DD HH:MM)") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(timezone))
    data: dict[str, Any] = {
        "at": at.isoformat(),
        "old_final_reading": old_final_text.strip().replace(",", ""),
        "new_initial_reading": new_initial_text.strip().replace(",", ""),
    }
    if new_multiplier_text.strip():
        data["new_multiplier"] = new_multiplier_text.strip().replace(",", "")
    if new_serial.strip():
        data["new_serial"] = new_serial.strip()
    try:
        return MeterReplacement.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError("\n".join(_model_problems(what, exc))) from None


def propose_replacement(
    conn: Connection,
    actor: Actor,
    enterprise_id: str,
    meter_id: str,
    replacement: MeterReplacement,
    reason_text: str,
    timezone: str,
    now: datetime,
) -> int:
    """A replacement of one of the actor's own enterprise's meters in force at its instant; its id."""
    _own(actor, enterprise_id)
    check_transition(PROPOSAL_TRANSITIONS, "a registry proposal", NEW, "proposed", actor.role)
    reason = _reason(reason_text, "a proposal")
    day = replacement.at.astimezone(ZoneInfo(timezone)).date()
    if meter_id not in _own_ids(conn, enterprise_id, day)[METER]:
        raise NotFoundError(f"meter {meter_id}")
    document = replacement.model_dump(mode="json", exclude_defaults=True)
    return _insert(conn, actor, enterprise_id, REPLACEMENT, meter_id, None, document, reason, now)


def _move(conn: Connection, proposal: Proposal, to_state: str, actor: Actor, now: datetime, why: str | None) -> None:
    """The conditional UPDATE every change of a proposal's state is: only from proposed."""
    changed = conn.execute(
        update(registry_proposals)
        .where(registry_proposals.c.id == proposal.id, registry_proposals.c.state == "proposed")
        .values(state=to_state, decided_at=now, decided_by=actor.name, decision_reason=why)
    ).rowcount
    if changed != 1:
        state = conn.execute(
            select(registry_proposals.c.state).where(registry_proposals.c.id == proposal.id)
        ).scalar_one()
        raise IllegalTransitionError(f"proposal {proposal.id}", str(state), to_state, "changed meanwhile")


def _checked(
    conn: Connection, actor: Actor, enterprise_ids: Collection[str], proposal_id: int, to_state: str
) -> Proposal:
    proposal = load_proposal(conn, enterprise_ids, proposal_id)
    check_transition(PROPOSAL_TRANSITIONS, f"proposal {proposal_id}", proposal.state, to_state, actor.role)
    return proposal


def approve(
    conn: Connection,
    actor: Actor,
    enterprise_ids: Collection[str],
    proposal_id: int,
    timezone: str,
    now: datetime,
) -> list[RegistryChange]:
    """Approve a proposal as a park analyst: it becomes approved and its change is applied through the
    registry store, both in this transaction (a change the registry refuses undoes the approval)."""
    proposal = _checked(conn, actor, enterprise_ids, proposal_id, "approved")
    _move(conn, proposal, "approved", actor, now, None)
    reason = f"proposal {proposal.id} of {proposal.created_by}: {proposal.reason}"
    what = f"proposal {proposal.id}"
    if proposal.kind == REPLACEMENT:
        replacement = MeterReplacement.model_validate(proposal.document)
        changes = _applied(
            what,
            lambda: registry_store.replace_meter(conn, proposal.entity_id, replacement, timezone, actor.name, reason),
        )
    else:
        if registry_store.history(conn, proposal.kind, proposal.entity_id):
            raise InvalidInputError(
                f"{proposal.kind} {proposal.entity_id!r}: id: entered the registry meanwhile; reject the proposal"
            )
        assert proposal.valid_from is not None  # a new entry's proposal has its month (a CHECK of the table)
        valid_from = proposal.valid_from
        changes = _applied(
            what,
            lambda: registry_store.put_entry(conn, proposal.kind, proposal.document, valid_from, actor.name, reason),
        )
    record(
        conn,
        actor,
        PROPOSAL_ACTIONS["approved"],
        _target(proposal.enterprise_id, proposal.id, proposal.kind, proposal.entity_id),
        "proposed",
        "approved: " + "; ".join(c.target for c in changes),
        now,
    )
    _audit(conn, actor, changes, now)
    return changes


def reject(
    conn: Connection,
    actor: Actor,
    enterprise_ids: Collection[str],
    proposal_id: int,
    reason_text: str,
    now: datetime,
) -> None:
    """Reject a proposal with a reason (refused without one), as a park analyst: nothing is applied."""
    proposal = _checked(conn, actor, enterprise_ids, proposal_id, "rejected")
    reason = _reason(reason_text, "a rejection")
    _move(conn, proposal, "rejected", actor, now, reason)
    target = _target(proposal.enterprise_id, proposal.id, proposal.kind, proposal.entity_id)
    record(conn, actor, PROPOSAL_ACTIONS["rejected"], target, "proposed", f"rejected: {reason}", now)


def withdraw(conn: Connection, actor: Actor, enterprise_id: str, proposal_id: int, now: datetime) -> None:
    """Withdraw a proposal of the actor's own enterprise while it awaits review."""
    _own(actor, enterprise_id)
    proposal = _checked(conn, actor, [enterprise_id], proposal_id, "withdrawn")
    _move(conn, proposal, "withdrawn", actor, now, None)
    target = _target(proposal.enterprise_id, proposal.id, proposal.kind, proposal.entity_id)
    record(conn, actor, PROPOSAL_ACTIONS["withdrawn"], target, "proposed", "withdrawn", now)
