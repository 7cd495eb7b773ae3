"""Banks, their users, and each enterprise's consent that a bank reads its credit report.

An enterprise's admin grants a named bank consent, optionally until a date (the last day it stands,
in the park's calendar), and revokes it::

    (new) ──grant (the enterprise's admin)──▶ granted ──revoke (the enterprise's admin)──▶ revoked
                                                 └──(its date has passed: marked at the next grant
                                                     or revocation of that bank)──▶ expired

Only :data:`CONSENT_TRANSITIONS` exist, each for the role it names; anything else raises
:class:`portal.workflow.IllegalTransitionError` (HTTP 409) and a role that may never make the change
:class:`portal.scope.ForbiddenError` (403). A consent is found only under its own enterprise (another
enterprise's consent is "not found", 404). A consent is never deleted or edited (triggers of migration
0008): a re-grant after a revocation or an expiry is a new row, so the history stays. At most one
consent per enterprise and bank is granted at a time (a partial unique index): two grants at once
book once, the second gets 409. Every grant, revocation and expiry is in the audit log, in the same
transaction as the change.

Whether a consent *stands* is decided by :func:`standing` at the time of each request, from the
database, never from a cache: state ``granted`` and today (the park's date) not after its date.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ledger.db import as_utc, as_utc_or_none
from portal.audit import Actor, record
from portal.schema import bank_users, banks, consents
from portal.scope import ForbiddenError, NotFoundError
from portal.workflow import NEW, IllegalTransitionError, InvalidInputError

GRANTORS = ("enterprise_admin",)  # of the enterprise whose report it is
SYSTEM = "system"  # a consent past its date is marked expired by whoever touches it next
CONSENT_TRANSITIONS: dict[tuple[str, str], tuple[str, ...]] = {
    (NEW, "granted"): GRANTORS,
    ("granted", "revoked"): GRANTORS,
    ("granted", "expired"): (SYSTEM,),
}
ACTIONS = {"granted": "consent.grant", "revoked": "consent.revoke", "expired": "consent.expire"}
BANK_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")


@dataclass(frozen=True)
class Bank:
    id: str
    name: str


@dataclass(frozen=True)
class Consent:
    id: int
    enterprise_id: str
    bank_id: str
    bank_name: str
    valid_until: date | None
    state: str  # as stored: granted, revoked or expired
    granted_at: datetime
    granted_by: str
    ended_at: datetime | None
    ended_by: str | None

    def stands_on(self, today: date) -> bool:
        """Granted and not past its date on ``today`` (the park's date)."""
        return self.state == "granted" and (self.valid_until is None or today <= self.valid_until)

    def state_on(self, today: date) -> str:
        """The state as it is on ``today``: a granted consent past its date is expired, marked or not."""
        return "expired" if self.state == "granted" and not self.stands_on(today) else self.state


def _consent(row: Any) -> Consent:
    return Consent(
        id=int(row["id"]),
        enterprise_id=row["enterprise_id"],
        bank_id=row["bank_id"],
        bank_name=row["name"],
        valid_until=row["valid_until"],
        state=row["state"],
        granted_at=as_utc(row["granted_at"]),
        granted_by=row["granted_by"],
        ended_at=as_utc_or_none(row["ended_at"]),
        ended_by=row["ended_by"],
    )


def _with_bank() -> Any:
    return select(consents, banks.c.name).join(banks, banks.c.id == consents.c.bank_id)


# -- banks and their users ---------------------------------------------------------------------------


def list_banks(conn: Connection) -> list[Bank]:
    return [Bank(r.id, r.name) for r in conn.execute(select(banks.c.id, banks.c.name).order_by(banks.c.id))]


def create_bank(conn: Connection, actor: Actor, bank_id: str, name: str, now: datetime) -> Bank:
    """A new bank (the park admin only; audited as ``bank.create``)."""
    if actor.role != "park_admin":
        raise ForbiddenError("banks are added by the park admin")
    bank_id, name = bank_id.strip(), " ".join(name.split())
    if not BANK_ID.match(bank_id):
        raise InvalidInputError("a bank id is 2 to 64 letters, digits, '.', '_' or '-'")
    if not 1 <= len(name) <= 200:
        raise InvalidInputError("a bank needs a name (at most 200 characters)")
    if conn.execute(select(banks.c.id).where(banks.c.id == bank_id)).first() is not None:
        raise InvalidInputError(f"bank {bank_id!r} exists already")
    conn.execute(insert(banks).values(id=bank_id, name=name, created_at=now, created_by=actor.name))
    record(conn, actor, "bank.create", f"bank:{bank_id}", "", name, now)
    return Bank(bank_id, name)


def join_bank(conn: Connection, actor: Actor, user_id: int, username: str, bank_id: str) -> None:
    """Make the new ``bank_viewer`` ``user_id`` a user of ``bank_id``, in the transaction that created it."""
    if conn.execute(select(banks.c.id).where(banks.c.id == bank_id)).first() is None:
        raise InvalidInputError(f"no bank {bank_id!r}: the park admin adds it first")
    conn.execute(insert(bank_users).values(user_id=user_id, bank_id=bank_id))
    record(conn, actor, "bank.user", f"user:{username}", "", f"bank={bank_id}")


def bank_of(conn: Connection, user_id: int) -> str | None:
    """The bank of a bank user (None: none, and such a user sees nothing)."""
    found = conn.execute(select(bank_users.c.bank_id).where(bank_users.c.user_id == user_id)).scalar()
    return str(found) if found is not None else None


def bank_members(conn: Connection) -> dict[int, str]:
    """Every bank user's bank, by user id (for the park's users page)."""
    return {int(r.user_id): str(r.bank_id) for r in conn.execute(select(bank_users))}


# -- consents ----------------------------------------------------------------------------------------


def load_consents(conn: Connection, enterprise_id: str) -> list[Consent]:
    """Every consent the enterprise ever gave, newest first."""
    rows = conn.execute(
        _with_bank().where(consents.c.enterprise_id == enterprise_id).order_by(consents.c.id.desc())
    ).mappings()
    return [_consent(r) for r in rows]


def load_consent(conn: Connection, enterprise_id: str, consent_id: int) -> Consent:
    """The consent ``consent_id`` of ``enterprise_id``; NotFoundError for any other."""
    row = (
        conn.execute(_with_bank().where(consents.c.id == consent_id, consents.c.enterprise_id == enterprise_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError(f"consent {consent_id}")
    return _consent(row)


def standing(conn: Connection, bank_id: str, today: date, enterprise_ids: Collection[str] | None = None) -> list[str]:
    """The enterprises (of ``enterprise_ids`` if given) whose consent to ``bank_id`` stands on ``today``."""
    query = select(consents.c.enterprise_id).where(
        consents.c.bank_id == bank_id,
        consents.c.state == "granted",
        or_(consents.c.valid_until.is_(None), consents.c.valid_until >= today),
    )
    if enterprise_ids is not None:
        query = query.where(consents.c.enterprise_id.in_(sorted(enterprise_ids)))
    return sorted({str(r) for r in conn.execute(query).scalars()})


def check_transition(what: str, from_state: str, to_state: str, role: str) -> None:
    """Raise unless ``role`` may take a consent from ``from_state`` to ``to_state``."""
    allowed = next((roles for (_, to), roles in CONSENT_TRANSITIONS.items() if to == to_state), None)
    if allowed is None or role not in allowed:
        raise ForbiddenError(f"a {role} cannot make {what} {to_state}: consent is given by the enterprise's admin")
    if (from_state, to_state) not in CONSENT_TRANSITIONS:
        raise IllegalTransitionError(what, from_state, to_state)


def _own(actor: Actor, enterprise_id: str) -> None:
    if actor.role in GRANTORS and actor.enterprise_id != enterprise_id:
        raise ForbiddenError("consent is given by the enterprise's own admin")


def _expire_due(conn: Connection, actor: Actor, enterprise_id: str, bank_id: str, today: date, now: datetime) -> None:
    """Mark the enterprise's granted consents to ``bank_id`` past their date expired (audited)."""
    due = conn.execute(
        select(consents.c.id, consents.c.valid_until).where(
            consents.c.enterprise_id == enterprise_id,
            consents.c.bank_id == bank_id,
            consents.c.state == "granted",
            consents.c.valid_until < today,
        )
    ).all()
    for consent_id, valid_until in due:
        moved = conn.execute(
            update(consents)
            .where(consents.c.id == consent_id, consents.c.state == "granted")
            .values(state="expired", ended_at=now, ended_by=SYSTEM)
        ).rowcount
        if moved == 1:
            record(
                conn,
                actor,
                ACTIONS["expired"],
                f"consent:{consent_id} {enterprise_id}→{bank_id}",
                "granted",
                f"expired: past {valid_until.isoformat()}",
                now,
            )


def parse_until(text: str, today: date) -> date | None:
    """The last day a consent stands, as typed (``YYYY-MM-DD``; empty: until revoked); not in the past."""
    text = text.strip()
    if not text:
        return None
    try:
        until = date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if until < today:
        raise InvalidInputError(f"a consent until {until.isoformat()} would have ended already")
    return until


def grant(
    conn: Connection,
    actor: Actor,
    enterprise_id: str,
    bank_id: str,
    until: date | str | None,
    today: date,
    now: datetime,
) -> int:
    """A new consent of ``enterprise_id`` (whose scope the caller resolved) to ``bank_id`` until the
    day ``until`` (as typed: see :func:`parse_until`); its id. 409 while another consent to the same
    bank stands."""
    check_transition("a consent", NEW, "granted", actor.role)
    _own(actor, enterprise_id)
    valid_until = parse_until(until, today) if isinstance(until, str) else until
    bank_id = bank_id.strip()
    if conn.execute(select(banks.c.id).where(banks.c.id == bank_id)).first() is None:
        raise InvalidInputError(f"no bank {bank_id!r} on the platform")
    if valid_until is not None and valid_until < today:
        raise InvalidInputError(f"a consent until {valid_until.isoformat()} would have ended already")
    _expire_due(conn, actor, enterprise_id, bank_id, today, now)
    existing = conn.execute(
        select(consents.c.id).where(
            and_(
                consents.c.enterprise_id == enterprise_id,
                consents.c.bank_id == bank_id,
                consents.c.state == "granted",
            )
        )
    ).scalar()
    if existing is not None:
        raise IllegalTransitionError(
            f"consent {existing}", "granted", "granted", f"{bank_id} has a standing consent: revoke it first"
        )
    try:
        with conn.begin_nested():  # a grant at the same moment: the partial unique index refuses the second
            consent_id = int(
                conn.execute(
                    insert(consents)
                    .values(
                        enterprise_id=enterprise_id,
                        bank_id=bank_id,
                        valid_until=valid_until,
                        state="granted",
                        granted_at=now,
                        granted_by=actor.name,
                    )
                    .returning(consents.c.id)
                ).scalar_one()
            )
    except IntegrityError:
        raise IllegalTransitionError(
            "a consent", "granted", "granted", f"{bank_id} was given a consent meanwhile"
        ) from None
    until = valid_until.isoformat() if valid_until else "revoked"
    record(
        conn,
        actor,
        ACTIONS["granted"],
        f"consent:{consent_id} {enterprise_id}→{bank_id}",
        NEW,
        f"granted until {until}",
        now,
    )
    return consent_id


def revoke(conn: Connection, actor: Actor, enterprise_id: str, consent_id: int, today: date, now: datetime) -> bool:
    """Revoke a standing consent. False when it was past its date: it is marked expired instead, and
    the caller, after committing that, answers 409."""
    consent = load_consent(conn, enterprise_id, consent_id)
    what = f"consent {consent_id}"
    check_transition(what, consent.state, "revoked", actor.role)
    _own(actor, enterprise_id)
    if not consent.stands_on(today):
        _expire_due(conn, actor, enterprise_id, consent.bank_id, today, now)
        return False
    moved = conn.execute(
        update(consents)
        .where(consents.c.id == consent_id, consents.c.state == "granted")
        .values(state="revoked", ended_at=now, ended_by=actor.name)
    ).rowcount
    if moved != 1:
        now_state = str(conn.execute(select(consents.c.state).where(consents.c.id == consent_id)).scalar_one())
        raise IllegalTransitionError(what, now_state, "revoked", "changed meanwhile")
    record(
        conn,
        actor,
        ACTIONS["revoked"],
        f"consent:{consent_id} {enterprise_id}→{consent.bank_id}",
        "granted",
        "revoked",
        now,
    )
    return True
