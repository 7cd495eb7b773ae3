"""``parkcarbon ledger``: settle a year, transfer, surrender, retire, use external units, expire banked
credits, balances, statements, compliance, and check the book.

What books opens the ledger with the policy's ledger section (``PARKCARBON_POLICY``, else the packaged
policy): its banking validity (``credit_validity_years``: a vintage past it cannot be moved, and
``expire`` books it out) and the share of an obligation external units may cover (``external_units_cap``).

Every refusal (insufficient balance, unknown enterprise, wrong or expired vintage, a reference reused
with other content or reserved for settlements, an amount or price that is no finite number, an
external unit used already or beyond the cap) is printed with its reason in one line and exits 1;
nothing of a refused request is booked.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from park.measurements import CREDITS_ANNUAL
from park.settings import Settings

if TYPE_CHECKING:
    from ledger.book import Booked, Ledger
    from scoring.policy import Policy


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ledger = subparsers.add_parser(
        "ledger", help="the credit ledger: settle, transfer, surrender, retire, external units, expiry, balances"
    )
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

    use_external = commands.add_parser(
        "use-external",
        help="use external units (green certificates, CCER, 碳普惠) against a year's obligation, within the cap",
        description="Book a lot of external units against an enterprise's obligation. External units may cover "
        "at most the policy's ledger.external_units_cap of the year's obligation (floor, whole kg), all lots of "
        "the year together; the success line names the cap and its source. A serial counts once park-wide.",
    )
    use_external.add_argument("--enterprise", required=True, help="the enterprise's id, e.g. E02")
    use_external.add_argument("--year", type=int, required=True, help="the obligation's year the units cover")
    use_external.add_argument(
        "--kind", required=True, help="gec (green electricity certificate), ccer, or puhui (碳普惠 credit)"
    )
    use_external.add_argument("--serial", required=True, help="the unit's serial number in its registry")
    use_external.add_argument(
        "--vintage", type=int, required=True, help="the year of the generation or reduction (at most --year)"
    )
    use_external.add_argument("--origin", required=True, help="the project, registry and issuing body")
    use_external.add_argument("--amount", required=True, help="t CO2 (1 unit = 1 t), at most 3 decimals")
    use_external.add_argument(
        "--valid-until",
        type=date.fromisoformat,
        help="YYYY-MM-DD, the last day its registry lets it be used (default: no limit stated)",
    )
    use_external.add_argument(
        "--reference", required=True, help="your id of this request; a retry with it is applied once"
    )
    use_external.set_defaults(handler=_use_external)

    expire = commands.add_parser(
        "expire",
        help="book out banked credits past the policy's validity (credit_validity_years)",
        description="Credits of vintage V can be used through 31 December of V + the policy's "
        "credit_validity_years; what enterprises still hold of older vintages moves to park:expired, one "
        "transaction per enterprise and vintage. Running it again books nothing new.",
    )
    expire.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=date.today(),
        help="YYYY-MM-DD: expire vintages whose validity ended before this day (default: today)",
    )
    expire.set_defaults(handler=_expire)

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

    for command in (settle, transfer, surrender, retire, use_external, expire, balance, statement, compliance):
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


def _policy(settings: Settings) -> Policy:
    from scoring.policy import load_policy

    return load_policy(settings.policy)


def _open_to_book(settings: Settings, policy: Policy | None = None) -> Ledger:
    """The ledger for a command that books: with the policy's banking validity (``policy`` or the run's)."""
    from ledger.settlement import open_ledger

    return open_ledger(settings, (policy or _policy(settings)).credit_validity_years)


def _print(frame: pd.DataFrame) -> None:
    print(frame.to_string(index=False) if len(frame) else "(nothing)")


def _settle(args: argparse.Namespace, settings: Settings) -> int:
    def work(settings: Settings, by: str) -> int:
        from ledger.settlement import book_settlement
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
        with _open_to_book(settings) as ledger:
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


def _book(
    args: argparse.Namespace,
    settings: Settings,
    what: str,
    request: Callable[[Ledger, str], Booked],
    policy: Policy | None = None,
) -> int:
    """Open the ledger, book ``request`` (given the ledger and who asks), say what was booked."""

    def work(settings: Settings, by: str) -> int:
        with _open_to_book(settings, policy) as ledger:
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


def _use_external(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.book import DEFAULT_EXTERNAL_CAP, ExternalLot

    policy = _policy(settings)
    if policy.ledger is None:
        cap = DEFAULT_EXTERNAL_CAP
        source = f"policy {policy.version} sets none: the ledger's default, the national ETS share"
    else:
        cap = Decimal(str(policy.ledger.external_units_cap))
        source = f"policy {policy.version}, ledger.external_units_cap: {policy.ledger.external_units_cap_source}"
    lot = ExternalLot(args.serial, args.kind, args.vintage, args.origin, args.amount, args.valid_until)
    code = _book(
        args,
        settings,
        "external units",
        lambda ledger, by: ledger.use_external(args.enterprise, args.year, lot, args.reference, by, cap),
        policy,
    )
    if code == 0:
        print(f"cap: external units may cover at most {cap:%} of {args.enterprise}'s {args.year} obligation ({source})")
    return code


def _expire(args: argparse.Namespace, settings: Settings) -> int:
    def work(settings: Settings, by: str) -> int:
        with _open_to_book(settings) as ledger:
            expired_kg = ledger.expire(args.as_of, by)  # refused when the policy sets no validity
        for (enterprise, vintage), kg in sorted(expired_kg.items()):
            last_day = ledger.valid_through(vintage)
            print(f"{enterprise}: {kg / 1000:,.3f} t of vintage {vintage} expired (valid through {last_day})")
        if not expired_kg:
            print(
                f"nothing expired as of {args.as_of}: no enterprise holds credits past their validity "
                f"(vintage V through 31 December of V + {ledger.credit_validity_years})"
            )
        return 0

    return _run(args, settings, work)


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
