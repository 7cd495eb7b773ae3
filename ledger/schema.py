"""The ledger's tables. Amounts are whole kilograms of CO2 (``*_kg``), exact on every database;
1 credit = 1 t CO2 = 1,000 kg. The Alembic migrations in ``ledger/migrations`` create exactly this
schema (a test compares them), plus triggers that refuse UPDATE and DELETE on the booked tables.

- ``accounts``: one per enterprise plus the park's ``park:issuing`` (the source of every credit: its
  balance is minus what was ever issued), ``park:surrendered`` and ``park:retired``.
- ``transactions``: one per request, immutable: kind, the caller's reference (unique: a retried
  request is applied once), the SHA-256 of its content, who asked and when.
- ``entries``: the double entries of a transaction, immutable; each transaction's amounts sum to zero.
- ``holdings``: the balance per account and vintage, kept in the same database transaction as the
  entries; a CHECK keeps every account but the issuing one from going below zero.
- ``obligations``: immutable changes of what an enterprise owes for a year (a deficit at settlement,
  corrections after a re-settlement); what it owes is their sum.
- ``settlements``: the settled credits of each enterprise and year, with the inputs' hash, policy
  and factor set they came from; a re-settlement adds rows, never edits one.
- ``external_units``: units from outside the park (green electricity certificates, CCER, 碳普惠
  credits) used against an enterprise's obligation, one row per lot, keyed by its serial number: a
  serial counts once park-wide. Immutable; the transaction that booked the lot hashes its content.
  Their entries run from ``park:external`` (the source of every external unit, like the issuing
  account for credits) to ``park:offsets``.
- Credits past their validity are moved to ``park:expired`` by entries of their own (``Ledger.expire``).

Transactions (with their entries), obligations and settlements each form a hash chain
(``chain_sha256``, see ``ledger.chain``), so that an edit behind the triggers' back shows. The column
may be NULL only because SQLite cannot make a column added to a filled table NOT NULL;
``Ledger.check`` reports a missing hash like a wrong one.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

ISSUING = "park:issuing"
SURRENDERED = "park:surrendered"
RETIRED = "park:retired"
EXTERNAL = "park:external"
OFFSETS = "park:offsets"
EXPIRED = "park:expired"
PARK_ACCOUNTS = {
    ISSUING: "issuing",
    SURRENDERED: "surrendered",
    RETIRED: "retired",
    EXTERNAL: "external",
    OFFSETS: "offsets",
    EXPIRED: "expired",
}
SOURCE_ACCOUNTS = (ISSUING, EXTERNAL)  # their balance is minus what entered the book through them
IMMUTABLE_TABLES = ("transactions", "entries", "obligations", "settlements", "external_units")
EXTERNAL_KINDS = ("gec", "ccer", "puhui")  # green electricity certificate, CCER, 碳普惠 credit
SYSTEM_REFERENCE_PREFIX = "settle:"  # the ledger's own bookings; refused as a caller's reference

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(80), primary_key=True),
    Column("kind", String(16), nullable=False),  # issuing, surrendered, retired, enterprise
    Column("enterprise_id", String(64), nullable=True, unique=True),
    Column("opened_at", DateTime(timezone=True), nullable=False),
)

transactions = Table(
    "transactions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # issue, transfer, surrender, retire, clawback
    Column("reference", String(200), nullable=False, unique=True),
    Column("content_sha256", String(64), nullable=False),
    Column("requested_by", String(120), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("settlement_year", Integer, nullable=True),  # issue and clawback: the year settled
    Column("obligation_year", Integer, nullable=True),  # surrender: the year's obligation it covers
    Column("price_fen_per_t", BigInteger, nullable=True),  # transfer: price per credit in CNY fen (0.01 CNY)
    Column("memo", Text, nullable=False, default=""),
    Column("chain_sha256", String(64), nullable=True),
)

entries = Table(
    "entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("transaction_id", Integer, ForeignKey("transactions.id"), nullable=False),
    Column("account_id", String(80), ForeignKey("accounts.id"), nullable=False),
    Column("vintage", Integer, nullable=False),
    Column("amount_kg", BigInteger, nullable=False),  # + into the account, − out of it
    CheckConstraint("amount_kg <> 0", name="ck_entries_nonzero"),
    Index("ix_entries_account_vintage", "account_id", "vintage"),
    Index("ix_entries_transaction", "transaction_id"),
)

holdings = Table(
    "holdings",
    metadata,
    Column("account_id", String(80), ForeignKey("accounts.id"), primary_key=True),
    Column("vintage", Integer, primary_key=True),
    Column("amount_kg", BigInteger, nullable=False),
    CheckConstraint(f"amount_kg >= 0 OR account_id IN ('{ISSUING}', '{EXTERNAL}')", name="ck_holdings_not_negative"),
)

obligations = Table(
    "obligations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("enterprise_id", String(64), nullable=False),
    Column("year", Integer, nullable=False),
    Column("delta_kg", BigInteger, nullable=False),
    Column("deadline", Date, nullable=False),
    Column("reason", Text, nullable=False),
    Column("reference", String(200), nullable=False, unique=True),
    Column("requested_by", String(120), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("chain_sha256", String(64), nullable=True),
    Index("ix_obligations_enterprise_year", "enterprise_id", "year"),
)

settlements = Table(
    "settlements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("year", Integer, nullable=False),
    Column("enterprise_id", String(64), nullable=False),
    Column("credits_kg", BigInteger, nullable=False),  # + surplus, − deficit
    Column("inputs_sha256", String(64), nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("factor_set", String(64), nullable=False),
    Column("requested_by", String(120), nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("chain_sha256", String(64), nullable=True),
    Index("ix_settlements_year_enterprise", "year", "enterprise_id"),
)

external_units = Table(
    "external_units",
    metadata,
    Column("serial", String(120), primary_key=True),  # the issuing registry's serial: once park-wide
    Column("kind", String(16), nullable=False),  # gec, ccer, puhui
    Column("vintage", Integer, nullable=False),  # the year the reduction or generation took place
    Column("origin", Text, nullable=False),  # project, registry, issuing body
    Column("valid_until", Date, nullable=True),  # last day the registry lets it be used
    Column("amount_kg", BigInteger, nullable=False),
    Column("enterprise_id", String(64), nullable=False),
    Column("obligation_year", Integer, nullable=False),
    Column("transaction_id", Integer, ForeignKey("transactions.id"), nullable=False, unique=True),
    CheckConstraint("amount_kg > 0", name="ck_external_units_positive"),
    CheckConstraint("kind IN (" + ", ".join(f"'{k}'" for k in EXTERNAL_KINDS) + ")", name="ck_external_units_kind"),
    Index("ix_external_units_enterprise_year", "enterprise_id", "obligation_year"),
)
