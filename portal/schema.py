"""The platform's tables, on the ledger's database. The ledger's Alembic history creates them
(``ledger/migrations/versions/0003_platform.py`` spells them again, as a migration must not import the
layer above it); ``tests/ledger/test_book.py`` checks that the head builds exactly these and the ledger's.

- ``users``: one row per person: a unique user name, the role, the enterprise for the enterprise roles
  (NULL for the park's), the argon2 hash of the password, and ``session_epoch``: a password change or a
  disabled account raises it, and every session opened under an older epoch stops working.
- ``sessions``: server-side sessions. The cookie carries a random token; only its SHA-256 is stored
  (a copy of the table opens no session), with the epoch it was opened under, the form token (CSRF)
  bound to it, and an absolute expiry.
- ``login_throttle``: consecutive wrong passwords per user name and per client address, and until when
  a key is locked.
- ``audit_log``: append-only (triggers refuse UPDATE and DELETE on SQLite and PostgreSQL): who, when,
  what, on what, from → to.
- ``offers``: an enterprise's offer of credits of one vintage to another at a price, until an expiry
  (``portal/offers.py``): its terms are fixed (a trigger refuses changing them or deleting an offer);
  its state goes open → accepted | declined | withdrawn | expired, and an accepted offer names the
  ledger transaction that booked it.

The data requests, submissions and their evidence (``data_requests``, ``submissions``,
``submission_evidence``) are declared in ``ledger/manual.py``, on the ledger's metadata, because the
monthly pipeline reads the approved figures and may not import the platform; they are named here so
that the platform writes through the very same definitions.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from ledger.manual import data_requests, submission_evidence, submissions

ROLES = ("park_admin", "park_analyst", "park_viewer", "auditor", "enterprise_admin", "enterprise_reporter")
ENTERPRISE_ROLES = ("enterprise_admin", "enterprise_reporter")
APPEND_ONLY = ("audit_log",)
WORKFLOW_TABLES = (data_requests, submissions, submission_evidence)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("role", String(32), nullable=False),
    Column("enterprise_id", String(64), nullable=True),
    Column("password_hash", String(256), nullable=False),
    Column("session_epoch", Integer, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    CheckConstraint(
        "(role IN ('enterprise_admin', 'enterprise_reporter')) = (enterprise_id IS NOT NULL)",
        name="ck_users_enterprise_role",
    ),
    Index("ix_users_enterprise", "enterprise_id"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("client", String(64), nullable=False),
    Index("ix_sessions_user", "user_id"),
)

login_throttle = Table(
    "login_throttle",
    metadata,
    Column("key", String(200), primary_key=True),  # user:<name> or addr:<client address>
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", DateTime(timezone=True), nullable=False),
    Column("locked_until", DateTime(timezone=True), nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(64), nullable=False),  # the user name, or what was typed at a failed login
    Column("actor_role", String(32), nullable=False),
    Column("actor_enterprise", String(64), nullable=True),
    Column("client", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False),
    Column("from_value", Text, nullable=False),
    Column("to_value", Text, nullable=False),
    Index("ix_audit_log_at", "at"),
)

OFFER_STATES = ("open", "accepted", "declined", "withdrawn", "expired")

offers = Table(
    "offers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seller_id", String(64), nullable=False),
    Column("buyer_id", String(64), nullable=False),
    Column("vintage", Integer, nullable=False),
    Column("amount_kg", BigInteger, nullable=False),  # as the ledger counts: kg of CO2e
    Column("price_fen_per_t", BigInteger, nullable=False),  # CNY fen (0.01 CNY) per credit (t)
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(64), nullable=True),
    Column("transaction_id", Integer, nullable=True),  # the ledger's transaction of an accepted offer
    CheckConstraint("state IN ('open', 'accepted', 'declined', 'withdrawn', 'expired')", name="ck_offers_state"),
    CheckConstraint("amount_kg > 0", name="ck_offers_amount"),
    CheckConstraint("price_fen_per_t >= 0", name="ck_offers_price"),
    CheckConstraint("seller_id <> buyer_id", name="ck_offers_parties"),
    Index("ix_offers_seller", "seller_id", "state"),
    Index("ix_offers_buyer", "buyer_id", "state"),
)
