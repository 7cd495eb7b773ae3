"""Offers and surrender (portal/offers.py): every illegal change of an offer refused with its own
error, balances after an acceptance, a seller without the credits, two buyers' admins accepting one
offer at once (SQLite and the real PostgreSQL), surrender against the year's obligation, and the same
over HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, select

from ledger.book import Ledger, SettledCredit
from ledger.db import make_engine, migrate
from ledger.schema import transactions
from portal import offers
from portal.audit import Actor
from portal.schema import audit_log
from portal.scope import ForbiddenError, NotFoundError
from portal.workflow import IllegalTransitionError, InvalidInputError
from tests.portal.park import ALPHA_OFFER, csrf_of

TZ = "Asia/Shanghai"
SELLER = Actor("alpha-admin", "enterprise_admin", "ALPHA", "10.0.0.1")
BUYER = Actor("bravo-admin", "enterprise_admin", "BRAVO", "10.0.0.2")
BUYER_2 = Actor("bravo-admin-2", "enterprise_admin", "BRAVO", "10.0.0.3")
BUYER_REPORTER = Actor("bravo-reporter", "enterprise_reporter", "BRAVO", "10.0.0.4")
THIRD = Actor("charlie-admin", "enterprise_admin", "CHARLIE", "10.0.0.5")
KNOWN = {"ALPHA", "BRAVO", "CHARLIE"}


@dataclass
class Book:
    engine: Engine
    ledger: Ledger

    def held(self, enterprise_id: str, vintage: int = 2025) -> Decimal:
        frame = self.ledger.balances(enterprise_id)
        rows = frame[frame["vintage"] == vintage]["amount_t"]
        return Decimal(str(rows.iloc[0])) if len(rows) else Decimal(0)

    def offer(self, amount_t: str = "10", price: str = "58.5", hours: float = 24, seller: Actor = SELLER) -> int:
        now = datetime.now(UTC)
        terms = offers.parse_terms(amount_t, price, "2025", (now + timedelta(hours=hours)).isoformat(), TZ)
        buyer = "BRAVO" if seller.enterprise_id == "ALPHA" else "ALPHA"
        held = int(self.held(str(seller.enterprise_id)) * 1000)
        with self.engine.begin() as conn:
            return offers.make(conn, seller, str(seller.enterprise_id), buyer, terms, held, KNOWN, now)

    def accept(self, actor: Actor, offer_id: int, enterprise_id: str = "BRAVO", at: datetime | None = None) -> int:
        return offers.accept(self.ledger, actor, enterprise_id, offer_id, at or datetime.now(UTC)).transaction_id

    def decide(self, actor: Actor, offer_id: int, to_state: str, enterprise_id: str) -> bool:
        with self.engine.begin() as conn:
            return offers.decide(conn, actor, enterprise_id, offer_id, to_state, datetime.now(UTC))

    def state(self, offer_id: int) -> str:
        with self.engine.connect() as conn:
            return offers.load_offer(conn, "ALPHA", offer_id).state


@pytest.fixture
def book(ledger_url: str) -> Iterator[Book]:
    """ALPHA holds 100 t of vintage 2025, BRAVO 20 t; ALPHA owes 12.5 t for 2026."""
    engine = make_engine(ledger_url)
    migrate(engine)
    ledger = Ledger(engine, TZ)
    ledger.open_accounts(sorted(KNOWN))
    sha = "b" * 64
    ledger.settle(
        2025,
        [SettledCredit("ALPHA", 100.0, sha, "p1", "cn"), SettledCredit("BRAVO", 20.0, sha, "p1", "cn")],
        date(2026, 6, 30),
        "office",
    )
    ledger.settle(2026, [SettledCredit("ALPHA", -12.5, sha, "p1", "cn")], date(2027, 6, 30), "office")
    yield Book(engine, ledger)
    engine.dispose()


def test_every_illegal_change_of_an_offer_is_refused(book):
    offer_id = book.offer()
    with pytest.raises(ForbiddenError, match="seller cannot make"):  # the seller accepting its own offer
        book.accept(SELLER, offer_id, "ALPHA")
    with pytest.raises(NotFoundError):  # a third enterprise accepting, under its own id
        book.accept(THIRD, offer_id, "CHARLIE")
    with pytest.raises(ForbiddenError):  # ... or under the buyer's
        book.accept(THIRD, offer_id, "BRAVO")
    with pytest.raises(ForbiddenError, match="cannot trade"):  # the buyer's reporter
        book.accept(BUYER_REPORTER, offer_id)
    with pytest.raises(ForbiddenError, match="buyer cannot make"):
        book.decide(BUYER, offer_id, "withdrawn", "BRAVO")
    with pytest.raises(ForbiddenError, match="seller cannot make"):
        book.decide(SELLER, offer_id, "declined", "ALPHA")
    assert book.state(offer_id) == "open"
    book.accept(BUYER, offer_id)
    with pytest.raises(IllegalTransitionError, match="accepted → accepted"):  # accepting twice
        book.accept(BUYER_2, offer_id)
    with pytest.raises(IllegalTransitionError, match="accepted → withdrawn"):
        book.decide(SELLER, offer_id, "withdrawn", "ALPHA")
    withdrawn = book.offer()
    assert book.decide(SELLER, withdrawn, "withdrawn", "ALPHA")
    with pytest.raises(IllegalTransitionError, match="withdrawn → accepted"):
        book.accept(BUYER, withdrawn)
    declined = book.offer()
    assert book.decide(BUYER, declined, "declined", "BRAVO")
    with pytest.raises(IllegalTransitionError, match="declined → accepted"):
        book.accept(BUYER, declined)
    expiring = book.offer(hours=1)
    with pytest.raises(IllegalTransitionError, match="expired → accepted"):
        book.accept(BUYER, expiring, at=datetime.now(UTC) + timedelta(hours=2))
    assert book.state(expiring) == "expired"
    with pytest.raises(IllegalTransitionError, match="expired → accepted"):
        book.accept(BUYER, expiring)
    assert [book.state(o) for o in (offer_id, withdrawn, declined, expiring)] == [
        "accepted",
        "withdrawn",
        "declined",
        "expired",
    ]
    with book.engine.connect() as conn:
        lines = conn.execute(
            select(audit_log.c.action, audit_log.c.actor, audit_log.c.from_value, audit_log.c.to_value)
            .where(audit_log.c.action.like("offer.%"))
            .order_by(audit_log.c.id)
        ).all()
        booked = conn.execute(select(transactions.c.reference).where(transactions.c.kind == "transfer")).scalars()
        assert list(booked) == [f"offer:{offer_id}"]  # nothing else was booked
    assert [(a, f, t.split(":")[0]) for a, _, f, t in lines] == [
        ("offer.make", "new", "open"),
        ("offer.accept", "open", "accepted"),
        ("offer.make", "new", "open"),
        ("offer.withdraw", "open", "withdrawn"),
        ("offer.make", "new", "open"),
        ("offer.decline", "open", "declined"),
        ("offer.make", "new", "open"),
        ("offer.expire", "open", "expired"),
    ]
    assert lines[1][1] == "bravo-admin"


def test_offers_refused_as_typed(book):
    now = datetime.now(UTC)
    later = (now + timedelta(days=1)).isoformat()
    with pytest.raises(InvalidInputError):
        offers.parse_terms("-1", "5", "2025", later, TZ)
    with pytest.raises(InvalidInputError):
        offers.parse_terms("1", "5", "2025", "tomorrow", TZ)
    terms = offers.parse_terms("1", "5", "2025", later, TZ)
    for buyer, held, expires, reason in [
        ("ALPHA", 10**9, terms[3], "another enterprise"),
        ("NOWHERE", 10**9, terms[3], "no enterprise"),
        ("BRAVO", 999, terms[3], "holds 0.999 t"),
        ("BRAVO", 10**9, now - timedelta(minutes=1), "in the future"),
    ]:
        with pytest.raises(InvalidInputError, match=reason), book.engine.begin() as conn:
            offers.make(conn, SELLER, "ALPHA", buyer, (*terms[:3], expires), held, KNOWN, now)
    with pytest.raises(ForbiddenError), book.engine.begin() as conn:  # an offer in another's name
        offers.make(conn, BUYER, "ALPHA", "BRAVO", terms, 10**9, KNOWN, now)


def test_balances_after_an_acceptance_move_by_the_amount(book):
    before = book.held("ALPHA"), book.held("BRAVO")
    transaction_id = book.accept(BUYER, book.offer("12.345", "61.20"))
    assert (book.held("ALPHA"), book.held("BRAVO")) == (before[0] - Decimal("12.345"), before[1] + Decimal("12.345"))
    statement = book.ledger.statement("BRAVO")
    row = statement[statement["transaction"] == transaction_id].iloc[0]
    assert (row["kind"], row["counterparty"], row["price_cny_per_t"]) == ("transfer", "ALPHA", 61.2)


def test_a_seller_without_the_credits_is_refused_and_the_offer_stays_open(book):
    offer_id = book.offer("90")
    book.ledger.transfer("ALPHA", "CHARLIE", "50", 2025, "alpha-sells-elsewhere", "alpha-admin")
    with pytest.raises(IllegalTransitionError, match=r"holds 50 t of vintage 2025.*stays open"):
        book.accept(BUYER, offer_id)
    assert book.state(offer_id) == "open"
    assert (book.held("ALPHA"), book.held("BRAVO")) == (Decimal(50), Decimal(20))
    book.ledger.transfer("CHARLIE", "ALPHA", "40", 2025, "alpha-buys-back", "alpha-admin")
    book.accept(BUYER, offer_id)  # held again: the open offer can still be accepted
    assert (book.held("ALPHA"), book.held("BRAVO"), book.state(offer_id)) == (Decimal(0), Decimal(110), "accepted")


THREADS = 8


def test_two_buyers_admins_accepting_at_once_book_once(book):
    rounds = 3
    offer_ids = [book.offer("7.5") for _ in range(rounds)]
    start = threading.Barrier(THREADS)

    def accept(n: int, offer_id: int) -> str:
        start.wait(timeout=60)
        try:
            book.accept(BUYER if n % 2 else BUYER_2, offer_id)
        except IllegalTransitionError:
            return "refused"
        return "accepted"

    for offer_id in offer_ids:
        with ThreadPoolExecutor(THREADS) as pool:
            outcomes = list(pool.map(accept, range(THREADS), [offer_id] * THREADS))
        assert sorted(outcomes) == ["accepted"] + ["refused"] * (THREADS - 1)
    assert (book.held("ALPHA"), book.held("BRAVO")) == (Decimal("77.5"), Decimal("42.5"))
    with book.engine.connect() as conn:
        references = conn.execute(select(transactions.c.reference).where(transactions.c.kind == "transfer")).scalars()
        assert sorted(references) == sorted(f"offer:{o}" for o in offer_ids)
        accepted = conn.execute(select(audit_log.c.target).where(audit_log.c.action == "offer.accept")).scalars()
        assert len(list(accepted)) == rounds
    assert all(book.state(o) == "accepted" for o in offer_ids)


def test_accepting_and_withdrawing_at_once_do_one_or_the_other(book):
    offer_id = book.offer("5")
    start = threading.Barrier(2)

    def accept() -> str:
        start.wait(timeout=60)
        try:
            book.accept(BUYER, offer_id)
        except IllegalTransitionError:
            return "refused"
        return "accepted"

    def withdraw() -> str:
        start.wait(timeout=60)
        try:
            book.decide(SELLER, offer_id, "withdrawn", "ALPHA")
        except IllegalTransitionError:
            return "refused"
        return "withdrawn"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(f.result() for f in [pool.submit(accept), pool.submit(withdraw)])
    state = book.state(offer_id)
    assert outcomes in (["accepted", "refused"], ["refused", "withdrawn"]) and state in outcomes
    moved = Decimal(5) if state == "accepted" else Decimal(0)
    assert (book.held("ALPHA"), book.held("BRAVO")) == (100 - moved, 20 + moved)


# -- over HTTP --------------------------------------------------------------------------------------

services = pytest.mark.services


def _held(client, enterprise_id: str) -> float:
    found = client.get(f"/enterprises/{enterprise_id}/holdings.json").json()["holdings"]
    return sum(h["amount_t"] for h in found if h["vintage"] == 2025)


@services
def test_http_offers_accept_once_and_answer_refusals(park):
    alpha = park.login("alpha-admin")
    page = alpha.get("/enterprises/ALPHA/offers")
    assert page.status_code == 200 and f'data-offer="{ALPHA_OFFER}" data-state="open"' in page.text
    token = csrf_of(page.text)
    before = _held(alpha, "ALPHA")
    url = f"/enterprises/ALPHA/offers/{ALPHA_OFFER}"
    reporter = park.login("alpha-reporter")
    refused = reporter.post(f"{url}/accept", data={"csrf_token": csrf_of(reporter.get("/account/password").text)})
    assert refused.status_code == 403
    assert alpha.post(f"{url}/withdraw", data={"csrf_token": token}).status_code == 403  # the buyer cannot withdraw
    assert alpha.post(f"{url}/accept", data={"csrf_token": token}).status_code == 303
    again = alpha.post(f"{url}/accept", data={"csrf_token": token})
    assert again.status_code == 409 and "accepted → accepted" in again.text
    assert _held(alpha, "ALPHA") == before + 1.0
    assert f'data-offer="{ALPHA_OFFER}" data-state="accepted"' in alpha.get("/enterprises/ALPHA/offers").text
    made = alpha.post(
        "/enterprises/ALPHA/offers",
        data={
            "csrf_token": token,
            "buyer": "CHARLIE",
            "vintage": "2025",
            "amount_t": "500",
            "price_cny_per_t": "60",
            "expires_at": "2099-01-01T12:00",
        },
    )
    assert made.status_code == 400 and "holds 36 t" in made.text  # ALPHA holds 35 + 1
    office = park.login("ana-analyst")
    shown = office.get("/park/offers")
    assert shown.status_code == 200 and shown.text.count("data-offer=") == 2
    office_token = csrf_of(shown.text)
    assert office.post("/enterprises/BRAVO/offers/1/accept", data={"csrf_token": office_token}).status_code == 403
    assert office.post("/enterprises/ALPHA/offers", data={"csrf_token": office_token}).status_code in (400, 403)


@services
def test_surrender_reduces_the_open_obligation(park):
    ledger = Ledger(make_engine(park.config.ledger_url), TZ)
    ledger.settle(2026, [SettledCredit("ALPHA", -12.5, "c" * 64, "p1", "cn")], date(2027, 6, 30), "office")
    ledger.close()
    alpha = park.login("alpha-admin")
    page = alpha.get("/enterprises/ALPHA/surrender?year=2026")
    assert page.status_code == 200 and '<td class="open">12.500</td>' in page.text
    form = {
        "csrf_token": csrf_of(page.text),
        "token": page.text.split('name="token" value="')[1].split('"')[0],
        "obligation_year": "2026",
        "surrender_vintage": "2025",
        "amount_t": "10",
    }
    done = alpha.post("/enterprises/ALPHA/surrender", data=form)
    assert done.status_code == 200, done.text[:500]
    before, after = done.text.split('id="before"')[1], done.text.split('id="now"')[1]
    assert '<td class="open">12.500</td>' in before and '<td class="held">35.000</td>' in before
    assert '<td class="open">2.500</td>' in after and '<td class="held">25.000</td>' in after
    assert alpha.post("/enterprises/ALPHA/surrender", data=form).status_code == 200  # sent twice: booked once
    assert _held(alpha, "ALPHA") == 25.0
    form["token"] = "f" * 32
    too_much = alpha.post("/enterprises/ALPHA/surrender", data=form)  # 10 t more than the 2.5 t still owed
    assert too_much.status_code == 409 and "owes 2.5" in too_much.text
    reporter = park.login("alpha-reporter")
    form["csrf_token"] = csrf_of(reporter.get("/account/password").text)
    assert reporter.post("/enterprises/ALPHA/surrender", data=form).status_code == 403


@services
def test_what_the_platform_books_is_held_to_the_policys_banking_validity(park):
    """Offers accepted and surrenders on the platform go through a ledger with the policy's banking
    validity, as every ledger command does (without it a vintage past its validity could be traded)."""
    from park.registry import load_registry
    from portal.data import View
    from portal.scope import Scope
    from scoring.policy import load_policy

    backend = park.app.state.backend
    assert backend.credit_validity_years == load_policy().credit_validity_years == 3
    scope = Scope.of("alpha-admin", "enterprise_admin", "ALPHA", load_registry(park.config.registry))
    book = View(backend, scope, Actor("alpha-admin", "enterprise_admin", "ALPHA", "test"))._book()
    assert book.credit_validity_years == 3
