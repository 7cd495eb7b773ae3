"""The annual pipeline's booking of a settled year (``pipeline.annual.book_year``): the settlement, then
the expiry of credits past the policy's banking validity at the year's end, on a real ledger.

By hand, with the policy's 3 years: vintage 2022 is usable through 2025-12-31. Settling 2024 (expiry as
of 2025-01-01) leaves it; settling 2025 (as of 2026-01-01) books out what enterprises still hold of it:
E01 100 − 30 sold = 70 t, E02 30 bought − 10 surrendered = 20 t. The 10 t surrendered stay surrendered.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from ledger.book import Ledger
from park.registry import DEFAULT_TIMEZONE
from park.settings import Settings
from pipeline.annual import book_year, credit_validity_years
from tests.ledger.test_external import Clock

VALIDITY_YEARS = 3  # scoring/data/policy.yaml, ledger.credit_validity_years


def credits(credits_t: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "enterprise": list(credits_t),
            "credits_tco2": list(credits_t.values()),
            "inputs_sha256": ["b" * 64] * len(credits_t),
            "policy_version": ["2026.1"] * len(credits_t),
            "factor_set": ["cn-national-2023"] * len(credits_t),
        }
    )


def settle(ledger: Ledger, year: int, credits_t: dict[str, float]) -> dict[tuple[str, int], int]:
    """Book ``year`` as carbon_annual does, in the January after it; the kg expired."""
    ledger.clock = Clock(datetime(year + 1, 1, 5, 9, 0, tzinfo=UTC))
    return book_year(ledger, year, credits(credits_t), date(year + 1, 6, 30), "carbon_annual").expired_kg


@pytest.fixture
def ledger(ledger_url):
    book = Ledger.open(ledger_url, DEFAULT_TIMEZONE, credit_validity_years=VALIDITY_YEARS)
    book.open_accounts(["E01", "E02"])
    yield book
    book.close()


def test_the_policy_gives_the_validity(tmp_path):
    assert credit_validity_years(Settings(policy=None)) == VALIDITY_YEARS  # the packaged policy
    packaged = (Path(__file__).parents[2] / "scoring" / "data" / "policy.yaml").read_text(encoding="utf-8")
    policy = tmp_path / "policy.yaml"
    policy.write_text(packaged.replace("credit_validity_years: 3", "credit_validity_years: 7"), encoding="utf-8")
    assert credit_validity_years(Settings(policy=policy)) == 7


def test_settling_a_year_books_out_what_is_past_validity_at_its_end(ledger):
    assert settle(ledger, 2022, {"E01": 100.0, "E02": -10.0}) == {}
    ledger.clock = Clock(datetime(2023, 2, 1, tzinfo=UTC))
    ledger.transfer("E01", "E02", "30", 2022, "deal-1", "E01 trader")
    ledger.surrender("E02", 2022, "10", 2022, "s-1", "E02 office")

    assert settle(ledger, 2024, {"E01": 5.0, "E02": 0.0}) == {}  # 2022 is valid through 2025-12-31
    assert settle(ledger, 2025, {"E01": 50.0, "E02": 0.0}) == {("E01", 2022): 70_000, ("E02", 2022): 20_000}
    assert settle(ledger, 2025, {"E01": 50.0, "E02": 0.0}) == {}  # the DAG run again: nothing new

    held = ledger.balances().set_index(["account", "vintage"])["amount_t"]
    assert held[("park:expired", 2022)] == 90.0
    assert held[("park:surrendered", 2022)] == 10.0
    assert held[("ent:E01", 2022)] == 0.0 and held[("ent:E02", 2022)] == 0.0
    assert held[("ent:E01", 2024)] == 5.0 and held[("ent:E01", 2025)] == 50.0  # within their validity
    assert ledger.check() == []
    assert list(ledger.statement("E02")["kind"]) == ["transfer", "surrender", "expire"]


def test_without_a_validity_nothing_expires(ledger):
    ledger.credit_validity_years = None
    settle(ledger, 2020, {"E01": 100.0})
    assert settle(ledger, 2030, {"E01": 1.0}) == {}
    assert ledger.balances().set_index(["account", "vintage"])["amount_t"][("ent:E01", 2020)] == 100.0
