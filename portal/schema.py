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
- ``banks``, ``bank_users``, ``consents``: the banks that read credit reports (``portal/consent.py``),
  which bank each ``bank_viewer`` belongs to (one row per bank user, written with the user), and each
  enterprise's consent to one bank: granted (optionally until a date) → revoked, or → expired once its
  date has passed. A consent is never deleted and a re-grant is a new row; at most one row per
  enterprise and bank is ``granted`` (a partial unique index), so two grants at once book once.
- ``gateway_credentials``: a registry gateway's broker account (user name = gateway id), one row per
  gateway (``portal/gateways.py``): the Mosquitto ``$7$`` PBKDF2-SHA512 entry of its password (the
  password itself is shown once and never stored), its state active → revoked (issued again → active),
  a generation raised by every issue and rotation, and who issued, rotated and revoked it when.
  ``parkcarbon broker sync`` rebuilds the broker's password file and ACL from it.
- ``registry_proposals``: an enterprise admin's proposed change of its own enterprise's registry
  entries (a new meter, a new workshop, a meter replacement) with a reason (``portal/registry_edit.py``):
  its content is fixed (a trigger refuses changing it or deleting a proposal); its state goes
  proposed → approved (the change applied through ``ledger/registry_store.py``) | rejected (with a
  reason) | withdrawn.

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
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from ledger.manual import data_requests, submission_evidence, submissions

ROLES = (
    "park_admin",
    "park_analyst",
    "park_viewer",
    "auditor",
    "enterprise_admin",
    "enterprise_reporter",
    "bank_viewer",
)
BANK_ROLE = "bank_viewer"  # reads the credit reports its bank was given consent to, nothing else
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

banks = Table(
    "banks",
    metadata,
    Column("id", String(64), primary_key=True),  # the bank's organisation id, as the park office names it
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
)

bank_users = Table(
    "bank_users",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("bank_id", String(64), ForeignKey("banks.id"), nullable=False),
    Index("ix_bank_users_bank", "bank_id"),
)

CONSENT_STATES = ("granted", "revoked", "expired")

consents = Table(
    "consents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("enterprise_id", String(64), nullable=False),
    Column("bank_id", String(64), ForeignKey("banks.id"), nullable=False),
    Column("valid_until", Date, nullable=True),  # the last day it stands (the park's calendar); None: until revoked
    Column("state", String(16), nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    Column("granted_by", String(64), nullable=False),
    Column("ended_at", DateTime(timezone=True), nullable=True),  # revoked, or marked expired
    Column("ended_by", String(64), nullable=True),
    CheckConstraint("state IN ('granted', 'revoked', 'expired')", name="ck_consents_state"),
    Index("ix_consents_bank", "bank_id", "state"),
    Index(
        "ux_consents_granted",
        "enterprise_id",
        "bank_id",
        unique=True,
        sqlite_where=text("state = 'granted'"),
        postgresql_where=text("state = 'granted'"),
    ),
)

GATEWAY_CREDENTIAL_STATES = ("active", "revoked")

gateway_credentials = Table(
    "gateway_credentials",
    metadata,
    Column("gateway_id", String(64), primary_key=True),  # a registry gateway's id: its broker user name
    Column("password_hash", String(256), nullable=False),  # mosquitto's $7$ entry (park/mqtt_passwords.py)
    Column("state", String(16), nullable=False),
    Column("generation", Integer, nullable=False),  # 1 at the first issue, +1 at every issue and rotation
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("issued_by", String(64), nullable=False),
    Column("rotated_at", DateTime(timezone=True), nullable=True),
    Column("rotated_by", String(64), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", String(64), nullable=True),
    CheckConstraint("state IN ('active', 'revoked')", name="ck_gateway_credentials_state"),
    CheckConstraint("generation >= 1", name="ck_gateway_credentials_generation"),
)

PROPOSAL_STATES = ("proposed", "approved", "rejected", "withdrawn")
PROPOSAL_KINDS = ("meter", "workshop", "replacement")

registry_proposals = Table(
    "registry_proposals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("enterprise_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # a new meter, a new workshop, a meter replacement
    Column("entity_id", String(80), nullable=False),  # the meter's or the workshop's id
    Column("valid_from", Date, nullable=True),  # a new entry's month's first day; a replacement: its instant
    Column("document", Text, nullable=False),  # the entry (or the replacement) as the registry file writes it
    Column("reason", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("decided_by", String(64), nullable=True),
    Column("decision_reason", Text, nullable=True),  # a rejection's reason
    CheckConstraint("state IN ('proposed', 'approved', 'rejected', 'withdrawn')", name="ck_registry_proposals_state"),
    CheckConstraint("kind IN ('meter', 'workshop', 'replacement')", name="ck_registry_proposals_kind"),
    CheckConstraint("(kind = 'replacement') = (valid_from IS NULL)", name="ck_registry_proposals_valid_from"),
    CheckConstraint("state <> 'rejected' OR decision_reason IS NOT NULL", name="ck_registry_proposals_rejection"),
    Index("ix_registry_proposals_enterprise", "enterprise_id", "state"),
    Index("ix_registry_proposals_state", "state"),
)
