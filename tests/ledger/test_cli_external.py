"""``parkcarbon ledger use-external`` and ``parkcarbon ledger expire``, and the policy's banking validity
reaching every command that books, on the embedded SQLite ledger of a run directory.

The numbers, by hand, from the packaged policy (2026.1): external units may cover 5 % of an obligation;
credits are valid 3 years after their vintage. E02 owes 352.1 t for 2026: 352,100 kg × 5 / 100 = 17,605 kg
may be covered by external units. Vintage 2022 is usable through 31 December 2022 + 3 = 2025-12-31, so
on any day from 2026 on (the commands book at the real time) it cannot be moved and ``expire`` books it out.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ledger.book import Ledger
from park.registry import DEFAULT_TIMEZONE
from parkcarbon.cli import main
from scoring.policy import load_policy

CAP_KG = 352_100 * 5 // 100  # 17,605 kg: 5 % of E02's 352.1 t due for 2026
EXTERNAL = ["ledger", "use-external", "--enterprise", "E02", "--year", "2026", "--kind", "ccer", "--vintage", "2025",
            "--origin", "CCER registry, project 0001 (MEE)"]  # fmt: skip


def settle(tmp_path: Path, year: int, credits_t: dict[str, float]) -> None:
    credits = pd.DataFrame(
        {
            "enterprise": list(credits_t),
            "credits_tco2": list(credits_t.values()),
            "inputs_sha256": ["d" * 64] * len(credits_t),
            "policy_version": ["2026.1"] * len(credits_t),
            "factor_set": ["cn-national-2023"] * len(credits_t),
        }
    )
    path = tmp_path / f"credits_annual_{year}.csv"
    credits.to_csv(path, index=False)
    assert main(["ledger", "settle", str(year), "--credits", str(path)]) == 0


@pytest.fixture
def office(tmp_path, monkeypatch, capsys):
    """A run directory of its own with 2022 (E01 and E05 in surplus) and 2026 (E02 owing 352.1 t) settled."""
    monkeypatch.setenv("PARKCARBON_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("PARKCARBON_LEDGER__OPERATOR", "park office")
    monkeypatch.delenv("PARKCARBON_POLICY", raising=False)
    settle(tmp_path, 2022, {"E01": 100.0, "E05": 40.5})
    settle(tmp_path, 2026, {"E01": 162.1234, "E02": -352.1})
    capsys.readouterr()
    return tmp_path


def policy_with(tmp_path: Path, **ledger: object) -> Path:
    """A copy of the packaged policy with its ledger section changed."""
    document = yaml.safe_load((Path(__file__).parents[2] / "scoring" / "data" / "policy.yaml").read_text("utf-8"))
    document["ledger"] |= ledger
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def book(tmp_path: Path) -> Ledger:
    ledger = Ledger.open_read_only(f"sqlite:///{tmp_path / 'ledger.sqlite'}", DEFAULT_TIMEZONE)
    assert ledger is not None
    return ledger


def held_kg(tmp_path: Path) -> dict[tuple[str, int], int]:
    with book(tmp_path) as ledger:
        frame = ledger.balances()
    rows = zip(frame["account"], frame["vintage"], frame["amount_t"], strict=True)
    return {(account, int(vintage)): round(amount_t * 1000) for account, vintage, amount_t in rows}


def refusal(capsys, command: str) -> str:
    captured = capsys.readouterr()
    assert captured.err.startswith(f"parkcarbon ledger {command}: refused: "), captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    return captured.err


def test_the_packaged_policy_is_what_the_numbers_here_assume():
    ledger = load_policy().ledger
    assert ledger is not None and (ledger.external_units_cap, ledger.credit_validity_years) == (0.05, 3)


@pytest.mark.parametrize(("kg", "booked"), [(CAP_KG - 1, True), (CAP_KG, True), (CAP_KG + 1, False)])
def test_use_external_up_to_the_cap(office, capsys, kg, booked):
    amount = f"{kg / 1000:.3f}"  # 17.604, 17.605, 17.606
    code = main([*EXTERNAL, "--serial", "CCER-1", "--amount", amount, "--reference", "x-1"])
    if booked:
        assert code == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("external units booked as transaction ")
        assert out[1].startswith(
            "cap: external units may cover at most 5% of E02's 2026 obligation (policy 2026.1, "
            "ledger.external_units_cap: published: 《碳排放权交易管理办法（试行）》"
        )
        assert "抵销比例不得超过应清缴碳排放配额的5%" in out[1]
        assert held_kg(office)[("park:offsets", 2025)] == kg
    else:
        assert code == 1
        err = refusal(capsys, "use-external")
        assert "E02 may cover at most 17.605 t (5% of the 352.1 t due for 2026)" in err
        assert "17.606 t more is 1 kg over: nothing was booked" in err
        assert ("park:offsets", 2025) not in held_kg(office)
    assert main(["ledger", "check"]) == 0


def test_a_serial_is_used_once(office, capsys):
    first = [*EXTERNAL, "--serial", "CCER-7", "--amount", "1", "--reference", "x-1"]
    assert main(first) == 0
    transaction = capsys.readouterr().out.splitlines()[0].removeprefix("external units booked as transaction ")
    assert main(first) == 0  # a retry
    assert "already booked as transaction" in capsys.readouterr().out
    assert main([*EXTERNAL, "--serial", "CCER-7", "--amount", "1", "--reference", "x-2"]) == 1
    err = refusal(capsys, "use-external")
    assert f"ccer CCER-7 was used already, by E02 for 2026 (transaction {transaction})" in err
    assert held_kg(office)[("park:offsets", 2025)] == 1_000


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (["--kind", "vcs"], "external units are one of gec, ccer, puhui, not 'vcs'"),
        (["--vintage", "2027"], "CCER-8 of vintage 2027 cannot cover an obligation for 2026"),
        (["--valid-until", "2026-01-31"], "ccer CCER-8 expired on 2026-01-31"),
        (["--enterprise", "E01"], "E01 owes nothing for 2026"),
        (["--amount", "0.0001"], "finer than the ledger's 1 kg"),
    ],
)
def test_use_external_refusals_are_one_line(office, capsys, options, reason):
    assert main([*EXTERNAL, "--serial", "CCER-8", "--amount", "1", "--reference", "x-1", *options]) == 1
    assert reason in refusal(capsys, "use-external")


def test_a_vintage_past_the_policys_validity_cannot_be_moved(office, capsys):
    transfer = ["ledger", "transfer", "--from", "E01", "--to", "E02", "--amount", "1", "--vintage", "2022"]
    assert main([*transfer, "--reference", "deal-1"]) == 1
    assert "credits of vintage 2022 expired on 2025-12-31 (banked for at most 3 years" in refusal(capsys, "transfer")
    assert main(["ledger", "retire", "--enterprise", "E05", "--amount", "1", "--vintage", "2022", "--reference",
                 "r-1"]) == 1  # fmt: skip
    assert "vintage 2022 expired on 2025-12-31" in refusal(capsys, "retire")
    assert main([*transfer[:-1], "2026", "--reference", "deal-2"]) == 0  # a vintage within its validity moves


def test_the_validity_is_the_policys(office, capsys, monkeypatch):
    """With a policy banking credits 10 years, vintage 2022 (through 2032-12-31) still moves."""
    monkeypatch.setenv("PARKCARBON_POLICY", str(policy_with(office, credit_validity_years=10)))
    transfer = ["ledger", "transfer", "--from", "E01", "--to", "E02", "--amount", "1", "--vintage", "2022"]
    assert main([*transfer, "--reference", "deal-1"]) == 0
    assert main(["ledger", "expire", "--as-of", "2032-12-31"]) == 0
    assert capsys.readouterr().out.endswith("(vintage V through 31 December of V + 10)\n")


def test_expire_books_out_what_is_past_validity(office, capsys):
    assert main(["ledger", "expire", "--as-of", "2025-12-31"]) == 0  # vintage 2022's last day
    assert capsys.readouterr().out.startswith("nothing expired as of 2025-12-31")
    assert main(["ledger", "expire", "--as-of", "2026-01-01"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "E01: 100.000 t of vintage 2022 expired (valid through 2025-12-31)",
        "E05: 40.500 t of vintage 2022 expired (valid through 2025-12-31)",
    ]
    assert main(["ledger", "expire"]) == 0  # today: nothing is left of 2022, 2026 is valid
    assert capsys.readouterr().out.startswith(f"nothing expired as of {date.today()}")
    held = held_kg(office)
    assert held[("park:expired", 2022)] == 140_500 and held[("park:issuing", 2022)] == -140_500
    assert held[("ent:E01", 2022)] == 0 and held[("ent:E05", 2022)] == 0
    assert held[("ent:E01", 2026)] == 162_123  # untouched
    assert main(["ledger", "check"]) == 0
    out = capsys.readouterr().out
    # 2 issues of 2022, 1 issue of 2026, 2 expiries; 2 entries each
    assert out.startswith("parkcarbon ledger check: intact: 5 transactions (10 entries)"), out
    with book(office) as ledger:
        assert ledger.check() == []
        statement = ledger.statement("E05")
    assert list(statement["kind"]) == ["issue", "expire"] and statement["balance_t"].iloc[-1] == 0.0
    assert set(statement["requested_by"]) == {"park office"}


def test_expire_without_a_validity_in_the_policy_is_refused(office, capsys, monkeypatch):
    monkeypatch.setenv("PARKCARBON_POLICY", str(policy_with(office, credit_validity_years=None)))
    assert main(["ledger", "expire", "--as-of", "2040-01-01"]) == 1
    assert "no banking validity is set (credit_validity_years): nothing expires" in refusal(capsys, "expire")
    assert held_kg(office)[("ent:E05", 2022)] == 40_500
