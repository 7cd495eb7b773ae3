"""The park registry in the platform's database, versioned: what the registry said on any date.

Every past month is recomputed from the registry (multipliers, meter roles, replacements), so an edit
of today must not silently change last year's credits. Here each entry of the registry (the park,
an enterprise, a workshop, a gateway, a meter, an enterprise's value added of a year) is a row per
version in ``registry_versions``, valid over local dates of the park ``[valid_from, valid_to)``
(``valid_to`` NULL: in force), with who made it, when and why. A change closes the version in force
(a conditional UPDATE of its ``valid_to``, ``WHERE valid_to IS NULL``) and opens the next one; it
never edits history. The migration ``0009_registry_versions`` adds triggers refusing DELETE, any
change of a version's content, and any change of a closed version.

Changes take effect at the start of a month (``valid_from`` is a month's first day): a month is
computed with one registry, that of its first day, so every reading of the month is read under the
same multipliers and roles and energy stays exact. What happens inside a month is a meter
replacement: it carries its instant, and the meter's version from the month's start lists it, so the
monthly computation bridges it at that instant exactly as the registry file's replacements
(``scoring.registers``). A change dated on the day its predecessor began leaves that predecessor in
the history with an empty interval, never in force.

A version's ``document`` is the entry as the registry file writes it (JSON of the pydantic model of
``park.registry``): the models stay the one schema; every change is validated by materialising the
whole registry on each date it touches and running the registry's own checks.

The functions apply a validated change in the caller's transaction and return the
:class:`RegistryChange` list for the audit log, which the caller (CLI, platform) records in the same
transaction.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Date,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    insert,
    or_,
    select,
    update,
)

from ledger.errors import LedgerError
from ledger.schema import metadata
from park.registry import Meter, MeterReplacement, Registry, RegistryError, parse_registry

PARK, ENTERPRISE, WORKSHOP, GATEWAY, METER, VALUE_ADDED = (
    "park",
    "enterprise",
    "workshop",
    "gateway",
    "meter",
    "value_added",
)
# kind → the Registry's list of it (the park is one entry, with the registry's version string)
KIND_LISTS = {ENTERPRISE: "enterprises", WORKSHOP: "workshops", GATEWAY: "gateways", METER: "meters"}
KINDS = (PARK, *KIND_LISTS, VALUE_ADDED)
# The enterprises file's columns (scoring.inputs.ENTERPRISE_COLUMNS, spelled again as this layer may
# not import scoring): one value-added version per enterprise and year, its cells as written.
VALUE_ADDED_COLUMNS = ("enterprise", "name", "industry", "year", "value_added_10k_cny")

registry_versions = Table(
    "registry_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("entity_id", String(80), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date, nullable=True),
    Column("document", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
    Column("changed_by", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("closed_by", String(64), nullable=True),
    CheckConstraint(
        "kind IN ('park', 'enterprise', 'workshop', 'gateway', 'meter', 'value_added')", name="ck_registry_kind"
    ),
    CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="ck_registry_interval"),
    CheckConstraint("(valid_to IS NULL) = (closed_by IS NULL)", name="ck_registry_closed_by"),
)
Index("ix_registry_versions_entity", registry_versions.c.kind, registry_versions.c.entity_id)
# At most one version of an entry in force: two concurrent changes cannot both open one.
Index(
    "ux_registry_versions_open",
    registry_versions.c.kind,
    registry_versions.c.entity_id,
    unique=True,
    sqlite_where=registry_versions.c.valid_to.is_(None),
    postgresql_where=registry_versions.c.valid_to.is_(None),
)


class RegistryChangeError(LedgerError):
    """A registry change that cannot be taken (a date not at a month's start, an entry that breaks the
    registry's checks, a change before the version in force); nothing of it was stored."""


class RegistryConflictError(LedgerError):
    """The version a change meant to close was closed meanwhile by another change: nothing was stored."""


@dataclass(frozen=True)
class RegistryChange:
    """One change, as the audit log records it: ``action`` (``registry.add``, ``registry.change``,
    ``registry.close``, ``registry.replace_meter``), the entry, the date it applies from, the entry's
    document before and after (JSON, empty when there is none)."""

    action: str
    kind: str
    entity_id: str
    valid_from: date
    before: str
    after: str

    @property
    def target(self) -> str:
        return f"registry:{self.kind}:{self.entity_id}@{self.valid_from.isoformat()}"


def _dump(document: Mapping[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _month_start(day: date) -> None:
    if day.day != 1:
        raise RegistryChangeError(
            f"a registry change applies from a month's first day, not {day.isoformat()}: a month is computed with"
            " one registry; a meter changed inside a month is a replacement (replace_meter)"
        )


def _documents(registry: Registry) -> dict[tuple[str, str], dict[str, Any]]:
    """The registry's entries as (kind, id) → document, in the registry's order."""
    documents: dict[tuple[str, str], dict[str, Any]] = {
        (PARK, registry.park.id): {"version": registry.version, "park": registry.park.model_dump(mode="json")}
    }
    for kind, attribute in KIND_LISTS.items():
        for item in getattr(registry, attribute):
            documents[(kind, item.id)] = item.model_dump(mode="json", exclude_defaults=True)
    return documents


def value_added_documents(rows: Iterable[Mapping[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    """The enterprises file's rows as (value_added, 'E01:2025') → the row's cells as written."""
    documents: dict[tuple[str, str], dict[str, str]] = {}
    for number, row in enumerate(rows, start=2):
        unknown = sorted(set(row) - set(VALUE_ADDED_COLUMNS))
        if unknown:
            raise RegistryChangeError(f"enterprises file, row {number}: columns {unknown} are not kept in the registry")
        cells = {column: (row.get(column) or "").strip() for column in VALUE_ADDED_COLUMNS}
        if not cells["enterprise"] or not cells["year"].isdigit():
            raise RegistryChangeError(f"enterprises file, row {number}: needs an enterprise and a year")
        if cells["value_added_10k_cny"]:
            try:
                float(cells["value_added_10k_cny"])
            except ValueError:
                raise RegistryChangeError(
                    f"enterprises file, row {number}: value_added_10k_cny {cells['value_added_10k_cny']!r} is not a"
                    " number"
                ) from None
        key = (VALUE_ADDED, f"{cells['enterprise']}:{cells['year']}")
        if key in documents:
            raise RegistryChangeError(f"enterprises file, row {number}: a second row for {key[1]}")
        documents[key] = cells
    return documents


def _in_force(conn: Connection, day: date) -> list[Any]:
    """The versions in force on ``day``, each entry in the order it first entered the registry."""
    rows = conn.execute(
        select(registry_versions).where(
            registry_versions.c.valid_from <= day,
            or_(registry_versions.c.valid_to.is_(None), registry_versions.c.valid_to > day),
        )
    ).all()
    first_seen = {
        (kind, entity_id): first
        for kind, entity_id, first in conn.execute(
            select(registry_versions.c.kind, registry_versions.c.entity_id, func.min(registry_versions.c.id)).group_by(
                registry_versions.c.kind, registry_versions.c.entity_id
            )
        )
    }
    return sorted(rows, key=lambda r: first_seen[(r.kind, r.entity_id)])


def documents_as_of(conn: Connection, day: date) -> dict[tuple[str, str], dict[str, Any]]:
    """Every entry's document in force on ``day``, keyed (kind, id), in the registry's order."""
    return {(r.kind, r.entity_id): json.loads(r.document) for r in _in_force(conn, day)}


def _materialise(documents: Mapping[tuple[str, str], Mapping[str, Any]], day: date) -> Registry:
    parks = [d for (kind, _), d in documents.items() if kind == PARK]
    if len(parks) != 1:
        raise RegistryChangeError(f"the registry in the database has no park on {day.isoformat()}")
    data: dict[str, Any] = {"version": parks[0]["version"], "park": parks[0]["park"]}
    for kind, attribute in KIND_LISTS.items():
        data[attribute] = [dict(d) for (k, _), d in documents.items() if k == kind]
    return parse_registry(data, f"registry in the database as of {day.isoformat()}")


def registry_as_of(conn: Connection, day: date) -> Registry:
    """The registry as it was on ``day`` (a local date of the park)."""
    return _materialise(documents_as_of(conn, day), day)


def value_added_as_of(conn: Connection, day: date) -> list[dict[str, str]]:
    """The enterprises file's rows as they were on ``day``, in the order they were first stored."""
    return [d for (kind, _), d in documents_as_of(conn, day).items() if kind == VALUE_ADDED]


def open_row(conn: Connection, kind: str, entity_id: str) -> Any:
    """The entry's version in force (open: no ``valid_to``; one at most, by a unique index), or None."""
    return conn.execute(
        select(registry_versions).where(
            registry_versions.c.kind == kind,
            registry_versions.c.entity_id == entity_id,
            registry_versions.c.valid_to.is_(None),
        )
    ).first()


def _close(conn: Connection, row: Any, valid_from: date, by: str, now: datetime) -> None:
    if valid_from < row.valid_from:
        raise RegistryChangeError(
            f"{row.kind} {row.entity_id!r}: its version in force began {row.valid_from.isoformat()}; a change from"
            f" {valid_from.isoformat()} would rewrite it"
        )
    closed = conn.execute(
        update(registry_versions)
        .where(registry_versions.c.id == row.id, registry_versions.c.valid_to.is_(None))
        .values(valid_to=valid_from, closed_at=now, closed_by=by)
    )
    if closed.rowcount != 1:
        raise RegistryConflictError(f"{row.kind} {row.entity_id!r} was changed meanwhile: nothing stored")


def _check_dates(conn: Connection, valid_from: date) -> None:
    """Validate the registry on ``valid_from`` and on every later date a version begins or ends."""
    later = conn.execute(
        select(registry_versions.c.valid_from)
        .where(registry_versions.c.valid_from > valid_from)
        .union(select(registry_versions.c.valid_to).where(registry_versions.c.valid_to > valid_from))
    ).scalars()
    for day in sorted({valid_from, *later}):
        try:
            registry_as_of(conn, day)
        except RegistryError as exc:
            raise RegistryChangeError("the change breaks the registry:\n" + "\n".join(exc.problems)) from None


def _apply(
    conn: Connection,
    changes: Mapping[tuple[str, str], Mapping[str, Any] | None],
    valid_from: date,
    by: str,
    reason: str,
    action: str | None = None,
) -> list[RegistryChange]:
    """Set each (kind, id) to its document (None: close it) from ``valid_from``, validate, return the changes."""
    if not by.strip() or not reason.strip():
        raise RegistryChangeError("a registry change names who makes it and why")
    now = datetime.now(UTC)
    done: list[RegistryChange] = []
    for (kind, entity_id), document in changes.items():
        if kind not in KINDS:
            raise RegistryChangeError(f"unknown kind of registry entry {kind!r}")
        row = open_row(conn, kind, entity_id)
        before = row.document if row is not None else ""
        after = _dump(document) if document is not None else ""
        if before == after:
            continue
        if document is None and row is None:
            raise RegistryChangeError(f"{kind} {entity_id!r} is not in the registry")
        if row is not None:
            _close(conn, row, valid_from, by, now)
        if document is not None:
            conn.execute(
                insert(registry_versions).values(
                    kind=kind,
                    entity_id=entity_id,
                    valid_from=valid_from,
                    document=after,
                    changed_at=now,
                    changed_by=by,
                    reason=reason,
                )
            )
        verb = action or ("registry.close" if document is None else "registry.change" if row else "registry.add")
        done.append(RegistryChange(verb, kind, entity_id, valid_from, before, after))
    if done:
        _check_dates(conn, valid_from)
    return done


def import_registry(
    conn: Connection,
    registry: Registry,
    value_added: Iterable[Mapping[str, str]],
    as_of: date,
    by: str,
    reason: str,
) -> list[RegistryChange]:
    """Make the database's registry from ``as_of`` on equal to ``registry`` and the enterprises file's
    rows: entries that differ get a new version, entries missing are closed, equal ones are untouched
    (importing the same file twice changes nothing)."""
    _month_start(as_of)
    wanted: dict[tuple[str, str], Mapping[str, Any] | None] = {}
    wanted.update(_documents(registry))
    wanted.update(value_added_documents(value_added))
    current = {
        (r.kind, r.entity_id)
        for r in conn.execute(select(registry_versions).where(registry_versions.c.valid_to.is_(None)))
    }
    for key in current - wanted.keys():
        wanted[key] = None
    return _apply(conn, wanted, as_of, by, reason)


def put_entry(
    conn: Connection, kind: str, document: Mapping[str, Any], valid_from: date, by: str, reason: str
) -> list[RegistryChange]:
    """Add an entry, or change one, from ``valid_from`` (a month's first day). ``document`` is the
    entry as the registry file writes it (for the park: ``{"version": ..., "park": {...}}``)."""
    _month_start(valid_from)
    if kind == PARK:
        entity_id = str(document.get("park", {}).get("id", ""))
    elif kind == VALUE_ADDED:
        ((_, entity_id), cells) = next(iter(value_added_documents([{k: str(v) for k, v in document.items()}]).items()))
        return _apply(conn, {(kind, entity_id): cells}, valid_from, by, reason)
    else:
        entity_id = str(document.get("id", ""))
    if not entity_id:
        raise RegistryChangeError(f"a {kind} entry needs its id")
    return _apply(conn, {(kind, entity_id): dict(document)}, valid_from, by, reason)


def close_entry(
    conn: Connection, kind: str, entity_id: str, valid_from: date, by: str, reason: str
) -> list[RegistryChange]:
    """Take an entry out of the registry from ``valid_from`` (a month's first day): its history stays."""
    _month_start(valid_from)
    return _apply(conn, {(kind, entity_id): None}, valid_from, by, reason)


def replace_meter(
    conn: Connection, meter_id: str, replacement: MeterReplacement, timezone: str, by: str, reason: str
) -> list[RegistryChange]:
    """Record a meter replacement: the old meter's final reading and the new one's first, at the instant
    of the change (and the new CT/PT multiplier, serial, if any). The meter's version from the first
    day of the replacement's month lists it, so that month and every later one bridge it exactly."""
    row = open_row(conn, METER, meter_id)
    if row is None:
        raise RegistryChangeError(f"meter {meter_id!r} is not in the registry")
    meter = Meter.model_validate(json.loads(row.document))
    local = replacement.at.astimezone(ZoneInfo(timezone))
    valid_from = local.date().replace(day=1)
    if meter.replacements and replacement.at <= meter.replacements[-1].at:
        raise RegistryChangeError(
            f"meter {meter_id!r}: a replacement at {replacement.at.isoformat()} is not after its last one"
            f" ({meter.replacements[-1].at.isoformat()})"
        )
    document = json.loads(row.document)
    document["replacements"] = [
        *document.get("replacements", []),
        replacement.model_dump(mode="json", exclude_defaults=True),
    ]
    return _apply(conn, {(METER, meter_id): document}, valid_from, by, reason, action="registry.replace_meter")


def export_texts(conn: Connection, day: date) -> tuple[str, str]:
    """The registry file (YAML) and the enterprises file (CSV) as they were on ``day``: what ``parkcarbon
    registry export`` writes and the platform downloads, so that either can be loaded as a park's files."""
    registry = registry_as_of(conn, day)
    document = registry.model_dump(mode="json", exclude_defaults=True)
    header = f"# the park registry as of {day.isoformat()}, exported from the platform's database\n"
    registry_text = header + yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(VALUE_ADDED_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(value_added_as_of(conn, day))
    return registry_text, out.getvalue()


def history(conn: Connection, kind: str | None = None, entity_id: str | None = None) -> list[dict[str, Any]]:
    """Every version (of one kind, of one entry), oldest first: the registry's own change log."""
    query = select(registry_versions).order_by(registry_versions.c.id)
    if kind is not None:
        query = query.where(registry_versions.c.kind == kind)
    if entity_id is not None:
        query = query.where(registry_versions.c.entity_id == entity_id)
    return [dict(r._mapping) for r in conn.execute(query)]
