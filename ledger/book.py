"""The credit book: settlement of a year, transfers, surrender, retirement, balances, statements and
compliance, on SQLAlchemy 2 (SQLite embedded, PostgreSQL deployed).

Every request is one database transaction: its entries, the holdings they change and its
transaction row are booked together or not at all. Holdings are changed by conditional updates
(``amount_kg >= x``) taken in a fixed order, so concurrent requests can neither overdraw an account
nor deadlock each other; the CHECK on ``holdings`` stands behind them. A caller's reference makes a
request idempotent: the same reference with the same content returns the first booking, with other
content it is refused. References starting with ``settle:`` are the ledger's own.

On PostgreSQL, where writers run side by side, every booking takes its locks in one order:
0. the serial of an external unit it uses (only ``use_external`` takes one, and before anything else);
1. the obligations it reads (an enterprise's year: surrender, settlement), in key order;
2. the holdings it changes, in key order;
3. the hash chains' head, to append its rows (``ledger.chain``), held until it commits.
Nothing waits for an earlier step while holding a later one, so no two bookings deadlock.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Self
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection, Engine, Table, and_, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError

from ledger.amounts import cny_to_fen, credits_to_kg, kg_to_t, t_to_kg
from ledger.chain import CHAINED, link
from ledger.db import as_utc, current_revision, head_revision, lock, make_engine, migrate
from ledger.errors import (
    DuplicateReferenceError,
    ExpiredError,
    InsufficientBalanceError,
    LedgerError,
    NothingToSettleError,
    OffsetCapError,
    ReservedReferenceError,
    SerialUsedError,
    UnknownEnterpriseError,
    WrongVintageError,
)
from ledger.schema import (
    EXPIRED,
    EXTERNAL,
    EXTERNAL_KINDS,
    ISSUING,
    OFFSETS,
    PARK_ACCOUNTS,
    RETIRED,
    SOURCE_ACCOUNTS,
    SURRENDERED,
    SYSTEM_REFERENCE_PREFIX,
    accounts,
    entries,
    external_units,
    holdings,
    obligations,
    settlements,
    transactions,
)

RETRIES = 8  # a PostgreSQL deadlock or serialization failure is retried this many times
RETRYABLE_SQLSTATES = {"40001", "40P01"}  # serialization_failure, deadlock_detected
CHAINS = (transactions, obligations, settlements)
# At most 5 % of the obligation may be covered by external units: 《碳排放权交易管理办法（试行）》 (生态环境部令
# 第19号, published 2021-01-05, in force 2021-02-01): 重点排放单位每年可以使用国家核证自愿减排量抵销碳排放配额的
# 清缴，抵销比例不得超过应清缴碳排放配额的5%. The park's policy may set another share.
DEFAULT_EXTERNAL_CAP = Decimal("0.05")
SYSTEM_KINDS = ("issue", "clawback", "expire")  # the ledger's own bookings, under SYSTEM_REFERENCE_PREFIX


def enterprise_account(enterprise_id: str) -> str:
    return f"ent:{enterprise_id}"


@dataclass(frozen=True)
class Booked:
    """A booked request; ``replayed`` when its reference had been booked before with the same content."""

    transaction_id: int
    reference: str
    replayed: bool = False


@dataclass(frozen=True)
class SettledCredit:
    """One enterprise's settled credits of a year (from ``CREDITS_ANNUAL``), with where they came from."""

    enterprise_id: str
    credits_t: float  # + surplus, − deficit [t CO2], unrounded
    inputs_sha256: str
    policy_version: str
    factor_set: str


@dataclass
class SettlementReport:
    year: int
    issued_kg: dict[str, int] = field(default_factory=dict)  # issued (+) or clawed back (−) by this settlement
    obligation_kg: dict[str, int] = field(default_factory=dict)  # change of what is owed
    unchanged: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExternalLot:
    """A lot of external units: a green electricity certificate (``gec``), CCER or 碳普惠 credit (``puhui``).

    ``vintage``: the year of the generation or reduction; ``valid_until``: the last day its registry lets
    it be used (None: no limit stated); ``origin``: the project, registry and issuing body.
    """

    serial: str
    kind: str
    vintage: int
    origin: str
    amount_t: Decimal | str | float
    valid_until: date | None = None


@dataclass(frozen=True)
class _SettlementPlan:
    """What settling one enterprise's year books (``Ledger._plan``)."""

    number: int  # this enterprise's n-th settlement of the year
    target_kg: int
    change: int  # issued (+) or clawed back (−)
    moves: list[tuple[str, int, int]]
    owed_change: int
    over_issued: bool


