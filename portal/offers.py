"""Offers of credits between enterprises, and what booking them in the ledger takes.

An enterprise's admin (the seller) offers an amount of one vintage it holds to a named enterprise (the
buyer) at a price per credit (CNY per t) until an expiry time::

    (new) ──make──▶ open ──accept (the buyer's admin; the ledger books the transfer)──▶ accepted
                     ├──decline (the buyer's admin)──▶ declined
                     ├──withdraw (the seller's admin)──▶ withdrawn
                     └──(accepting, declining or withdrawing after the expiry)──▶ expired

Only :data:`OFFER_TRANSITIONS` exist, each for the side it names; anything else raises
:class:`portal.workflow.IllegalTransitionError` (HTTP 409), and a role or a side that may never make
the change :class:`portal.scope.ForbiddenError` (403). An offer is found only under its seller or its
buyer (another enterprise's offer is "not found", 404).

Acceptance books ``Ledger.transfer`` under the reference ``offer:<id>``, and the offer's conditional
UPDATE (open → accepted) runs inside that booking's own database transaction: both happen or neither.
Two acceptances at once, or one retried, book once: the ledger answers the second with the first
booking (``replayed``), whose offer is already accepted, and the second gets 409. A seller that no
longer holds the amount: the ledger refuses, nothing is booked, the offer **stays open** (the seller
may buy credits and the buyer accept again, or withdraw it) and the buyer gets 409 saying so.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, insert, or_, select, update

from ledger.amounts import cny_to_fen, kg_to_t, t_to_kg
from ledger.book import Booked, Ledger
from ledger.db import as_utc, as_utc_or_none
from ledger.errors import InsufficientBalanceError, LedgerError
from portal.audit import Actor, record
from portal.schema import offers
from portal.scope import ForbiddenError, NotFoundError
from portal.workflow import NEW, IllegalTransitionError, InvalidInputError, WorkflowError

TRADERS = ("enterprise_admin",)  # of the seller (make, withdraw) or of the buyer (accept, decline)
SELLER, BUYER = "seller", "buyer"
OFFER_TRANSITIONS: dict[tuple[str, str], str] = {
    (NEW, "open"): SELLER,
    ("open", "accepted"): BUYER,
    ("open", "declined"): BUYER,
    ("open", "withdrawn"): SELLER,
}
ACTIONS = {"open": "offer.make", "accepted": "offer.accept", "declined": "offer.decline", "withdrawn": "offer.withdraw"}


class LedgerRefusedError(WorkflowError):
    """A booking the ledger refused (a balance or an obligation too small, a vintage not issued …);
    nothing was booked (HTTP 409)."""


@dataclass(frozen=True)
class Offer:
    id: int
    seller_id: str
    buyer_id: str
    vintage: int
    amount_kg: int
    price_fen_per_t: int
    expires_at: datetime
    state: str
    created_at: datetime
    created_by: str
    decided_at: datetime | None
    decided_by: str | None
    transaction_id: int | None

    @property
    def amount_t(self) -> Decimal:
        return kg_to_t(self.amount_kg)

    @property
    def price_cny_per_t(self) -> Decimal:
        return Decimal(self.price_fen_per_t) / 100

    @property
    def total_cny(self) -> Decimal:
        return self.amount_t * self.price_cny_per_t

    def past_expiry(self, now: datetime) -> bool:
        return now >= self.expires_at

    def side_of(self, enterprise_id: str) -> str:
        return SELLER if enterprise_id == self.seller_id else BUYER


def _offer(row: Any) -> Offer:
    return Offer(
        id=int(row["id"]),
        seller_id=row["seller_id"],
        buyer_id=row["buyer_id"],
        vintage=int(row["vintage"]),
        amount_kg=int(row["amount_kg"]),
        price_fen_per_t=int(row["price_fen_per_t"]),
        expires_at=as_utc(row["expires_at"]),
        state=row["state"],
        created_at=as_utc(row["created_at"]),
        created_by=row["created_by"],
        decided_at=as_utc_or_none(row["decided_at"]),
        decided_by=row["decided_by"],
        transaction_id=row["transaction_id"],
    )


def load_offers(conn: Connection, enterprise_ids: Collection[str]) -> list[Offer]:
    """The offers made or received by ``enterprise_ids``, newest first."""
    ids = sorted(enterprise_ids)
    rows = conn.execute(
        select(offers).where(or_(offers.c.seller_id.in_(ids), offers.c.buyer_id.in_(ids))).order_by(offers.c.id.desc())
    ).mappings()
    return [_offer(r) for r in rows]


def load_offer(conn: Connection, enterprise_id: str, offer_id: int) -> Offer:
    """The offer ``offer_id`` made or received by ``enterprise_id``; NotFoundError for any other."""
    row = (
        conn.execute(
            select(offers).where(
                offers.c.id == offer_id, or_(offers.c.seller_id == enterprise_id, offers.c.buyer_id == enterprise_id)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFoundError(f"offer {offer_id}")
    return _offer(row)


def check_transition(what: str, from_state: str, to_state: str, actor: Actor, side: str) -> None:
    """Raise unless ``actor``, on ``side`` of the offer, may take it from ``from_state`` to ``to_state``."""
    if actor.role not in TRADERS:
        raise ForbiddenError(f"a {actor.role} cannot trade: offers are made and answered by enterprises' admins")
    wanted = next((s for (_, to), s in OFFER_TRANSITIONS.items() if to == to_state), None)
    if wanted is None or wanted != side:
        raise ForbiddenError(f"the {side} cannot make {what} {to_state}")
    if (from_state, to_state) not in OFFER_TRANSITIONS:
        raise IllegalTransitionError(what, from_state, to_state)


def _target(offer: Offer | None, offer_id: int) -> str:
    parties = f" {offer.seller_id}→{offer.buyer_id}" if offer else ""
    return f"offer:{offer_id}{parties}"


# -- making an offer --------------------------------------------------------------------------------


def parse_terms(
    amount_text: str, price_text: str, vintage_text: str, expires_text: str, timezone: str
) -> tuple[int, int, int, datetime]:
    """(amount kg, price fen per t, vintage, expiry in UTC) of an offer as typed; the expiry is a local
    time of the park (``YYYY-MM-DDTHH:MM`` as a browser sends it, or ``YYYY-MM-DD HH:MM``)."""
    try:
        amount_kg = t_to_kg(amount_text.strip().replace(",", ""))
        price_fen = cny_to_fen(price_text.strip().replace(",", ""))
    except (LedgerError, ArithmeticError, ValueError) as exc:
        raise InvalidInputError(str(exc)) from None
    try:
        vintage = int(vintage_text.strip())
    except ValueError:
        raise InvalidInputError(f"{vintage_text!r} is not a vintage (a year)") from None
    try:
        expires = datetime.fromisoformat(expires_text.strip())
    except ValueError:
        raise InvalidInputError(f"{expires_text!r} is not a time (YYYY-MM-DD HH:MM)") from None
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=ZoneInfo(timezone))
    return amount_kg, price_fen, vintage, expires.astimezone(UTC)


def make(
    conn: Connection,
    actor: Actor,
    seller_id: str,
    buyer_id: str,
    terms: tuple[int, int, int, datetime],
    held_kg: int,
    known: Collection[str],
    now: datetime,
) -> int:
    """A new open offer of ``seller_id`` (whose scope the caller resolved) to ``buyer_id``; its id.
    ``held_kg``: what the seller holds of the vintage now (an offer of more is refused; the ledger
    checks again at acceptance)."""
    if actor.enterprise_id != seller_id:
        raise ForbiddenError("an offer is made by the seller's own admin")
    check_transition("an offer", NEW, "open", actor, SELLER)
    amount_kg, price_fen, vintage, expires_at = terms
    buyer_id = buyer_id.strip()
    if buyer_id == seller_id:
        raise InvalidInputError("an offer needs another enterprise as the buyer")
    if buyer_id not in known:
        raise InvalidInputError(f"no enterprise {buyer_id!r} in the park's registry")
    if expires_at <= now:
        raise InvalidInputError("the expiry must be in the future")
    if amount_kg > held_kg:
        raise InvalidInputError(
            f"{seller_id} holds {kg_to_t(held_kg)} t of vintage {vintage}, not the {kg_to_t(amount_kg)} t offered"
        )
    offer_id = int(
        conn.execute(
            insert(offers)
            .values(
                seller_id=seller_id,
                buyer_id=buyer_id,
                vintage=vintage,
                amount_kg=amount_kg,
                price_fen_per_t=price_fen,
                expires_at=expires_at,
                state="open",
                created_at=now,
                created_by=actor.name,
            )
            .returning(offers.c.id)
        ).scalar_one()
    )
    terms_text = (
        f"open: {kg_to_t(amount_kg)} t of vintage {vintage} to {buyer_id} at {Decimal(price_fen) / 100} CNY/t "
        f"until {expires_at.isoformat()}"
    )
    record(conn, actor, ACTIONS["open"], f"offer:{offer_id} {seller_id}→{buyer_id}", NEW, terms_text, now)
    return offer_id


# -- changes of an open offer -----------------------------------------------------------------------


def _move(conn: Connection, offer: Offer, to_state: str, actor: Actor, now: datetime, **values: Any) -> bool:
    """The conditional UPDATE every change of an offer's state is: only from open."""
    changed = conn.execute(
        update(offers)
        .where(offers.c.id == offer.id, offers.c.state == "open")
        .values(state=to_state, decided_at=now, decided_by=actor.name, **values)
    ).rowcount
    return bool(changed == 1)


