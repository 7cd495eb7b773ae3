"""The credit ledger on SQLite and on a real PostgreSQL: settlement, transfers, surrender, retirement,
the refusals, re-settlement by correcting entries, compliance, and the schema Alembic builds.

Expected figures are worked out by hand in each test from the amounts it books (1 credit = 1 t CO2,
booked in whole kg)."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from ledger.amounts import credits_to_kg, t_to_kg
from ledger.book import Ledger, SettledCredit
from ledger.db import current_revision, head_revision
from ledger.errors import (
    DuplicateReferenceError,
    InsufficientBalanceError,
    LedgerError,
    NothingToSettleError,
    UnknownEnterpriseError,
    WrongVintageError,
)
from ledger.registry_store import registry_versions  # its table is in ledger.schema's metadata
from ledger.results import TABLES as RESULT_TABLES
from ledger.schema import metadata, obligations, transactions
from park.registry import DEFAULT_TIMEZONE
from portal.schema import metadata as platform_metadata

DEADLINE = date(2027, 6, 30)


class Clock:
    """A booking clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def credit(enterprise: str, credits_t: float, sha: str = "a" * 64) -> SettledCredit:
    return SettledCredit(enterprise, credits_t, sha, "2026.1", "cn-national-2023")


@pytest.fixture
def ledger(ledger_url):
    book = Ledger.open(ledger_url, DEFAULT_TIMEZONE)
    book.clock = Clock()
    book.open_accounts(["E01", "E02", "E03", "E04"])
    yield book
    book.close()


def holding(ledger: Ledger, enterprise: str, vintage: int = 2026) -> float:
    frame = ledger.balances(enterprise)
    row = frame[frame["vintage"] == vintage]
    return float(row["amount_t"].iloc[0]) if len(row) else 0.0


def count_transactions(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(transactions)).scalar_one())


class TestAmounts:
    def test_tonnes_to_whole_kg(self):
        """People give t with up to 3 decimals; finer, zero, negative or text is refused."""
        assert t_to_kg("12.345") == 12_345
        assert t_to_kg(Decimal("0.001")) == 1
        for bad in ("1.2345", "0", "-3", "abc", "nan"):
            with pytest.raises(LedgerError):
                t_to_kg(bad)

    def test_computed_credits_round_half_even_to_kg(self):
        assert credits_to_kg(162.1234567) == 162_123
        assert credits_to_kg(-352.0675) == -352_068  # 352067.5 kg → even
        assert credits_to_kg(0.0005) == 0


class TestSchema:
    def test_migrations_build_exactly_the_models(self, ledger):
        """Alembic's head builds exactly ledger.schema and, on the same database, the platform's tables
        (portal.schema) and the result versions (ledger.results): autogenerate finds nothing to change."""
        assert set(RESULT_TABLES) <= set(metadata.tables)
        assert current_revision(ledger.engine) == head_revision()
        assert registry_versions.metadata is metadata  # the versioned registry (ledger/registry_store.py)
        with ledger.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), [metadata, platform_metadata]) == []

    def test_booked_rows_cannot_be_edited(self, ledger):
        """UPDATE and DELETE on entries, transactions, obligations and settlements are refused by the database."""
        ledger.settle(2026, [credit("E01", 10), credit("E02", -4)], DEADLINE, "office")
        for statement in (
            "UPDATE entries SET amount_kg = amount_kg * 2",
            "DELETE FROM transactions",
            "UPDATE obligations SET delta_kg = 0",
            "DELETE FROM settlements",
        ):
            with pytest.raises(DBAPIError, match="append-only"), ledger.engine.begin() as conn:
                conn.execute(text(statement))
        assert ledger.check() == []

    def test_holdings_check_refuses_a_negative_balance(self, ledger):
        """Behind the conditional updates stands a CHECK: no enterprise holding below zero, ever."""
        ledger.settle(2026, [credit("E01", 10)], DEADLINE, "office")
        with pytest.raises(DBAPIError), ledger.engine.begin() as conn:
            conn.execute(text("UPDATE holdings SET amount_kg = -1 WHERE account_id = 'ent:E01'"))