def _sha256(content: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


class Ledger:
    """The book on one database. ``clock`` gives the booking time (tests pin it)."""

    def __init__(
        self,
        engine: Engine,
        timezone: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        credit_validity_years: int | None = None,
    ) -> None:
        self.engine = engine
        self.tz = ZoneInfo(timezone)
        self.clock = clock
        # Credits of vintage V may be used through 31 December of V + this (the policy's banking
        # validity); None: no limit. ``expire`` books what is left of them out.
        self.credit_validity_years = credit_validity_years

    @classmethod
    def open(cls, url: str, timezone: str, credit_validity_years: int | None = None) -> Ledger:
        """Connect to ``url`` and bring its schema to the newest migration."""
        engine = make_engine(url)
        migrate(engine)
        return cls(engine, timezone, credit_validity_years=credit_validity_years)

    @classmethod
    def open_read_only(cls, url: str, timezone: str) -> Ledger | None:
        """Connect to ``url`` for reading only: no migration, no new accounts, every transaction
        read-only. None when the database holds no ledger at the newest schema revision."""
        engine = make_engine(url, read_only=True)
        try:
            revision = current_revision(engine)
        except DBAPIError:
            revision = None
        if revision is None or revision != head_revision():
            engine.dispose()
            return None
        return cls(engine, timezone)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- transactions -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _now(self) -> datetime:
        """The booking time in UTC: SQLite keeps no offset, and the chains hash what is kept."""
        return as_utc(self.clock())

    def _retrying(self, work: Callable[[Connection], Any]) -> Any:
        """Run ``work`` in a transaction, again after a deadlock or serialization failure."""
        for attempt in range(RETRIES):
            try:
                with self._transaction() as conn:
                    return work(conn)
            except DBAPIError as exc:
                state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
                if state not in RETRYABLE_SQLSTATES or attempt == RETRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _upsert_holding(self, conn: Connection, account: str, vintage: int, delta_kg: int) -> None:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(holdings).values(account_id=account, vintage=vintage, amount_kg=delta_kg)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=[holdings.c.account_id, holdings.c.vintage],
                set_={"amount_kg": holdings.c.amount_kg + statement.excluded.amount_kg},
            )
        )

    def _holding_kg(self, conn: Connection, account: str, vintage: int, lock: bool = False) -> int:
        """What ``account`` holds of ``vintage``; ``lock`` keeps the row until the transaction ends (PostgreSQL)."""
        query = select(holdings.c.amount_kg).where(holdings.c.account_id == account, holdings.c.vintage == vintage)
        amount = conn.execute(query.with_for_update() if lock else query).scalar()
        return int(amount or 0)

    def _apply(self, conn: Connection, moves: Sequence[tuple[str, int, int]]) -> None:
        """Change holdings by (account, vintage, delta kg), in key order; refuse to overdraw."""
        for account, vintage, delta in sorted(moves):
            if delta < 0 and account not in SOURCE_ACCOUNTS:
                taken = conn.execute(
                    update(holdings)
                    .where(
                        holdings.c.account_id == account,
                        holdings.c.vintage == vintage,
                        holdings.c.amount_kg >= -delta,
                    )
                    .values(amount_kg=holdings.c.amount_kg + delta)
                )
                if taken.rowcount != 1:
                    held = self._holding_kg(conn, account, vintage)
                    raise InsufficientBalanceError(
                        f"{account.removeprefix('ent:')} holds {kg_to_t(held)} t of vintage {vintage}, "
                        f"not the {kg_to_t(-delta)} t asked for: nothing was booked"
                    )
            else:
                self._upsert_holding(conn, account, vintage, delta)

    def _lock_obligations(self, conn: Connection, year: int, enterprise_ids: Iterable[str]) -> None:
        """Lock what the enterprises owe for ``year`` until the transaction ends: what is owed and
        what was surrendered against it are read and then booked against, which must not interleave."""
        lock(conn, *(f"obligations:{enterprise_id}:{year}" for enterprise_id in enterprise_ids))

    def _append(
        self, conn: Connection, table: Table, values: Mapping[str, Any], lines: Sequence[tuple[str, int, int]] = ()
    ) -> int:
        """Insert a row into a chained table, carrying the next link of its chain; return its id."""
        lock(conn, "chains")  # one writer at a time extends the chains, or two would follow the same row
        previous = conn.execute(select(table.c.chain_sha256).order_by(table.c.id.desc()).limit(1)).scalar()
        row = {name: None for name in CHAINED[table.name]} | dict(values)  # exactly what is hashed is stored
        digest = link(previous, table.name, row, lines)
        return int(conn.execute(insert(table).values(**row, chain_sha256=digest).returning(table.c.id)).scalar_one())

    def _record(
        self,
        conn: Connection,
        kind: str,
        reference: str,
        digest: str,
        requested_by: str,
        changes: Sequence[tuple[str, int, int]],
        **columns: Any,
    ) -> int:
        """Insert a transaction row and its entries (the holdings are changed already); return its id."""
        assert sum(d for _a, _v, d in changes) == 0, "a transaction's entries must sum to zero"
        values = {
            "kind": kind,
            "reference": reference,
            "content_sha256": digest,
            "requested_by": requested_by,
            "requested_at": self._now(),
            **columns,
        }
        txn_id = self._append(conn, transactions, values, changes)
        conn.execute(
            insert(entries),
            [{"transaction_id": txn_id, "account_id": a, "vintage": v, "amount_kg": d} for a, v, d in changes],
        )
        return txn_id

    def _book(
        self,
        kind: str,
        reference: str,
        content: dict[str, Any],
        requested_by: str,
        moves: Callable[[Connection], Sequence[tuple[str, int, int]]],
        after: Callable[[Connection, int], None] | None = None,
        **columns: Any,
    ) -> Booked:
        """Book one request: its transaction row, its holdings and entries, or nothing.

        ``after`` is called with the new transaction's id in the same database transaction (rows that
        belong to the booking, e.g. an external lot)."""
        if not reference or len(reference) > 200:
            raise LedgerError("a reference of 1 to 200 characters is required: it makes a retried request safe")
        if reference.startswith(SYSTEM_REFERENCE_PREFIX):
            # Settlements book under references of this form; a caller's would make them collide.
            raise ReservedReferenceError(
                f"reference {reference!r}: references starting with {SYSTEM_REFERENCE_PREFIX!r} are reserved "
                "for the ledger's own bookings (settlements); choose another"
            )
        if not requested_by:
            raise LedgerError("who asked for it (requested_by) is required")
        digest = _sha256({"kind": kind} | content)

        def previous(conn: Connection) -> Booked | None:
            row = conn.execute(
                select(transactions.c.id, transactions.c.content_sha256).where(transactions.c.reference == reference)
            ).first()
            if row is None:
                return None
            if row.content_sha256 != digest:
                raise DuplicateReferenceError(
                    f"reference {reference!r} was booked as transaction {row.id} with other content; "
                    "a retry must repeat the request exactly, a new request needs a new reference"
                )
            return Booked(int(row.id), reference, replayed=True)

        def work(conn: Connection) -> Booked:
            if (done := previous(conn)) is not None:
                return done
            changes = moves(conn)
            self._apply(conn, changes)
            memo = str(content.get("memo", ""))
            txn_id = self._record(conn, kind, reference, digest, requested_by, changes, memo=memo, **columns)
            if after is not None:
                after(conn, txn_id)
            return Booked(txn_id, reference)

        try:
            result: Booked = self._retrying(work)
        except DuplicateReferenceError:
            raise
        except (IntegrityError, LedgerError):
            # The same request, sent again by a client retrying, may have been booked meanwhile: its
            # reference is taken, or it used up the balance or obligation this one needed. Answer as a
            # retry of it would be.
            with self._transaction() as conn:
                done = previous(conn)
            if done is None:
                raise
            return done
        return result

    # -- accounts ---------------------------------------------------------------------------------

    def open_accounts(self, enterprise_ids: Iterable[str]) -> int:
        """Open the park's accounts and one per enterprise (those not open yet); return how many were opened."""
        wanted: dict[str, tuple[str, str | None]] = {a: (k, None) for a, k in PARK_ACCOUNTS.items()}
        wanted |= {enterprise_account(e): ("enterprise", e) for e in enterprise_ids}
        with self._transaction() as conn:
            have = set(conn.execute(select(accounts.c.id)).scalars())
            rows = [
                {"id": a, "kind": k, "enterprise_id": e, "opened_at": self.clock()}
                for a, (k, e) in sorted(wanted.items())
                if a not in have
            ]
            if rows:
                conn.execute(insert(accounts), rows)
        return len(rows)

    def _account(self, conn: Connection, enterprise_id: str) -> str:
        account = enterprise_account(enterprise_id)
        if conn.execute(select(accounts.c.id).where(accounts.c.id == account)).first() is None:
            raise UnknownEnterpriseError(
                f"no account for enterprise {enterprise_id!r}: it is not in the park's registry"
            )
        return account

    def _vintage_exists(self, conn: Connection, vintage: int) -> None:
        if not self._holding_kg(conn, ISSUING, vintage):
            raise WrongVintageError(f"no credits of vintage {vintage} have been issued")
        last_day = self.valid_through(vintage)
        if last_day is not None and self._today() > last_day:
            raise ExpiredError(
                f"credits of vintage {vintage} expired on {last_day} (banked for at most "
                f"{self.credit_validity_years} years after their vintage): nothing was booked"
            )

    def _today(self) -> date:
        """The booking date in the park's time zone."""
        return self._now().astimezone(self.tz).date()

    def valid_through(self, vintage: int) -> date | None:
        """The last day credits of ``vintage`` can be used (None: no banking limit set)."""
        if self.credit_validity_years is None:
            return None
        return date(vintage + self.credit_validity_years, 12, 31)

    # -- requests ---------------------------------------------------------------------------------

    def transfer(
        self,
        source: str,
        target: str,
        amount_t: Decimal | str | float,
        vintage: int,
        reference: str,
        requested_by: str,
        price_cny_per_t: Decimal | str | float | None = None,
        memo: str = "",
        after: Callable[[Connection, int], None] | None = None,
    ) -> Booked:
        """Move credits of ``vintage`` from enterprise ``source`` to ``target`` (a sale, if priced).

        ``after`` is called with the new transaction's id in the booking's own database transaction
        (the platform marks its offer accepted there: both happen, or neither); an exception it raises
        books nothing. It is not called when the reference was booked before (``replayed``)."""
        amount_kg = t_to_kg(amount_t)
        if source == target:
            raise LedgerError(f"a transfer needs two enterprises, not {source!r} twice")
        price_fen = None if price_cny_per_t is None else cny_to_fen(price_cny_per_t)
        content = {
            "source": source,
            "target": target,
            "amount_kg": amount_kg,
            "vintage": vintage,
            "price_fen_per_t": price_fen,
            "memo": memo,
        }

        def moves(conn: Connection) -> list[tuple[str, int, int]]:
            src, dst = self._account(conn, source), self._account(conn, target)
            self._vintage_exists(conn, vintage)
            return [(src, vintage, -amount_kg), (dst, vintage, amount_kg)]

        return self._book("transfer", reference, content, requested_by, moves, after, price_fen_per_t=price_fen)

    def surrender(
        self,
        enterprise_id: str,
        year: int,
        amount_t: Decimal | str | float,
        vintage: int,
        reference: str,
        requested_by: str,
    ) -> Booked:
        """Surrender credits against the enterprise's obligation for ``year`` (vintages up to ``year``)."""
        amount_kg = t_to_kg(amount_t)
        if vintage > year:
            raise WrongVintageError(f"credits of vintage {vintage} cannot cover an obligation for {year}")
        content = {"enterprise": enterprise_id, "year": year, "amount_kg": amount_kg, "vintage": vintage}

        def moves(conn: Connection) -> list[tuple[str, int, int]]:
            account = self._account(conn, enterprise_id)
            self._vintage_exists(conn, vintage)
            self._lock_obligations(conn, year, [enterprise_id])  # before reading what is owed
            due, surrendered = self._due_kg(conn, enterprise_id, year), self._surrendered_kg(conn, enterprise_id, year)
            surrendered += self._external_kg(conn, enterprise_id, year)
            if due - surrendered < amount_kg:
                raise LedgerError(
                    f"{enterprise_id} owes {kg_to_t(due - surrendered)} t for {year} "
                    f"({kg_to_t(due)} t due, {kg_to_t(surrendered)} t surrendered or covered by external units); "
                    f"{kg_to_t(amount_kg)} t is more than that: nothing was booked"
                )
            return [(account, vintage, -amount_kg), (SURRENDERED, vintage, amount_kg)]

        return self._book("surrender", reference, content, requested_by, moves, obligation_year=year)

    def retire(
        self,
        enterprise_id: str,
        amount_t: Decimal | str | float,
        vintage: int,
        reference: str,
        requested_by: str,
        memo: str = "",
    ) -> Booked:
        """Retire credits for good (a voluntary offset): they leave circulation."""
        amount_kg = t_to_kg(amount_t)
        content = {"enterprise": enterprise_id, "amount_kg": amount_kg, "vintage": vintage, "memo": memo}

        def moves(conn: Connection) -> list[tuple[str, int, int]]:
            account = self._account(conn, enterprise_id)
            self._vintage_exists(conn, vintage)
            return [(account, vintage, -amount_kg), (RETIRED, vintage, amount_kg)]

        return self._book("retire", reference, content, requested_by, moves)

    def use_external(
        self,
        enterprise_id: str,
        year: int,
        lot: ExternalLot,
        reference: str,
        requested_by: str,
        cap: Decimal | str = DEFAULT_EXTERNAL_CAP,
    ) -> Booked:
        """Use a lot of external units against the enterprise's obligation for ``year``.

        Refused, with nothing booked: a serial already used (by anyone in the park), a vintage after
        ``year``, a lot past its ``valid_until`` on the booking date, more than the obligation still
        open, and external units beyond ``cap`` × the year's obligation in all (floor, whole kg;
        default 5 %, the national ETS rule, ``DEFAULT_EXTERNAL_CAP``).
        """
        amount_kg = t_to_kg(lot.amount_t)
        share = Decimal(str(cap))
        if not share.is_finite() or not 0 <= share <= 1:
            raise LedgerError(f"the cap on external units is a share of the obligation from 0 to 1, not {cap}")
        serial = lot.serial.strip()
        if not serial or len(serial) > 120:
            raise LedgerError("an external unit needs its registry's serial number (1 to 120 characters)")
        if lot.kind not in EXTERNAL_KINDS:
            raise LedgerError(f"external units are one of {', '.join(EXTERNAL_KINDS)}, not {lot.kind!r}")
        if not lot.origin.strip():
            raise LedgerError(f"{lot.kind} {serial}: its origin (project, registry, issuing body) is required")
        if lot.vintage > year:
            raise WrongVintageError(
                f"{lot.kind} {serial} of vintage {lot.vintage} cannot cover an obligation for {year}: "
                "a unit covers years from its vintage on"
            )
        if lot.valid_until is not None and self._today() > lot.valid_until:
            raise ExpiredError(
                f"{lot.kind} {serial} expired on {lot.valid_until} (its registry's validity); "
                f"it cannot be used on {self._today()}: nothing was booked"
            )
        content = {
            "enterprise": enterprise_id,
            "year": year,
            "serial": serial,
            "lot_kind": lot.kind,
            "vintage": lot.vintage,
            "origin": lot.origin,
            "valid_until": lot.valid_until,
            "amount_kg": amount_kg,
        }

        def used_by(conn: Connection) -> str | None:
            row = conn.execute(
                select(
                    external_units.c.enterprise_id, external_units.c.obligation_year, external_units.c.transaction_id
                ).where(external_units.c.serial == serial)
            ).first()
            if row is None:
                return None
            return f"{row.enterprise_id} for {row.obligation_year} (transaction {row.transaction_id})"

        def moves(conn: Connection) -> list[tuple[str, int, int]]:
            lock(conn, f"external:{serial}")  # two requests for one serial: the second waits, then sees it used
            if (user := used_by(conn)) is not None:
                raise SerialUsedError(f"{lot.kind} {serial} was used already, by {user}: a unit counts once park-wide")
            self._account(conn, enterprise_id)
            self._lock_obligations(conn, year, [enterprise_id])  # before reading what is owed
            due = self._due_kg(conn, enterprise_id, year)
            if due <= 0:
                raise LedgerError(f"{enterprise_id} owes nothing for {year}: nothing was booked")
            covered = self._surrendered_kg(conn, enterprise_id, year)
            used = self._external_kg(conn, enterprise_id, year)
            cap_kg = int((Decimal(due) * share).to_integral_value(rounding=ROUND_FLOOR))
            if used + amount_kg > cap_kg:
                raise OffsetCapError(
                    f"{enterprise_id} may cover at most {kg_to_t(cap_kg)} t ({share:%} of the {kg_to_t(due)} t due "
                    f"for {year}) with external units; {kg_to_t(used)} t used, {kg_to_t(amount_kg)} t more is "
                    f"{used + amount_kg - cap_kg} kg over: nothing was booked"
                )
            if covered + used + amount_kg > due:
                raise LedgerError(
                    f"{enterprise_id} owes {kg_to_t(due - covered - used)} t for {year}; "
                    f"{kg_to_t(amount_kg)} t is more than that: nothing was booked"
                )
            return [(EXTERNAL, lot.vintage, -amount_kg), (OFFSETS, lot.vintage, amount_kg)]

        def record_lot(conn: Connection, txn_id: int) -> None:
            conn.execute(
                insert(external_units).values(
                    serial=serial,
                    kind=lot.kind,
                    vintage=lot.vintage,
                    origin=lot.origin,
                    valid_until=lot.valid_until,
                    amount_kg=amount_kg,
                    enterprise_id=enterprise_id,
                    obligation_year=year,
                    transaction_id=txn_id,
                )
            )

        try:
            return self._book("offset", reference, content, requested_by, moves, after=record_lot, obligation_year=year)
        except IntegrityError:  # the serial's row went in between our check and our insert
            with self._transaction() as conn:
                user = used_by(conn)
            if user is None:
                raise
            raise SerialUsedError(
                f"{lot.kind} {serial} was used already, by {user}: a unit counts once park-wide"
            ) from None

    def expire(self, as_of: date, requested_by: str) -> dict[tuple[str, int], int]:
        """Book out the credits enterprises still hold past their validity (``credit_validity_years``)
        as of ``as_of``: one ``expire`` transaction per enterprise and vintage, from its account to
        ``park:expired``. Returns the kg expired by (enterprise, vintage); running it again books nothing.
        """
        if self.credit_validity_years is None:
            raise LedgerError("no banking validity is set (credit_validity_years): nothing expires")
        validity = self.credit_validity_years

        def work(conn: Connection) -> dict[tuple[str, int], int]:
            last_vintage = as_of.year - validity - 1  # vintage V is valid through 31 December of V + validity
            candidates = conn.execute(
                select(holdings.c.account_id, holdings.c.vintage)
                .join(accounts, accounts.c.id == holdings.c.account_id)
                .where(accounts.c.kind == "enterprise", holdings.c.vintage <= last_vintage, holdings.c.amount_kg > 0)
                .order_by(holdings.c.account_id, holdings.c.vintage)
            ).all()
            done: dict[tuple[str, int], int] = {}
            plans = []
            for account, vintage in candidates:  # locked in key order (the order every booking takes them)
                held = self._holding_kg(conn, account, int(vintage), lock=True)
                if held > 0:
                    plans.append((str(account), int(vintage), held))
            self._apply(conn, [(EXPIRED, v, kg) for _a, v, kg in plans] + [(a, v, -kg) for a, v, kg in plans])
            for account, vintage, kg in plans:
                enterprise_id = account.removeprefix("ent:")
                before = conn.execute(
                    select(func.count()).where(
                        transactions.c.kind == "expire",
                        transactions.c.reference.startswith(
                            f"{SYSTEM_REFERENCE_PREFIX}expire:{vintage}:{enterprise_id}:", autoescape=True
                        ),
                    )
                ).scalar_one()
                self._record(
                    conn,
                    "expire",
                    f"{SYSTEM_REFERENCE_PREFIX}expire:{vintage}:{enterprise_id}:{int(before) + 1}",
                    _sha256({"kind": "expire", "enterprise": enterprise_id, "vintage": vintage, "kg": kg}),
                    requested_by,
                    [(account, vintage, -kg), (EXPIRED, vintage, kg)],
                    memo=f"vintage {vintage} valid through {date(vintage + validity, 12, 31)}; expired as of {as_of}",
                )
                done[(enterprise_id, vintage)] = kg
            return done

        result: dict[tuple[str, int], int] = self._retrying(work)
        return result

    # -- settlement -------------------------------------------------------------------------------

    def _due_kg(self, conn: Connection, enterprise_id: str, year: int) -> int:
        """What the enterprise owes for ``year``: the sum of its obligation changes."""
        due = conn.execute(
            select(func.coalesce(func.sum(obligations.c.delta_kg), 0)).where(
                obligations.c.enterprise_id == enterprise_id, obligations.c.year == year
            )
        ).scalar_one()
        return int(due)

    def _surrendered_kg(self, conn: Connection, enterprise_id: str, year: int, before: datetime | None = None) -> int:
        """What the enterprise surrendered against its obligation of ``year`` (booked before ``before``)."""
        query = (
            select(func.coalesce(func.sum(entries.c.amount_kg), 0))
            .select_from(entries.join(transactions, entries.c.transaction_id == transactions.c.id))
            .where(
                transactions.c.kind == "surrender",
                transactions.c.obligation_year == year,
                entries.c.account_id == enterprise_account(enterprise_id),
            )
        )
        if before is not None:
            query = query.where(transactions.c.requested_at < before)
        return -int(conn.execute(query).scalar_one())

    def _external_kg(self, conn: Connection, enterprise_id: str, year: int, before: datetime | None = None) -> int:
        """External units the enterprise used against its obligation of ``year`` (booked before ``before``)."""
        query = (
            select(func.coalesce(func.sum(external_units.c.amount_kg), 0))
            .select_from(external_units.join(transactions, external_units.c.transaction_id == transactions.c.id))
            .where(external_units.c.enterprise_id == enterprise_id, external_units.c.obligation_year == year)
        )
        if before is not None:
            query = query.where(transactions.c.requested_at < before)
        return int(conn.execute(query).scalar_one())

    def _issued_kg(self, conn: Connection, enterprise_id: str, year: int) -> int:
        """What settlements of ``year`` issued to the enterprise, net of clawbacks."""
        return int(
            conn.execute(
                select(func.coalesce(func.sum(entries.c.amount_kg), 0))
                .select_from(entries.join(transactions, entries.c.transaction_id == transactions.c.id))
                .where(
                    transactions.c.settlement_year == year,
                    entries.c.account_id == enterprise_account(enterprise_id),
                )
            ).scalar_one()
        )

    def _plan(self, conn: Connection, year: int, credit: SettledCredit, account: str) -> _SettlementPlan | None:
        """What settling ``credit`` books (the holding a clawback takes from stays locked); None: as
        settled last time."""
        target_kg = credits_to_kg(credit.credits_t)
        last = conn.execute(
            select(settlements.c.credits_kg, settlements.c.inputs_sha256)
            .where(settlements.c.year == year, settlements.c.enterprise_id == credit.enterprise_id)
            .order_by(settlements.c.id.desc())
            .limit(1)
        ).first()
        if last is not None and (last.credits_kg, last.inputs_sha256) == (target_kg, credit.inputs_sha256):
            return None
        number = 1 + int(
            conn.execute(
                select(func.count()).where(
                    settlements.c.year == year, settlements.c.enterprise_id == credit.enterprise_id
                )
            ).scalar_one()
        )
        issued = self._issued_kg(conn, credit.enterprise_id, year)
        change = max(target_kg, 0) - issued
        if change < 0:  # over-issued before: take back what the enterprise still holds of the vintage
            change = -min(self._holding_kg(conn, account, year, lock=True), -change)
        due = self._due_kg(conn, credit.enterprise_id, year)
        return _SettlementPlan(
            number=number,
            target_kg=target_kg,
            change=change,
            moves=[(ISSUING, year, -change), (account, year, change)] if change else [],
            owed_change=(issued + change - target_kg) - due,
            over_issued=issued + change > max(target_kg, 0),
        )

    def settle(
        self,
        year: int,
        credits: Sequence[SettledCredit],
        deadline: date,
        requested_by: str,
        after: Callable[[Connection], None] | None = None,
    ) -> SettlementReport:
        """Book a year's settled credits: a surplus is issued (vintage ``year``), a deficit owed by ``deadline``.

        Settling again (after a correction) books only the difference, by new entries: more credits
        issued, or credits clawed back (what the enterprise no longer holds of that vintage becomes
        owed), and obligation changes. A settlement identical to the last is not booked again.
        ``after(conn)`` runs in the same database transaction once everything is booked (the platform
        marks a result version's issuance approved there); if it raises, nothing is booked.
        """
        if not credits:
            raise NothingToSettleError(f"no settled credits for {year}: has carbon_annual run for it?")
        ordered = sorted(credits, key=lambda c: c.enterprise_id)
        # Each enterprise is planned from the book as it was before this settlement: once, then.
        twice = sorted(e for e, n in Counter(c.enterprise_id for c in credits).items() if n > 1)
        if twice:
            raise LedgerError(f"the settlement of {year} names {', '.join(twice)} more than once: nothing was booked")

        def work(conn: Connection) -> SettlementReport:
            report = SettlementReport(year)
            now = self._now()
            account_of = {c.enterprise_id: self._account(conn, c.enterprise_id) for c in ordered}
            # The locks in the order every booking takes them (see the module's docstring): first what
            # the enterprises owe; then their holdings in key order (enterprise order, each changed as
            # it is planned) and the issuing account's last ("ent:…" < "park:…"); the chains at the end.
            self._lock_obligations(conn, year, account_of.keys())
            plans = []
            for credit in ordered:
                plan = self._plan(conn, year, credit, account_of[credit.enterprise_id])
                if plan is not None:
                    self._apply(conn, [move for move in plan.moves if move[0] != ISSUING])
                plans.append(plan)
            self._apply(conn, [move for plan in plans if plan is not None for move in plan.moves if move[0] == ISSUING])
            for credit, plan in zip(ordered, plans, strict=True):
                if plan is None:
                    report.unchanged.append(credit.enterprise_id)
                    continue
                stem = f"{SYSTEM_REFERENCE_PREFIX}{year}:{credit.enterprise_id}:{plan.number}"
                if plan.change:
                    kind = "issue" if plan.change > 0 else "clawback"
                    self._record(
                        conn,
                        kind,
                        f"{stem}:{kind}",
                        _sha256({"kind": kind, "enterprise": credit.enterprise_id, "kg": plan.change}),
                        requested_by,
                        plan.moves,
                        settlement_year=year,
                        memo=f"settlement {plan.number} of {year}: inputs {credit.inputs_sha256[:12]}",
                    )
                    report.issued_kg[credit.enterprise_id] = plan.change
                if plan.owed_change:
                    self._append(
                        conn,
                        obligations,
                        {
                            "enterprise_id": credit.enterprise_id,
                            "year": year,
                            "delta_kg": plan.owed_change,
                            "deadline": deadline,
                            "reason": (
                                f"settlement {plan.number} of {year}: credits {kg_to_t(plan.target_kg)} t"
                                + (" (over-issued credits no longer held)" if plan.over_issued else "")
                            ),
                            "reference": f"{stem}:obligation",
                            "requested_by": requested_by,
                            "requested_at": now,
                        },
                    )
                    report.obligation_kg[credit.enterprise_id] = plan.owed_change
                self._append(
                    conn,
                    settlements,
                    {
                        "year": year,
                        "enterprise_id": credit.enterprise_id,
                        "credits_kg": plan.target_kg,
                        "inputs_sha256": credit.inputs_sha256,
                        "policy_version": credit.policy_version,
                        "factor_set": credit.factor_set,
                        "requested_by": requested_by,
                        "requested_at": now,
                    },
                )
            if after is not None:
                after(conn)
            return report

        result: SettlementReport = self._retrying(work)
        return result

    # -- reading ----------------------------------------------------------------------------------

    def obligation(self, enterprise_id: str, year: int) -> tuple[Decimal, Decimal]:
        """What the enterprise owes for ``year`` and what covers it so far (surrendered credits and
        external units, whenever booked) [t]."""
        with self.engine.connect() as conn:
            self._account(conn, enterprise_id)
            due = self._due_kg(conn, enterprise_id, year)
            covered = self._surrendered_kg(conn, enterprise_id, year) + self._external_kg(conn, enterprise_id, year)
        return kg_to_t(max(due, 0)), kg_to_t(covered)

    def balances(self, enterprise_id: str | None = None) -> pd.DataFrame:
        """Holdings per account and vintage [t]: enterprise_id (empty for the park's), account, vintage, amount_t."""
        query = select(accounts.c.enterprise_id, holdings.c.account_id, holdings.c.vintage, holdings.c.amount_kg).join(
            accounts, accounts.c.id == holdings.c.account_id
        )
        with self.engine.connect() as conn:
            if enterprise_id is not None:
                account = self._account(conn, enterprise_id)
                query = query.where(holdings.c.account_id == account)
            rows = conn.execute(query.order_by(holdings.c.account_id, holdings.c.vintage)).all()
        frame = pd.DataFrame(rows, columns=["enterprise_id", "account", "vintage", "amount_kg"])
        frame["enterprise_id"] = frame["enterprise_id"].fillna("")
        frame["amount_t"] = [float(kg_to_t(int(v))) for v in frame["amount_kg"]]
        return frame.drop(columns="amount_kg")

    def statement(self, enterprise_id: str, year: int | None = None) -> pd.DataFrame:
        """The enterprise's entries (booked in ``year``, park time, if given) with the running balance [t]."""
        other = entries.alias("other")
        query = (
            select(
                transactions.c.requested_at,
                transactions.c.id,
                transactions.c.kind,
                transactions.c.reference,
                other.c.account_id.label("counterparty"),
                entries.c.vintage,
                entries.c.amount_kg,
                transactions.c.price_fen_per_t,
                transactions.c.requested_by,
                transactions.c.memo,
            )
            .select_from(entries.join(transactions, entries.c.transaction_id == transactions.c.id))
            .join(
                other,
                and_(other.c.transaction_id == entries.c.transaction_id, other.c.account_id != entries.c.account_id),
            )
            .order_by(transactions.c.id)
        )
        with self.engine.connect() as conn:
            query = query.where(entries.c.account_id == self._account(conn, enterprise_id))
            rows = conn.execute(query).all()
        columns = [
            "booked_at",
            "transaction",
            "kind",
            "reference",
            "counterparty",
            "vintage",
            "amount_kg",
            "price_fen_per_t",
            "requested_by",
            "memo",
        ]
        frame = pd.DataFrame(rows, columns=columns)
        frame["booked_at"] = pd.to_datetime(frame["booked_at"], utc=True).dt.tz_convert(self.tz)
        frame["balance_kg"] = frame["amount_kg"].cumsum()
        if year is not None:
            frame = frame[frame["booked_at"].dt.year == year]
        frame["counterparty"] = frame["counterparty"].str.removeprefix("ent:")
        frame["amount_t"] = [float(kg_to_t(int(v))) for v in frame["amount_kg"]]
        frame["balance_t"] = [float(kg_to_t(int(v))) for v in frame["balance_kg"]]
        frame["price_cny_per_t"] = frame["price_fen_per_t"].astype("Float64") / 100
        return frame.drop(columns=["amount_kg", "balance_kg", "price_fen_per_t"]).reset_index(drop=True)

    def compliance(self, year: int, as_of: date) -> pd.DataFrame:
        """Per settled enterprise of ``year``: due, surrendered by the deadline, status and rating score.

        status: ``no obligation``; ``open`` (deadline not passed, not yet covered); ``covered``,
        ``partly covered`` or ``not covered`` by the deadline. score: 100 covered or no obligation,
        the covered share × 100 when partly covered, 0 not covered, empty while open. Credits
        surrendered (``surrendered_t``) and external units used (``external_t``) both cover.
        """
        rows = []
        with self.engine.connect() as conn:
            settled = sorted(
                set(conn.execute(select(settlements.c.enterprise_id).where(settlements.c.year == year)).scalars())
            )
            for enterprise_id in settled:
                due = self._due_kg(conn, enterprise_id, year)
                deadline = conn.execute(
                    select(func.max(obligations.c.deadline)).where(
                        obligations.c.enterprise_id == enterprise_id, obligations.c.year == year
                    )
                ).scalar()
                cutoff = datetime.combine(deadline + timedelta(days=1), time(), self.tz) if deadline else None
                surrendered = self._surrendered_kg(conn, enterprise_id, year, cutoff)
                external = self._external_kg(conn, enterprise_id, year, cutoff)
                covered = surrendered + external
                score: float | None
                if due <= 0:
                    status, score = "no obligation", 100.0
                elif covered >= due:
                    status, score = "covered", 100.0
                elif deadline is not None and as_of <= deadline:
                    status, score = "open", None
                elif covered > 0:
                    status, score = "partly covered", 100.0 * covered / due
                else:
                    status, score = "not covered", 0.0
                rows.append(
                    {
                        "enterprise_id": enterprise_id,
                        "year": year,
                        "due_t": float(kg_to_t(max(due, 0))),
                        "surrendered_t": float(kg_to_t(surrendered)),
                        "deadline": deadline,
                        "status": status,
                        "score": score,
                        "external_t": float(kg_to_t(external)),
                    }
                )
        return pd.DataFrame(
            rows,
            columns=["enterprise_id", "year", "due_t", "surrendered_t", "deadline", "status", "score", "external_t"],
        )

    def check(self) -> list[str]:
        """The book's invariants; returns what is wrong, the first broken row first (nothing, always,
        unless the database was edited behind the ledger's back).

        - every row of transactions (with its entries), obligations and settlements carries the hash
          its chain gives it: nothing booked was edited, moved or deleted, even with the triggers off;
        - every entry belongs to a transaction, and every transaction's entries sum to zero;
        - every holding equals the sum of its entries, and none but the source accounts (issuing,
          external) is negative;
        - all credits ever issued and external units entered are held, surrendered, retired, used
          against obligations or expired;
        - every external lot is as its transaction booked it (the transaction's content hash covers it);
        - no caller's transaction took a reference of the ledger's own (booked before they were refused).
        """
        problems = []
        with self.engine.connect() as conn:
            lines: dict[int, list[tuple[int, str, int, int]]] = defaultdict(list)
            for entry_id, txn_id, account, vintage, kg in conn.execute(
                select(
                    entries.c.id, entries.c.transaction_id, entries.c.account_id, entries.c.vintage, entries.c.amount_kg
                )
            ):
                lines[int(txn_id)].append((int(entry_id), account, int(vintage), int(kg)))
            for table in CHAINS:
                previous = None
                for row in conn.execute(select(table).order_by(table.c.id)).mappings():
                    own = lines.pop(int(row["id"]), []) if table is transactions else []
                    if row["chain_sha256"] != link(previous, table.name, row, [(a, v, kg) for _e, a, v, kg in own]):
                        problems.append(
                            f"{_describe(table, row)}: not as booked (its chain hash differs): it, its entries or "
                            f"the {table.name[:-1]} before it were changed after booking"
                        )
                    previous = row["chain_sha256"]
            for txn_id, orphans in sorted(lines.items()):
                problems += [f"entry {e} belongs to transaction {txn_id}, which does not exist" for e, *_ in orphans]
            unbalanced = conn.execute(
                select(entries.c.transaction_id)
                .group_by(entries.c.transaction_id)
                .having(func.sum(entries.c.amount_kg) != 0)
            ).scalars()
            problems += [f"transaction {t} does not sum to zero" for t in unbalanced]
            sums = {
                (a, v): int(s)
                for a, v, s in conn.execute(
                    select(entries.c.account_id, entries.c.vintage, func.sum(entries.c.amount_kg)).group_by(
                        entries.c.account_id, entries.c.vintage
                    )
                )
            }
            held = {(a, v): int(s) for a, v, s in conn.execute(select(holdings))}
            for key in sorted(set(sums) | set(held)):
                if sums.get(key, 0) != held.get(key, 0):
                    problems.append(f"holding {key} is {held.get(key, 0)} kg, its entries sum to {sums.get(key, 0)} kg")
                if key[0] not in SOURCE_ACCOUNTS and held.get(key, 0) < 0:
                    problems.append(f"holding {key} is negative")
            issued = -sum(v for (a, _v), v in held.items() if a in SOURCE_ACCOUNTS)
            rest = sum(v for (a, _v), v in held.items() if a not in SOURCE_ACCOUNTS)
            if issued != rest:
                problems.append(
                    f"{issued} kg issued or entered but {rest} kg held, surrendered, retired, used or expired"
                )
            lots = conn.execute(
                select(external_units, transactions.c.kind.label("txn_kind"), transactions.c.content_sha256)
                .join(transactions, external_units.c.transaction_id == transactions.c.id)
                .order_by(external_units.c.transaction_id)
            ).mappings()
            for lot in lots:
                content = {
                    "kind": "offset",
                    "enterprise": lot["enterprise_id"],
                    "year": lot["obligation_year"],
                    "serial": lot["serial"],
                    "lot_kind": lot["kind"],
                    "vintage": lot["vintage"],
                    "origin": lot["origin"],
                    "valid_until": lot["valid_until"],
                    "amount_kg": lot["amount_kg"],
                }
                if lot["txn_kind"] != "offset" or _sha256(content) != lot["content_sha256"]:
                    problems.append(
                        f"external unit {lot['serial']}: not as transaction {lot['transaction_id']} booked it"
                    )
            squatted = conn.execute(
                select(transactions.c.id, transactions.c.reference)
                .where(
                    transactions.c.reference.startswith(SYSTEM_REFERENCE_PREFIX, autoescape=True),
                    transactions.c.kind.notin_(list(SYSTEM_KINDS)),
                )
                .order_by(transactions.c.id)
            ).all()
            problems += [
                f"transaction {t} (reference {r!r}) is a caller's under a reference reserved for settlements: "
                "settling its year again may fail on it"
                for t, r in squatted
            ]
        return problems

    def summary(self) -> str:
        """How much the book holds and the head (last row and hash) of each chain: one line, worth
        keeping outside the database, where a rewrite of the chains from some row on would show."""
        with self.engine.connect() as conn:
            n_entries = conn.execute(select(func.count()).select_from(entries)).scalar_one()
            counts, heads = [], []
            for table in CHAINS:
                counts.append(f"{conn.execute(select(func.count()).select_from(table)).scalar_one()} {table.name}")
                head = conn.execute(
                    select(table.c.id, table.c.chain_sha256).order_by(table.c.id.desc()).limit(1)
                ).first()
                if head is not None:
                    heads.append(f"{table.name[:-1]} {head.id} {head.chain_sha256}")
        counts[0] += f" ({n_entries} entries)"
        return f"{', '.join(counts)}; chain heads: {', '.join(heads) or 'none (empty book)'}"


def _describe(table: Table, row: Mapping[Any, Any]) -> str:
    """A booked row as an operator finds it again: its table, id and reference (or whose and which year)."""
    if table is settlements:
        return f"settlement {row['id']} ({row['enterprise_id']}, {row['year']})"
    return f"{table.name[:-1]} {row['id']} (reference {row['reference']!r})"
