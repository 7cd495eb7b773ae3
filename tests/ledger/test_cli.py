"""``parkcarbon ledger`` as the park office uses it, on the embedded SQLite ledger of a run directory."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import date

import pandas as pd
import pytest

from parkcarbon.cli import main


@pytest.fixture
def office(tmp_path, monkeypatch, capsys):
    """A run directory of its own, and the year 2026 settled from a credits_annual.csv; returns what it printed."""
    monkeypatch.setenv("PARKCARBON_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("PARKCARBON_LEDGER__OPERATOR", "park office")
    credits = pd.DataFrame(
        {
            "enterprise_id": ["E01", "E02", "E05"],
            "credits_tco2": [162.1234, -352.1, 40.0],
            "inputs_sha256": ["d" * 64] * 3,
            "policy_version": ["2026.1"] * 3,
            "factor_set": ["cn-national-2023"] * 3,
        }
    )
    credits.to_csv(tmp_path / "credits_annual.csv", index=False)
    assert main(["ledger", "settle", "2026", "--credits", str(tmp_path / "credits_annual.csv")]) == 0
    return capsys.readouterr().out


def test_settle_trade_surrender_statement(office, capsys, tmp_path):
    out = office
    assert "E01: issued 162.123 t of vintage 2026" in out
    assert "E02: owes +352.100 t for 2026 by 2027-06-30" in out
    transfer = ["ledger", "transfer", "--from", "E01", "--to", "E02", "--amount", "100", "--vintage", "2026"]
    assert main([*transfer, "--reference", "deal-1", "--price-cny", "58.5"]) == 0
    assert main([*transfer, "--reference", "deal-1", "--price-cny", "58.5"]) == 0  # a retry
    assert "already booked as transaction" in capsys.readouterr().out
    assert main(["ledger", "surrender", "--enterprise", "E02", "--year", "2026", "--amount", "100", "--vintage", "2026",
                 "--reference", "s-1"]) == 0  # fmt: skip
    assert main(["ledger", "retire", "--enterprise", "E05", "--amount", "1.5", "--vintage", "2026",
                 "--reference", "ret-1", "--memo", "staff travel"]) == 0  # fmt: skip
    capsys.readouterr()

    assert main(["ledger", "balance", "E01"]) == 0
    assert "62.123\n" in capsys.readouterr().out  # booked in whole kg: 162.123 − 100
    csv, xlsx = tmp_path / "E01.csv", tmp_path / "E01.xlsx"
    this_year = str(date.today().year)  # the command books at the real time
    assert main(["ledger", "statement", "E01", "--year", this_year, "--csv", str(csv), "--xlsx", str(xlsx)]) == 0
    for frame in (pd.read_csv(csv), pd.read_excel(xlsx)):
        assert frame["kind"].tolist() == ["issue", "transfer"]
        assert frame["balance_t"].tolist() == [162.123, 62.123]
        assert frame["counterparty"].tolist() == ["park:issuing", "E02"]
        assert frame["requested_by"].tolist() == ["park office", "park office"]

    assert main(["ledger", "compliance", "2026", "--as-of", "2027-07-01"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "partly covered" in lines["E02"] and "no obligation" in lines["E01"]


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--from", "E02", "--to", "E01", "--amount", "1", "--vintage", "2026"], "E02 holds 0 t of vintage 2026"),
        (["--from", "E01", "--to", "E99", "--amount", "1", "--vintage", "2026"], "no account for enterprise 'E99'"),
        (["--from", "E01", "--to", "E02", "--amount", "1", "--vintage", "2024"], "no credits of vintage 2024"),
        (["--from", "E01", "--to", "E02", "--amount", "0.0001", "--vintage", "2026"], "finer than the ledger's 1 kg"),
    ],
)
def test_refusals_are_explained(office, capsys, args, reason):
    assert main(["ledger", "transfer", *args, "--reference", "x-1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("parkcarbon ledger transfer: refused:") and reason in err


def test_reference_reused_with_other_content(office, capsys):
    base = ["ledger", "transfer", "--from", "E01", "--to", "E02", "--vintage", "2026", "--reference", "deal-9"]
    assert main([*base, "--amount", "10"]) == 0
    assert main([*base, "--amount", "11"]) == 1
    assert "reference 'deal-9' was booked as transaction" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        ("--price-cny=NaN", "price 'NaN' is not a finite number of CNY per t"),
        ("--price-cny=inf", "price 'inf' is not a finite number of CNY per t"),
        ("--price-cny=-Infinity", "price '-Infinity' is not a finite number of CNY per t"),
        ("--price-cny=abc", "price 'abc' is not a finite number of CNY per t"),
        ("--price-cny=-5", "price -5 CNY/t must be ≥ 0"),
        ("--amount=NaN", "amount 'NaN' is not a finite number of t CO2"),
        ("--amount=-inf", "amount '-inf' is not a finite number of t CO2"),
        ("--amount=-1", "amount -1 t must be positive"),
        ("--amount=1e30", "amount 1e30 t is more than"),
    ],
)
def test_numbers_that_are_no_amounts_are_refused_in_one_line(office, capsys, option, reason):
    args = ["ledger", "transfer", "--from", "E01", "--to", "E02", "--vintage", "2026", "--reference", "n-1"]
    if not option.startswith("--amount"):
        args += ["--amount", "1"]
    assert main([*args, option]) == 1
    err = capsys.readouterr().err
    assert err.startswith("parkcarbon ledger transfer: refused:") and reason in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_system_reference_is_refused(office, capsys):
    transfer = ["ledger", "transfer", "--from", "E01", "--to", "E02", "--amount", "1", "--vintage", "2026"]
    assert main([*transfer, "--reference", "settle:2026:E01:2:clawback"]) == 1
    assert "reserved for the ledger's own bookings" in capsys.readouterr().err


def test_check_says_intact_or_names_the_first_broken_transaction(office, capsys, tmp_path):
    transfer = ["ledger", "transfer", "--from", "E01", "--to", "E02", "--amount", "10", "--vintage", "2026"]
    assert main([*transfer, "--reference", "deal-1"]) == 0
    capsys.readouterr()
    assert main(["ledger", "check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("parkcarbon ledger check: intact: 3 transactions (6 entries)") and out.count("\n") == 1

    # The owner of the SQLite file drops a trigger and moves the 10 t bought to E05, holdings and all.
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as db, db:
        db.execute("DROP TRIGGER entries_no_update")
        db.execute("UPDATE entries SET account_id = 'ent:E05' WHERE transaction_id = 3 AND account_id = 'ent:E02'")
        db.execute("UPDATE holdings SET amount_kg = amount_kg - 10000 WHERE account_id = 'ent:E02'")
        db.execute("UPDATE holdings SET amount_kg = amount_kg + 10000 WHERE account_id = 'ent:E05'")
    assert main(["ledger", "check"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("parkcarbon ledger check: broken: transaction 3 (reference 'deal-1')")
    assert captured.err.count("\n") == 1 and captured.out == ""