class TestSettlement:
    def test_surplus_issued_deficit_owed(self, ledger):
        """+162.1 t is issued as vintage 2026, −352.1 t becomes an obligation due by the deadline."""
        report = ledger.settle(2026, [credit("E01", 162.1), credit("E02", -352.1), credit("E03", 0.0)], DEADLINE, "op")
        assert report.issued_kg == {"E01": 162_100}
        assert report.obligation_kg == {"E02": 352_100}
        assert holding(ledger, "E01") == 162.1
        assert holding(ledger, "E02") == 0.0
        balances = ledger.balances()
        assert balances.loc[balances["account"] == "park:issuing", "amount_t"].sum() == -162.1
        compliance = ledger.compliance(2026, date(2027, 3, 1)).set_index("enterprise_id")
        assert compliance.loc["E02", ["due_t", "status"]].tolist() == [352.1, "open"]
        assert compliance.loc["E01", "status"] == "no obligation"
        assert ledger.check() == []

    def test_settling_again_unchanged_books_nothing(self, ledger):
        ledger.settle(2026, [credit("E01", 5), credit("E02", -5)], DEADLINE, "op")
        before = count_transactions(ledger)
        report = ledger.settle(2026, [credit("E01", 5), credit("E02", -5)], DEADLINE, "op")
        assert report.unchanged == ["E01", "E02"] and not report.issued_kg and not report.obligation_kg
        assert count_transactions(ledger) == before

    def test_correction_adds_entries_and_never_edits(self, ledger):
        """Re-settling after a correction books the differences as new entries.

        E01: 100 t issued, 70 t sold to E04, corrected to 20 t: the 30 t still held are clawed back, so
        70 t stay issued to it net, and 50 t are owed (70 − 50 = the corrected 20 t).
        E02: a deficit of 40 t corrected to 25 t: the obligation falls by 15 t.
        E03: a surplus of 10 t corrected up to 12.5 t: 2.5 t more issued.
        """
        ledger.settle(2026, [credit("E01", 100), credit("E02", -40), credit("E03", 10)], DEADLINE, "op")
        ledger.transfer("E01", "E04", "70", 2026, "sale-1", "E01 trader", price_cny_per_t="58.50")
        rows_before = ledger.statement("E01")
        report = ledger.settle(
            2026,
            [credit("E01", 20, "b" * 64), credit("E02", -25, "b" * 64), credit("E03", 12.5, "b" * 64)],
            DEADLINE,
            "op",
        )
        assert report.issued_kg == {"E01": -30_000, "E03": 2_500}
        assert report.obligation_kg == {"E01": 50_000, "E02": -15_000}
        assert holding(ledger, "E01") == 0.0 and holding(ledger, "E03") == 12.5 and holding(ledger, "E04") == 70.0
        compliance = ledger.compliance(2026, date(2027, 2, 1)).set_index("enterprise_id")
        assert compliance.loc["E01", "due_t"] == 50.0 and compliance.loc["E02", "due_t"] == 25.0
        statement = ledger.statement("E01")
        assert statement.iloc[: len(rows_before)].equals(rows_before)  # history unchanged, entries only added
        assert statement["kind"].tolist() == ["issue", "transfer", "clawback"]
        assert statement["balance_t"].tolist() == [100.0, 30.0, 0.0]
        assert statement["price_cny_per_t"].iloc[1] == 58.5
        with ledger.engine.connect() as conn:
            reasons = dict(conn.execute(select(obligations.c.enterprise_id, obligations.c.reason)).all())
        assert "over-issued credits no longer held" in reasons["E01"]
        assert "over-issued" not in reasons["E02"]
        assert ledger.check() == []

    def test_unknown_enterprise_and_empty_settlement(self, ledger):
        with pytest.raises(UnknownEnterpriseError, match="E99"):
            ledger.settle(2026, [credit("E01", 1), credit("E99", 1)], DEADLINE, "op")
        assert count_transactions(ledger) == 0  # the whole settlement is one transaction
        with pytest.raises(NothingToSettleError):
            ledger.settle(2026, [], DEADLINE, "op")


