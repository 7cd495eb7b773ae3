"""``parkcarbon ledger``: settle a year, transfer, surrender, retire, balances, statements, compliance,
and check the book.

Every refusal (insufficient balance, unknown enterprise, wrong vintage, a reference reused with
other content or reserved for settlements, an amount or price that is no finite number) is printed
with its reason in one line and exits 1; nothing of a refused request is booked.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from park.measurements import CREDITS_ANNUAL
from park.settings import Settings

if TYPE_CHECKING:
    from ledger.book import Booked, Ledger


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = subparsers.add_parser("ledger", help="the credit ledger: settle, transfer, surrender, retire, balances")
    commands = ledger.add_subparsers(dest="ledger_command", required=True)

    settle = commands.add_parser("settle", help="book a settled year: surplus issued, deficit owed")
    settle.add_argument("year", type=int, help="the settled year, e.g. 2026")
    settle.add_argument(
        "--credits",
        type=Path,
        help=f"{CREDITS_ANNUAL.name}.csv (default: the year's settled credits in InfluxDB)",
    )
    settle.set_defaults(handler=_settle)

    transfer = commands.add_parser("transfer", help="move credits from one enterprise to another")
    transfer.add_argument("--from", dest="source", required=True, help="the selling enterprise's id, e.g. E01")
    transfer.add_argument("--to", dest="target", required=True, help="the buying enterprise's id")
    _amount_args(transfer)
    transfer.add_argument("--price-cny", help="price per credit (t CO2) in CNY")
    transfer.add_argument("--memo", default="", help="free text kept with the transaction")
    transfer.set_defaults(handler=_transfer)

    surrender = commands.add_parser("surrender", help="surrender credits against a year's obligation")
    surrender.add_argument("--enterprise", required=True, help="the enterprise's id, e.g. E02")
    surrender.add_argument("--year", type=int, required=True, help="the obligation's year")
    _amount_args(surrender)
    surrender.set_defaults(handler=_surrender)

    retire = commands.add_parser("retire", help="retire credits for good (a voluntary offset)")
    retire.add_argument("--enterprise", required=True, help="the enterprise's id")
    _amount_args(retire)
    retire.add_argument("--memo", default="", help="free text kept with the transaction, e.g. what it offsets")
    retire.set_defaults(handler=_retire)

    balance = commands.add_parser("balance", help="holdings per account and vintage")
    balance.add_argument("enterprise", nargs="?", help="one enterprise's id (default: every account)")
    balance.set_defaults(handler=_balance)

    statement = commands.add_parser("statement", help="an enterprise's entries with the running balance")
    statement.add_argument("enterprise", help="the enterprise's id")
    statement.add_argument("--year", type=int, help="only entries booked in this year")
    statement.add_argument("--csv", type=Path, help="also write it as CSV")
    statement.add_argument("--xlsx", type=Path, help="also write it as an Excel workbook")
    statement.set_defaults(handler=_statement)

    compliance = commands.add_parser("compliance", help="who covered the year's obligation by the deadline")
    compliance.add_argument("year", type=int, help="the obligation's year")
    compliance.add_argument("--as-of", type=date.fromisoformat, default=date.today(), help="YYYY-MM-DD")
    compliance.add_argument("--write", action="store_true", help="also write it to InfluxDB (measurement compliance)")
    compliance.set_defaults(handler=_compliance)

    check = commands.add_parser(
        "check", help="verify the book: hash chains, every transaction summing to zero, holdings equal to entries"
    )
    check.set_defaults(handler=_check)

    for command in (settle, transfer, surrender, retire, balance, statement, compliance):
        command.add_argument("--by", help="who asks (default: PARKCARBON_LEDGER__OPERATOR or the system user)")


def _amount_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--amount", required=True, help="t CO2 (1 credit = 1 t), at most 3 decimals")
    parser.add_argument("--vintage", type=int, required=True, help="the year the credits were earned")
    parser.add_argument("--reference", required=True, help="your id of this request; a retry with it is applied once")


def _run(args: argparse.Namespace, settings: Settings, work: Callable[[Settings, str], int]) -> int:
    from ledger.errors import LedgerError
    from ledger.settlement import operator

    try:
        return work(settings, args.by or operator(settings))
    except LedgerError as exc:
        print(f"parkcarbon ledger {args.ledger_command}: refused: {exc}", file=sys.stderr)
        return 1


def _print(frame: pd.DataFrame) -> None:
    print(frame.to_string(index=False) if len(frame) else "(nothing)")


def _settle(args: argparse.Namespace, settings: Settings) -> int:
    def work(settings: Settings, by: str) -> int:
        from ledger.settlement import book_settlement, open_ledger
        from park.month import Month
        from park.registry import park_timezone
        from park.store import InfluxStore

        if args.credits is not None:
            # A file written before the rename of enterprise_id to enterprise is read as well.
            credits = pd.read_csv(args.credits).rename(columns={"enterprise_id": "enterprise"})
        else:
            with InfluxStore(settings.influx) as store:
                january = Month.of(f"{args.year:04d}-01", park_timezone(settings.registry))
                credits = store.query(f"SELECT * FROM {CREDITS_ANNUAL.q} WHERE time = {january.start_ns}")
        deadline = settings.ledger.deadline_for(args.year)
        with open_ledger(settings) as ledger:
            report = book_settlement(ledger, args.year, credits, deadline, by)
        for enterprise, kg in sorted(report.issued_kg.items()):
            what = "issued" if kg > 0 else "clawed back"
            print(f"{enterprise}: {what} {abs(kg) / 1000:,.3f} t of vintage {args.year}")
        for enterprise, kg in sorted(report.obligation_kg.items()):
            print(f"{enterprise}: owes {kg / 1000:+,.3f} t for {args.year} by {deadline}")
        if report.unchanged:
            print(f"unchanged since the last settlement: {', '.join(report.unchanged)}")
        return 0

    return _run(args, settings, work)


def _book(args: argparse.Namespace, settings: Settings, what: str, request: Callable[[Ledger, str], Booked]) -> int:
    """Open the ledger, book ``request`` (given the ledger and who asks), say what was booked."""

    def work(settings: Settings, by: str) -> int:
        from ledger.settlement import open_ledger

        with open_ledger(settings) as ledger:
            booked = request(ledger, by)
        print(_booked_text(what, booked.transaction_id, booked.replayed))
        return 0

    return _run(args, settings, work)


def _transfer(args: argparse.Namespace, settings: Settings) -> int:
    return _book(
        args,
        settings,
        "transfer",
        lambda ledger, by: ledger.transfer(
            args.source, args.target, args.amount, args.vintage, args.reference, by, args.price_cny, args.memo
        ),
    )


def _surrender(args: argparse.Namespace, settings: Settings) -> int:
    return _book(
        args,
        settings,
        "surrender",
        lambda ledger, by: ledger.surrender(args.enterprise, args.year, args.amount, args.vintage, args.reference, by),
    )


def _retire(args: argparse.Namespace, settings: Settings) -> int:
    return _book(
        args,
        settings,
        "retirement",
        lambda ledger, by: ledger.retire(args.enterprise, args.amount, args.vintage, args.reference, by, args.memo),
    )


def _booked_text(what: str, transaction_id: int, replayed: bool) -> str:
    if replayed:
        return f"{what} already booked as transaction {transaction_id} (same reference, same content): nothing new"
    return f"{what} booked as transaction {transaction_id}"


def _balance(args: argparse.Namespace, settings: Settings) -> int:
    def work(settings: Settings, _by: str) -> int:
        from ledger.settlement import open_ledger

        with open_ledger(settings) as ledger:
            _print(ledger.balances(args.enterprise))
        return 0

    return _run(args, settings, work)


def _statement(args: argparse.Namespace, settings: Settings) -> int:
    def work(settings: Settings, _by: str) -> int:
        from ledger.settlement import open_ledger

        with open_ledger(settings) as ledger:
            frame = ledger.statement(args.enterprise, args.year)
        _print(frame)
        if args.csv:
            frame.to_csv(args.csv, index=False)
        if args.xlsx:
            excel = frame.assign(booked_at=frame["booked_at"].dt.tz_localize(None))  # Excel has no time zones
            excel.to_excel(args.xlsx, index=False, sheet_name=f"{args.enterprise} {args.year or 'all'}")
        return 0

    return _run(args, settings, work)


def _check(_args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 with a summary (counts, chain heads worth keeping elsewhere), 1 naming the first broken row."""
    from ledger.settlement import open_ledger

    with open_ledger(settings) as ledger:
        problems = ledger.check()
        summary = ledger.summary()
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        print(f"parkcarbon ledger check: broken: {problems[0]}{more}", file=sys.stderr)
        return 1
    print(f"parkcarbon ledger check: intact: {summary}")
    return 0


def _compliance(args: argparse.Namespace, settings: Settings) -> int:
    def work(settings: Settings, _by: str) -> int:
        from ledger.settlement import open_ledger, write_compliance
        from park.store import InfluxStore

        with open_ledger(settings) as ledger:
            if args.write:
                with InfluxStore(settings.influx) as store:
                    frame = write_compliance(ledger, store, args.year, args.as_of)
            else:
                frame = ledger.compliance(args.year, args.as_of)
        _print(frame)
        return 0

    return _run(args, settings, work)
