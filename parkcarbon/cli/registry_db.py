"""``parkcarbon registry import|export``: the registry file and the enterprises file into the platform's
database as of a month's first day, and the database's registry as of any date back into files.

The YAML file stays the registry of a park without the platform; with the platform, the database is
the registry (``PARKCARBON_REGISTRY_SOURCE=database``) and these commands are the way in and out. An
import is a set of changes (``ledger.registry_store``): each entry that differs from the database's
gets a new version, each entry the file lacks is closed, and every change is a line of the audit log,
in the same transaction, by the named operator.
"""

from __future__ import annotations

import argparse
import csv
import errno
import getpass
import os
from datetime import date
from pathlib import Path

from park.settings import Settings

EXPORTED_REGISTRY = "registry.yaml"
EXPORTED_ENTERPRISES = "enterprises.csv"


def add_registry_db_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--as-of",
        type=date.fromisoformat,
        help="import: the month's first day the file applies from; export: the date (default: today)",
    )
    p.add_argument("--enterprises", type=Path, help="import: the enterprises file (default: PARKCARBON_ENTERPRISES)")
    p.add_argument("--reason", help="import: why (kept with every version and in the audit log)")
    p.add_argument("--by", help="import: the operator's name (default: cli:<user>)")
    p.add_argument("--out", type=Path, help=f"export: a directory for {EXPORTED_REGISTRY} and {EXPORTED_ENTERPRISES}")


def registry_db(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "import":
        registry_file: Path = args.file or settings.registry
        enterprises_file: Path = args.enterprises or settings.enterprises
        for path in (registry_file, enterprises_file):  # a missing file is named before a missing option
            if not path.is_file():
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        if args.as_of is None or not args.reason:
            raise ValueError("registry import needs --as-of (a month's first day) and --reason")
        changes = import_files(
            settings, registry_file, enterprises_file, args.as_of, args.by or f"cli:{getpass.getuser()}", args.reason
        )
        print(f"registry imported as of {args.as_of.isoformat()}: {len(changes)} change(s), each in the audit log")
        return 0
    _database_there(settings)
    if args.out is None:
        raise ValueError("registry export needs --out DIRECTORY")
    as_of = args.as_of or date.today()
    registry_path, enterprises_path = export_files(settings, as_of, args.out)
    print(f"registry as of {as_of.isoformat()} written to {registry_path} and {enterprises_path}")
    return 0


def import_files(
    settings: Settings, registry_file: Path, enterprises_file: Path, as_of: date, by: str, reason: str
) -> list[object]:
    """Import the two files as of ``as_of`` by ``by``; return the changes (also in the audit log)."""
    from ledger import registry_store
    from ledger.db import make_engine, migrate
    from park.registry import load_registry
    from portal.audit import Actor, record

    registry = load_registry(registry_file)
    with enterprises_file.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if settings.ledger.url is None:
        settings.run_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.ledger_url)
    try:
        migrate(engine)
        with engine.begin() as conn:
            changes = registry_store.import_registry(conn, registry, rows, as_of, by, reason)
            actor = Actor(by, "cli", None, "local")
            for change in changes:
                record(conn, actor, change.action, change.target, change.before, change.after)
    finally:
        engine.dispose()
    return list(changes)


def export_files(settings: Settings, as_of: date, out: Path) -> tuple[Path, Path]:
    """Write the registry and the enterprises file as they were on ``as_of`` into ``out``."""
    from ledger import registry_store
    from ledger.db import make_engine

    _database_there(settings)
    engine = make_engine(settings.ledger_url, read_only=True)
    try:
        with engine.connect() as conn:
            registry_text, enterprises_text = registry_store.export_texts(conn, as_of)
    finally:
        engine.dispose()
    out.mkdir(parents=True, exist_ok=True)
    registry_path, enterprises_path = out / EXPORTED_REGISTRY, out / EXPORTED_ENTERPRISES
    registry_path.write_text(registry_text, encoding="utf-8")
    enterprises_path.write_text(enterprises_text, encoding="utf-8", newline="")
    return registry_path, enterprises_path


def _database_there(settings: Settings) -> None:
    """Refuse to read an embedded database that does not exist (SQLite would create an empty one)."""
    if settings.ledger.url is None and not settings.ledger_file.is_file():
        raise ValueError(
            f"no platform database at {settings.ledger_file}: bring the registry in with `parkcarbon registry import`"
        )