class TestRequests:
    @pytest.fixture
    def settled(self, ledger):
        ledger.settle(2025, [credit("E01", 8)], date(2026, 6, 30), "op")
        ledger.settle(
            2026, [credit("E01", 100), credit("E02", -30), credit("E03", -20), credit("E04", -10)], DEADLINE, "op"
        )
        return ledger

    def test_transfer_retry_is_applied_once(self, settled):
        first = settled.transfer("E01", "E02", "30", 2026, "deal-7", "E01 trader", price_cny_per_t=60)
        again = settled.transfer("E01", "E02", "30", 2026, "deal-7", "E01 trader", price_cny_per_t=60)
        assert again.replayed and again.transaction_id == first.transaction_id and not first.replayed
        assert holding(settled, "E01") == 70.0 and holding(settled, "E02") == 30.0
        with pytest.raises(DuplicateReferenceError, match="deal-7"):
            settled.transfer("E01", "E02", "31", 2026, "deal-7", "E01 trader", price_cny_per_t=60)

    def test_refusals_book_nothing(self, settled):
        before = count_transactions(settled)
        with pytest.raises(InsufficientBalanceError, match=r"E02 holds 0 t of vintage 2026, not the 1 t"):
            settled.transfer("E02", "E01", "1", 2026, "r1", "x")
        with pytest.raises(InsufficientBalanceError, match=r"E01 holds 100 t"):
            settled.transfer("E01", "E02", "100.001", 2026, "r2", "x")
        with pytest.raises(UnknownEnterpriseError):
            settled.transfer("E01", "E77", "1", 2026, "r3", "x")
        with pytest.raises(WrongVintageError, match="vintage 2019"):
            settled.transfer("E01", "E02", "1", 2019, "r4", "x")
        with pytest.raises(WrongVintageError, match="2027 cannot cover an obligation for 2026"):
            settled.surrender("E02", 2026, "1", 2027, "r5", "x")
        with pytest.raises(LedgerError, match="E01 owes 0 t for 2026"):
            settled.surrender("E01", 2026, "1", 2026, "r6", "x")
        with pytest.raises(LedgerError, match="reference"):
            settled.transfer("E01", "E02", "1", 2026, "", "x")
        assert count_transactions(settled) == before
        assert settled.check() == []

    def test_compliance_by_the_deadline(self, settled):
        """E02 covers its 30 t in time (banked 2025 credits count), E03 covers 5 of 20 t, E04 is late."""
        settled.transfer("E01", "E02", "25", 2026, "t1", "x")
        settled.transfer("E01", "E02", "5", 2025, "t2", "x")
        settled.transfer("E01", "E03", "5", 2026, "t3", "x")
        settled.transfer("E01", "E04", "10", 2026, "t4", "x")
        settled.surrender("E02", 2026, "25", 2026, "s1", "E02 office")
        settled.surrender("E02", 2026, "5", 2025, "s2", "E02 office")
        settled.surrender("E03", 2026, "5", 2026, "s3", "E03 office")
        with pytest.raises(LedgerError, match="E02 owes 0 t"):
            settled.surrender("E02", 2026, "0.001", 2026, "s4", "E02 office")
        before = settled.compliance(2026, DEADLINE).set_index("enterprise_id")
        assert before.loc["E03", "status"] == "open" and pd_isna(before.loc["E03", "score"])
        settled.clock.now = datetime(2027, 7, 2, tzinfo=UTC)  # the deadline has passed
        settled.surrender("E04", 2026, "10", 2026, "s5", "E04 office")
        after = settled.compliance(2026, date(2027, 7, 3)).set_index("enterprise_id")
        assert after.loc["E01", ["status", "score"]].tolist() == ["no obligation", 100.0]
        assert after.loc["E02", ["status", "score", "surrendered_t"]].tolist() == ["covered", 100.0, 30.0]
        assert after.loc["E03", ["status", "score"]].tolist() == ["partly covered", 25.0]
        assert after.loc["E04", ["status", "score", "surrendered_t"]].tolist() == ["not covered", 0.0, 0.0]
        assert settled.check() == []

    def test_retire_and_the_totals(self, settled):
        """Issued 108 t = held + surrendered + retired."""
        settled.transfer("E01", "E02", "30", 2026, "t1", "x")
        settled.surrender("E02", 2026, "30", 2026, "s1", "x")
        settled.retire("E01", "12.5", 2026, "ret-1", "E01 ESG", memo="offset of the 2026 company car fleet")
        balances = settled.balances().groupby("account")["amount_t"].sum()
        assert balances["park:issuing"] == -108.0
        assert balances["park:surrendered"] == 30.0 and balances["park:retired"] == 12.5
        assert balances["ent:E01"] == 108 - 30 - 12.5
        assert settled.check() == []