def _state_now(conn: Connection, offer_id: int) -> str:
    return str(conn.execute(select(offers.c.state).where(offers.c.id == offer_id)).scalar_one())


def expire_if_due(conn: Connection, actor: Actor, offer: Offer, now: datetime) -> bool:
    """Mark an open offer past its expiry expired (audited); True if it is expired now."""
    if offer.state == "expired":
        return True
    if offer.state != "open" or not offer.past_expiry(now):
        return False
    if _move(conn, offer, "expired", actor, now):
        record(
            conn,
            actor,
            "offer.expire",
            _target(offer, offer.id),
            "open",
            f"expired: past {offer.expires_at.isoformat()}",
            now,
        )
    return True


def _checked(conn: Connection, actor: Actor, enterprise_id: str, offer_id: int, to_state: str) -> Offer:
    if actor.enterprise_id != enterprise_id:
        raise ForbiddenError("offers are answered by the enterprise's own admin")
    offer = load_offer(conn, enterprise_id, offer_id)
    check_transition(f"offer {offer_id}", offer.state, to_state, actor, offer.side_of(enterprise_id))
    return offer


def decide(conn: Connection, actor: Actor, enterprise_id: str, offer_id: int, to_state: str, now: datetime) -> bool:
    """Decline (the buyer) or withdraw (the seller) an open offer. False when it was past its expiry:
    it is marked expired instead, and the caller, after committing that, answers 409."""
    if to_state not in ("declined", "withdrawn"):
        raise InvalidInputError(f"an offer is not {to_state} by hand")
    offer = _checked(conn, actor, enterprise_id, offer_id, to_state)
    if expire_if_due(conn, actor, offer, now):
        return False
    if not _move(conn, offer, to_state, actor, now):
        raise IllegalTransitionError(f"offer {offer_id}", _state_now(conn, offer_id), to_state, "changed meanwhile")
    record(conn, actor, ACTIONS[to_state], _target(offer, offer_id), "open", to_state, now)
    return True


