"""Many clients at once on the same accounts, on SQLite and on a real PostgreSQL.

300 requests (transfers among four enterprises, some retirements) are each sent twice, by two
different threads racing each other, as a client retrying after a timeout would. Afterwards the
book must be exactly what applying each accepted request once gives, computed here independently.

Surrenders are bounded by what is owed as well as by what is held: clients surrendering against one
obligation at the same instant get exactly as many bookings as the obligation has room for.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

import pytest
from sqlalchemy import func, select

from ledger.book import Booked, Ledger, SettledCredit
from ledger.errors import InsufficientBalanceError, LedgerError
from ledger.schema import transactions
from park.registry import DEFAULT_TIMEZONE

ENTERPRISES = ["E01", "E02", "E03", "E04"]
START_T = {"E01": 60.0, "E02": 40.0, "E03": 25.0, "E04": 10.0}
THREADS = 8


@dataclass(frozen=True)
class Request:
    kind: str  # transfer or retire
    source: str
    target: str
    amount_t: str
    reference: str


def requests(n: int, seed: int) -> list[Request]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        source, target = rng.sample(ENTERPRISES, 2)
        amount = f"{rng.randint(1, 15_000) / 1000:.3f}"
        kind = "retire" if i % 10 == 9 else "transfer"
        out.append(Request(kind, source, target, amount, f"req-{i:04d}"))
    return out


def send(ledger: Ledger, r: Request) -> Booked | str:
    try:
        if r.kind == "retire":
            return ledger.retire(r.source, r.amount_t, 2026, r.reference, f"client {r.source}")
        return ledger.transfer(r.source, r.target, r.amount_t, 2026, r.reference, f"client {r.source}")
    except InsufficientBalanceError:
        return "refused"


@pytest.mark.parametrize("seed", [1])
def test_parallel_clients_never_overdraw_and_apply_retries_once(ledger_url, seed):
    ledger = Ledger.open(ledger_url, DEFAULT_TIMEZONE)
    ledger.open_accounts(ENTERPRISES)
    credits = [SettledCredit(e, t, "c" * 64, "2026.1", "cn-national-2023") for e, t in START_T.items()]
    ledger.settle(2026, credits, date(2027, 6, 30), "park office")
    work = requests(300, seed)
    sends = work + work  # every request twice
    random.Random(seed).shuffle(sends)
    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(lambda r: (r, send(ledger, r)), sends))

    booked: dict[str, list[Booked]] = {}
    for request, outcome in outcomes:
        if isinstance(outcome, Booked):
            booked.setdefault(request.reference, []).append(outcome)
    for reference, results in booked.items():
        assert len({b.transaction_id for b in results}) == 1, reference  # one transaction per reference
        assert sum(not b.replayed for b in results) == 1, reference  # applied exactly once
    accepted = [r for r in work if r.reference in booked]
    refused = len(work) - len(accepted)
    assert 0 < refused < len(work)  # the load did hit empty accounts, and did move credits

    # The book equals the accepted requests applied once each, in any order (kg, exact).
    expected_kg = Counter({e: round(t * 1000) for e, t in START_T.items()})
    retired_kg = 0
    for r in accepted:
        kg = round(float(r.amount_t) * 1000)
        expected_kg[r.source] -= kg
        if r.kind == "retire":
            retired_kg += kg
        else:
            expected_kg[r.target] += kg
    balances = ledger.balances()
    held_kg = {str(a): round(t * 1000) for a, t in zip(balances["account"], balances["amount_t"], strict=True)}
    for enterprise in ENTERPRISES:
        assert held_kg.get(f"ent:{enterprise}", 0) == expected_kg[enterprise] >= 0, enterprise
    issued_kg = -held_kg["park:issuing"]
    assert issued_kg == round(sum(START_T.values()) * 1000)
    assert held_kg.get("park:retired", 0) == retired_kg
    assert issued_kg == sum(expected_kg.values()) + retired_kg  # issued = held + retired (none surrendered)
    assert ledger.check() == []
    with ledger.engine.connect() as conn:
        count = conn.execute(select(func.count()).select_from(transactions)).scalar_one()
    assert count == len(START_T) + len(accepted)  # settlement issues + one per accepted request
    ledger.close()


ROUNDS = 10


@pytest.mark.parametrize(("clients", "amount_t", "fit"), [(4, "40", 1), (6, "20", 2)])
def test_concurrent_surrenders_never_exceed_the_obligation(ledger_url, clients, amount_t, fit):
    """Each round E02 owes 50 t for a year of its own and holds 120 t of that vintage; ``clients``
    surrender ``amount_t`` at the same instant. Only ``fit`` of them fit into the 50 t owed (4 × 40 t:
    one; 6 × 20 t: two), in every round, and the book balances afterwards."""
    ledger = Ledger.open(ledger_url, DEFAULT_TIMEZONE)
    ledger.open_accounts(["E01", "E02"])
    booked_per_round = []
    for year in range(2026, 2026 + ROUNDS):
        credits = [SettledCredit(e, t, "c" * 64, "2026.1", "cn-national-2023") for e, t in (("E01", 120), ("E02", -50))]
        ledger.settle(year, credits, date(year + 1, 6, 30), "park office")
        ledger.transfer("E01", "E02", "120", year, f"stock-{year}", "E01 trader")
        start = threading.Barrier(clients)

        def surrender(client: int, year: int = year, start: threading.Barrier = start) -> bool:
            start.wait()  # all clients ask at once
            try:
                ledger.surrender("E02", year, amount_t, year, f"s-{year}-{client}", "E02 office")
            except LedgerError:
                return False
            return True

        with ThreadPoolExecutor(clients) as pool:
            booked_per_round.append(sum(pool.map(surrender, range(clients))))

    assert booked_per_round == [fit] * ROUNDS
    fit_t = fit * float(amount_t)
    for year in range(2026, 2026 + ROUNDS):
        row = ledger.compliance(year, date(year + 1, 1, 1)).set_index("enterprise_id").loc["E02"]
        assert (row["due_t"], row["surrendered_t"]) == (50.0, fit_t), year
    held = ledger.balances().groupby("account")["amount_t"].sum()
    assert held["park:surrendered"] == fit_t * ROUNDS
    assert held["ent:E02"] == (120 - fit_t) * ROUNDS
    assert ledger.check() == []
    ledger.close()
