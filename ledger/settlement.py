"""The ledger's side of a year: settled credits booked into the credit ledger, credits past their
banking validity booked out, and compliance read back from it, written to InfluxDB (the COMPLIANCE
measurement) for the dashboards and fed to the rating.

COMPLIANCE (tag enterprise) is stamped at local midnight of 1 January of the obligation's year:
due_tco2, surrendered_tco2 (by the deadline), status, score (absent while open), deadline.
"""

from __future__ import annotations

import getpass
from datetime import date

import pandas as pd
from sqlalchemy import select

from ledger.book import Ledger, SettledCredit, SettlementReport
from ledger.db import make_engine, migrate
from ledger.registry_live import LiveRegistry
from ledger.registry_store import ENTERPRISE, registry_versions
from park.lineprotocol import Point
from park.measurements import COMPLIANCE
from park.month import Month
from park.registry import Registry, load_registry
from park.settings import Settings
from park.store import InfluxStore


def open_ledger(settings: Settings, credit_validity_years: int | None = None) -> Ledger:
    """The ledger at ``settings.ledger_url``, migrated, with an account for every registry enterprise:
    of the file, or (``registry_source = "database"``) every enterprise the platform's registry has ever
    had, so one added on the platform has its account before its first credit is booked.

    ``credit_validity_years`` is the policy's banking validity (``scoring.policy.LedgerPolicy``, read by
    the caller: the ledger does not depend on scoring). Whatever books must pass it, or credits never
    expire and transfers of a vintage past it are not refused; None only for readers and tests.
    """
    if settings.ledger.url is None:
        settings.run_dir.mkdir(parents=True, exist_ok=True)
    registry = load_registry(settings.registry)
    enterprise_ids = {e.id for e in registry.enterprises}
    if settings.registry_source == "database":
        registry, enterprise_ids = _database_registry(settings, registry)
    ledger = Ledger.open(settings.ledger_url, registry.park.timezone, credit_validity_years=credit_validity_years)
    ledger.open_accounts(sorted(enterprise_ids))
    return ledger


def _database_registry(settings: Settings, fallback: Registry) -> tuple[Registry, set[str]]:
    """The database's registry as of today (``fallback``, the file, until one is imported) and every
    enterprise it has had in any version (an account is never closed)."""
    engine = make_engine(settings.ledger_url)
    try:
        migrate(engine)  # the registry's table exists before the ledger is opened
        registry = LiveRegistry(engine, fallback).current()
        with engine.connect() as conn:
            ever = set(
                conn.execute(
                    select(registry_versions.c.entity_id).where(registry_versions.c.kind == ENTERPRISE).distinct()
                ).scalars()
            )
    finally:
        engine.dispose()
    return registry, ever | {e.id for e in registry.enterprises}


def operator(settings: Settings) -> str:
    return settings.ledger.operator or getpass.getuser()


def book_settlement(
    ledger: Ledger, year: int, credits: pd.DataFrame, deadline: date, requested_by: str
) -> SettlementReport:
    """Book the settled ``CREDITS`` (rows of CREDITS_ANNUAL) of ``year``; deficits due by ``deadline``."""
    settled = [
        SettledCredit(
            str(r["enterprise"]),
            float(r["credits_tco2"]),
            str(r["inputs_sha256"]),
            str(r["policy_version"]),
            str(r["factor_set"]),
        )
        for r in credits.to_dict("records")
    ]
    return ledger.settle(year, settled, deadline, requested_by)


def expire_after_year(ledger: Ledger, year: int, requested_by: str) -> dict[tuple[str, int], int]:
    """Book out what enterprises hold of vintages past their validity on 31 December of ``year`` (as of
    1 January of the next year); kg expired by (enterprise, vintage). Nothing twice: once booked out,
    a vintage is no longer held. Nothing at all when the ledger has no banking validity."""
    if ledger.credit_validity_years is None:
        return {}
    return ledger.expire(date(year + 1, 1, 1), requested_by)


def write_compliance(ledger: Ledger, store: InfluxStore, year: int, as_of: date) -> pd.DataFrame:
    """Read the ledger's compliance for ``year`` as of ``as_of`` and replace its COMPLIANCE points."""
    frame = ledger.compliance(year, as_of)
    january = Month.of(f"{year:04d}-01", ledger.tz.key)
    points: list[Point] = []
    for r in frame.to_dict("records"):
        fields: dict[str, float | str] = {
            "due_tco2": float(r["due_t"]),
            "surrendered_tco2": float(r["surrendered_t"]),
            "status": str(r["status"]),
        }
        if r["score"] is not None and not pd.isna(r["score"]):
            fields["score"] = float(r["score"])
        if r["deadline"] is not None:
            fields["deadline"] = str(r["deadline"])
        points.append(COMPLIANCE.point({"enterprise": str(r["enterprise_id"])}, fields, january.start_ns))
    store.replace_at(COMPLIANCE, january.start_ns, points)
    return frame


def compliance_scores(settings: Settings, timezone: str, year: int, as_of: date) -> pd.Series | None:
    """The rating's compliance dimension from the ledger (None when it knows nothing of ``year``).

    A reader: the ledger is opened read-only, never migrated, and no account is opened.
    """
    if settings.ledger.url is None and not settings.ledger_file.exists():
        return None
    ledger = Ledger.open_read_only(settings.ledger_url, timezone)
    if ledger is None:
        return None
    with ledger:
        frame = ledger.compliance(year, as_of)
    scores = frame.dropna(subset=["score"]).set_index("enterprise_id")["score"].astype(float)
    return scores if len(scores) else None