def pd_isna(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


# Client input that is no amount: text, NaN, infinities, a number too large for any column.
NOT_FINITE = ["NaN", "nan", "sNaN", "inf", "-Infinity", "abc", "", float("nan"), float("inf")]
TOO_LARGE = ["1e30", "1e999999"]


class TestNumbers:
    """A faulty or hostile client's numbers: every one is refused with its reason, nothing is booked."""

    @pytest.fixture
    def settled(self, ledger):
        ledger.settle(2026, [credit("E01", 100), credit("E02", -30)], DEADLINE, "op")
        return ledger

    @pytest.mark.parametrize(
        ("price", "reason"),
        [(p, "is not a finite number") for p in NOT_FINITE]
        + [(p, "is more than") for p in TOO_LARGE]
        + [(p, "must be ≥ 0 with at most 2 decimals") for p in ("-1", "-0.01", "1.001")],
        ids=repr,
    )
    def test_price_is_a_finite_non_negative_cny_amount(self, settled, price, reason):
        before = count_transactions(settled)
        with pytest.raises(LedgerError, match=rf"^price .*{reason}"):
            settled.transfer("E01", "E02", "1", 2026, "p-1", "x", price_cny_per_t=price)
        assert count_transactions(settled) == before

    @pytest.mark.parametrize(
        ("amount", "reason"),
        [(a, "is not a finite number") for a in NOT_FINITE]
        + [(a, "is more than") for a in TOO_LARGE]
        + [(a, "must be positive") for a in ("-1", "-0.001", "0", "-1e30")],
        ids=repr,
    )
    @pytest.mark.parametrize("request_kind", ["transfer", "surrender", "retire"])
    def test_amount_is_a_finite_positive_tonnage(self, settled, amount, reason, request_kind):
        before = count_transactions(settled)
        with pytest.raises(LedgerError, match=rf"^amount .*{reason}"):
            if request_kind == "transfer":
                settled.transfer("E01", "E02", amount, 2026, "a-1", "x")
            elif request_kind == "surrender":
                settled.surrender("E02", 2026, amount, 2026, "a-1", "x")
            else:
                settled.retire("E01", amount, 2026, "a-1", "x")
        assert count_transactions(settled) == before


SETTLEMENT_REFERENCES = [
    "settle:2026:E01:2:issue",
    "settle:2026:E01:2:clawback",
    "settle:2026:E02:2:obligation",
    "settle:2027:E01:1:issue",
]


class TestReferences:
    """The settlement books under references of its own; a caller can neither take nor spoil them."""

    @pytest.mark.parametrize("reference", [*SETTLEMENT_REFERENCES, "settle:", "settle:anything"])
    @pytest.mark.parametrize("request_kind", ["transfer", "surrender", "retire"])
    def test_a_system_reference_is_refused_to_callers(self, ledger, reference, request_kind):
        ledger.settle(2026, [credit("E01", 100), credit("E02", -30)], DEADLINE, "op")
        ledger.transfer("E01", "E02", "30", 2026, "stock", "x")
        before = count_transactions(ledger)
        with pytest.raises(LedgerError, match=r"reserved for the ledger's own bookings"):
            if request_kind == "transfer":
                ledger.transfer("E01", "E02", "1", 2026, reference, "x")
            elif request_kind == "surrender":
                ledger.surrender("E02", 2026, "1", 2026, reference, "x")
            else:
                ledger.retire("E01", "1", 2026, reference, "x")
        assert count_transactions(ledger) == before

    def test_settlement_still_works_after_a_caller_tried_its_references(self, ledger):
        """E01 settled at 100 t, then corrected to 60 t (40 t clawed back); E02 owes 30 t, then 20 t."""
        ledger.settle(2026, [credit("E01", 100), credit("E02", -30)], DEADLINE, "op")
        for reference in SETTLEMENT_REFERENCES:
            with contextlib.suppress(LedgerError):
                ledger.transfer("E01", "E02", "0.001", 2026, reference, "mallory")
        report = ledger.settle(2026, [credit("E01", 60, "b" * 64), credit("E02", -20, "b" * 64)], DEADLINE, "op")
        assert report.issued_kg == {"E01": -40_000}
        assert report.obligation_kg == {"E02": -10_000}
        report = ledger.settle(2027, [credit("E01", 5)], date(2028, 6, 30), "op")
        assert report.issued_kg == {"E01": 5_000}
        assert holding(ledger, "E01") == 60.0 and holding(ledger, "E01", 2027) == 5.0
        assert ledger.check() == []
