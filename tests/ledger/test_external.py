"""External units (green certificates, CCER, 碳普惠) against obligations, and the expiry of banked credits,
on SQLite and on a real PostgreSQL.

E02 owes 50 t for 2026 (a settled deficit); the national ETS cap lets external units cover at most
5 % of it: 50,000 kg x 0.05 = 2,500 kg."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from ledger.book import DEFAULT_EXTERNAL_CAP, Booked, ExternalLot, Ledger, SettledCredit
from ledger.errors import ExpiredError, LedgerError, OffsetCapError, SerialUsedError, WrongVintageError
from ledger.schema import external_units, transactions
from park.registry import DEFAULT_TIMEZONE

DEADLINE = date(2027, 6, 30)
CAP_KG = 2_500  # 50 t due x 5 %


class Clock:
    def __init__(self, start: datetime = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)) -> None:
        self.now = start
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            self.now += timedelta(seconds=1)
            return self.now


def credit(enterprise: str, credits_t: float) -> SettledCredit:
    return SettledCredit(enterprise, credits_t, "a" * 64, "2026.1", "cn-national-2023")


def lot(serial: str, kg: int, vintage: int = 2025, kind: str = "ccer", valid_until: date | None = None) -> ExternalLot:
    return ExternalLot(serial, kind, vintage, "CCER registry, project 0001", Decimal(kg) / 1000, valid_until)


@pytest.fixture
def book(ledger_url):
    ledger = Ledger.open(ledger_url, DEFAULT_TIMEZONE)
    ledger.clock = Clock()
    ledger.open_accounts(["E01", "E02", "E03"])
    ledger.settle(2026, [credit("E01", 100), credit("E02", -50), credit("E03", -20)], DEADLINE, "office")
    yield ledger
    ledger.close()


def transactions_count(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(transactions)).scalar_one())


def held_t(ledger: Ledger, account: str) -> float:
    frame = ledger.balances()
    return float(frame[frame["account"] == account]["amount_t"].sum())


def test_the_default_cap_is_the_national_ets_five_percent():
    assert Decimal("0.05") == DEFAULT_EXTERNAL_CAP


@pytest.mark.parametrize(("kg", "booked"), [(CAP_KG - 1, True), (CAP_KG, True), (CAP_KG + 1, False)])
def test_cap_exactly(book, kg, booked):
    before = transactions_count(book)
    if booked:
        result = book.use_external("E02", 2026, lot("CCER-1", kg), "x1", "E02 office")
        assert isinstance(result, Booked) and not result.replayed
        assert held_t(book, "park:offsets") == kg / 1000
        assert held_t(book, "park:external") == -kg / 1000
    else:
        over = r"at most 2\.5 t \(5% of the 50 t due for 2026\).*2\.501 t more is 1 kg over"
        with pytest.raises(OffsetCapError, match=over):
            book.use_external("E02", 2026, lot("CCER-1", kg), "x1", "E02 office")
        assert transactions_count(book) == before
    assert book.check() == []


def test_the_cap_counts_every_lot_of_the_year(book):
    book.use_external("E02", 2026, lot("GEC-1", 2_000, kind="gec"), "x1", "E02 office")
    with pytest.raises(OffsetCapError, match="1 kg over"):
        book.use_external("E02", 2026, lot("PH-1", 501, kind="puhui"), "x2", "E02 office")
    book.use_external("E02", 2026, lot("PH-1", 500, kind="puhui"), "x2", "E02 office")
    row = book.compliance(2026, date(2027, 3, 1)).set_index("enterprise_id").loc["E02"]
    assert (row["due_t"], row["surrendered_t"], row["external_t"], row["status"]) == (50.0, 0.0, 2.5, "open")
    # credits cover the rest: 47.5 t, no more
    book.transfer("E01", "E02", "60", 2026, "t1", "E01 trader")
    with pytest.raises(LedgerError, match=r"owes 47\.5 t"):
        book.surrender("E02", 2026, "47.501", 2026, "s0", "E02 office")
    book.surrender("E02", 2026, "47.5", 2026, "s1", "E02 office")
    row = book.compliance(2026, date(2027, 7, 1)).set_index("enterprise_id").loc["E02"]
    assert (row["status"], row["score"]) == ("covered", 100.0)
    assert book.check() == []


def test_a_larger_cap_from_the_policy(book):
    book.use_external("E02", 2026, lot("CCER-9", 10_000), "x1", "E02 office", cap="0.2")  # 20 % of 50 t
    with pytest.raises(OffsetCapError):
        book.use_external("E02", 2026, lot("CCER-10", 1), "x2", "E02 office", cap="0.2")


def test_wrong_vintage_and_expired_lot_are_refused(book):
    before = transactions_count(book)
    with pytest.raises(WrongVintageError, match="CCER-2 of vintage 2027 cannot cover an obligation for 2026"):
        book.use_external("E02", 2026, lot("CCER-2", 1_000, vintage=2027), "x1", "E02 office")
    with pytest.raises(ExpiredError, match=r"gec GEC-7 expired on 2027-01-01 .* nothing was booked"):
        book.use_external("E02", 2026, lot("GEC-7", 1_000, kind="gec", valid_until=date(2027, 1, 1)), "x2", "E02")
    with pytest.raises(LedgerError, match="owes nothing"):
        book.use_external("E01", 2026, lot("CCER-3", 1_000), "x3", "E01 office")
    assert transactions_count(book) == before
    # valid on its last day (the clock says 2027-01-05 in the park)
    book.use_external("E02", 2026, lot("GEC-8", 1_000, kind="gec", valid_until=date(2027, 1, 5)), "x4", "E02")


def test_a_serial_counts_once_park_wide(book):
    book.use_external("E02", 2026, lot("CCER-5", 1_000), "x1", "E02 office")
    assert book.use_external("E02", 2026, lot("CCER-5", 1_000), "x1", "E02 office").replayed  # a retry
    with pytest.raises(SerialUsedError, match="CCER-5 was used already, by E02 for 2026"):
        book.use_external("E03", 2026, lot("CCER-5", 500), "x2", "E03 office")
    assert book.check() == []


def test_two_concurrent_requests_for_one_serial_book_once(book):
    """E02 and E03 send the same serial at the same instant, eight times over with new serials: each
    serial is booked exactly once and the other request is refused as used."""
    for round_ in range(8):
        start = threading.Barrier(2)
        serial = f"PH-race-{round_}"

        def send(enterprise: str, serial: str = serial, start: threading.Barrier = start) -> str:
            start.wait()
            try:
                book.use_external(
                    enterprise, 2026, lot(serial, 100, kind="puhui"), f"{serial}-{enterprise}", enterprise
                )
            except SerialUsedError:
                return "used"
            return "booked"

        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(send, ["E02", "E03"]))
        assert outcomes == ["booked", "used"], round_
    with book.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(external_units)).scalar_one() == 8
    assert held_t(book, "park:offsets") == 0.8
    assert book.check() == []


def test_external_lots_cannot_be_edited_and_an_edit_shows(book):
    booked = book.use_external("E02", 2026, lot("CCER-6", 1_000), "x1", "E02 office")
    for statement in ("UPDATE external_units SET amount_kg = 2000", "DELETE FROM external_units"):
        with pytest.raises(DBAPIError, match="append-only"), book.engine.begin() as conn:
            conn.execute(text(statement))
    with book.engine.begin() as conn:  # what the database's owner could do: triggers off, edit
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(text("DROP TRIGGER external_units_no_update"))
        conn.execute(text("UPDATE external_units SET enterprise_id = 'E03'"))
    assert book.check() == [f"external unit CCER-6: not as transaction {booked.transaction_id} booked it"]


def test_banked_credits_expire_by_entries(ledger_url):
    """E01 earns 100 t of vintage 2026, banked for 3 years: usable through 2029-12-31. As of 2030-01-01
    what it still holds (100 − 30 transferred to E02) moves to park:expired, one transaction each."""
    ledger = Ledger.open(ledger_url, DEFAULT_TIMEZONE, credit_validity_years=3)
    ledger.clock = Clock()
    ledger.open_accounts(["E01", "E02"])
    ledger.settle(2026, [credit("E01", 100), credit("E02", 0)], DEADLINE, "office")
    ledger.transfer("E01", "E02", "30", 2026, "t1", "E01 trader")
    assert ledger.valid_through(2026) == date(2029, 12, 31)
    assert ledger.expire(date(2029, 12, 31), "office") == {}
    assert ledger.expire(date(2030, 1, 1), "office") == {("E01", 2026): 70_000, ("E02", 2026): 30_000}
    assert ledger.expire(date(2030, 6, 1), "office") == {}  # nothing left: nothing booked
    balances = ledger.balances().set_index(["account", "vintage"])["amount_t"]
    assert balances[("park:expired", 2026)] == 100.0
    assert balances[("ent:E01", 2026)] == 0.0 and balances[("ent:E02", 2026)] == 0.0
    assert balances[("park:issuing", 2026)] == -100.0  # issued = expired: the book balances
    assert ledger.check() == []
    statement = ledger.statement("E01")
    assert list(statement["kind"]) == ["issue", "transfer", "expire"]
    assert statement["balance_t"].iloc[-1] == 0.0
    # past the validity, the vintage cannot be moved any more
    ledger.clock = Clock(datetime(2030, 1, 2, tzinfo=UTC))
    with pytest.raises(ExpiredError, match="vintage 2026 expired on 2029-12-31"):
        ledger.retire("E01", "1", 2026, "r1", "E01")
    ledger.close()


def test_expiry_needs_a_validity(book):
    with pytest.raises(LedgerError, match="no banking validity"):
        book.expire(date(2040, 1, 1), "office")
