"""The book's hash chains: tamper evidence that does not depend on the database's triggers.

The owner of the database can get past the append-only triggers (SQLite ``DROP TRIGGER``,
PostgreSQL ``session_replication_role = replica``). So every row of ``transactions`` (together with
its entries), ``obligations`` and ``settlements`` carries ``chain_sha256``: the SHA-256 of the
previous row's hash in the same table and this row's canonical content. Editing, moving or deleting
a booked row breaks the chain at that row or the next; ``Ledger.check`` recomputes it.

A rewrite of the whole chain from the edited row on is not caught by the chain alone: keep the heads
that ``parkcarbon ledger check`` prints somewhere the database's owner cannot reach.

What each hash covers is fixed here, by name, and must never change: the migration that chained
existing books (0002) and every booking since compute it with these very functions. A column added
later is outside the hash unless a new migration rechains the book.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

GENESIS = "0" * 64  # the "previous hash" of each chain's first row

CHAINED: dict[str, tuple[str, ...]] = {
    "transactions": (
        "kind",
        "reference",
        "content_sha256",
        "requested_by",
        "requested_at",
        "settlement_year",
        "obligation_year",
        "price_fen_per_t",
        "memo",
    ),
    "obligations": (
        "enterprise_id",
        "year",
        "delta_kg",
        "deadline",
        "reason",
        "reference",
        "requested_by",
        "requested_at",
    ),
    "settlements": (
        "year",
        "enterprise_id",
        "credits_kg",
        "inputs_sha256",
        "policy_version",
        "factor_set",
        "requested_by",
        "requested_at",
    ),
}


def _plain(value: Any) -> Any:
    """A value as JSON, the same whether it is about to be written or was read back (SQLite gives
    back naive UTC datetimes, PostgreSQL aware ones in the session's time zone)."""
    if isinstance(value, datetime):
        utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date):
        return value.isoformat()
    if value is None or isinstance(value, str):
        return value
    return int(value)  # every other chained column is an integer


def link(
    previous: str | None,
    table: str,
    row: Mapping[Any, Any],
    entries: Iterable[tuple[str, int, int]] = (),
) -> str:
    """The chain hash of ``row`` of ``table`` after the row whose hash is ``previous`` (None: the first).

    ``entries``: a transaction's (account, vintage, amount kg), in any order.
    """
    content: dict[str, Any] = {name: _plain(row[name]) for name in CHAINED[table]}
    if table == "transactions":
        content["entries"] = sorted([str(a), int(v), int(kg)] for a, v, kg in entries)
    canonical = json.dumps([table, content], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{previous or GENESIS}\n{canonical}".encode()).hexdigest()