def accept(ledger: Ledger, actor: Actor, enterprise_id: str, offer_id: int, now: datetime) -> Booked:
    """Accept an open offer as the buyer's admin: the ledger books the transfer (reference
    ``offer:<id>``) and the offer becomes accepted in the same database transaction."""
    with ledger.engine.begin() as conn:
        offer = _checked(conn, actor, enterprise_id, offer_id, "accepted")
        expired = expire_if_due(conn, actor, offer, now)
    what = f"offer {offer_id}"
    if expired:
        raise IllegalTransitionError(what, "expired", "accepted", f"it expired at {offer.expires_at.isoformat()}")

    def mark_accepted(conn: Connection, transaction_id: int) -> None:
        if not _move(conn, offer, "accepted", actor, now, transaction_id=transaction_id):
            raise IllegalTransitionError(what, _state_now(conn, offer_id), "accepted", "changed meanwhile")
        record(
            conn,
            actor,
            ACTIONS["accepted"],
            _target(offer, offer_id),
            "open",
            f"accepted: transaction {transaction_id}",
            now,
        )

    try:
        booked = ledger.transfer(
            offer.seller_id,
            offer.buyer_id,
            offer.amount_t,
            offer.vintage,
            f"offer:{offer_id}",
            actor.name,
            offer.price_cny_per_t,
            memo=f"offer {offer_id}",
            after=mark_accepted,
        )
    except InsufficientBalanceError as exc:
        raise IllegalTransitionError(what, "open", "accepted", f"{exc}; the offer stays open") from None
    except LedgerError as exc:
        raise IllegalTransitionError(what, "open", "accepted", f"the ledger refused: {exc}") from None
    if booked.replayed:  # booked by another acceptance (at the same time, or this one sent twice)
        raise IllegalTransitionError(
            what, "accepted", "accepted", f"booked already as transaction {booked.transaction_id}"
        )
    return booked
