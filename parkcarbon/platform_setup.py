"""Setting the platform up on a run: its database migrated, and logins for the demo park.

Used by ``parkcarbon platform`` and by ``parkcarbon demo`` (which ends with the logins written, so a
person can open the platform on the demo park straight away).
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from pathlib import Path

from park.settings import Settings

DEMO_LOGINS = "platform-logins.json"  # in the run directory, mode 0600, like the broker's credentials


def prepare_database(settings: Settings) -> str:
    """Check the registry (the platform knows enterprises from it), migrate the database at
    ``settings.ledger_url``; return the URL."""
    from ledger.db import make_engine, migrate
    from park.registry import load_registry

    load_registry(settings.registry)
    if settings.ledger.url is None:
        settings.run_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.ledger_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()
    return settings.ledger_url


@dataclass(frozen=True)
class DemoLogins:
    path: Path  # RUN/platform-logins.json: every demo login and its password
    made: int  # new this time
    usernames: list[str]


def ensure_demo_logins(settings: Settings) -> DemoLogins:
    """A park admin (``park-admin``), a park viewer (``park-viewer``) and an enterprise admin per
    enterprise (``<id>-admin``, lower case) with generated passwords, written to RUN/platform-logins.json
    (0600). Users that exist already keep their password; the file keeps what it had for them."""
    from ledger.db import make_engine
    from park.registry import load_registry
    from parkcarbon.services import write_private
    from portal import auth
    from portal.audit import Actor

    url = prepare_database(settings)
    registry = load_registry(settings.registry)
    path = settings.run_dir / DEMO_LOGINS
    logins: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}
    wanted = [("park-admin", "park_admin", None), ("park-viewer", "park_viewer", None)] + [
        (f"{e.id.lower()}-admin", "enterprise_admin", e.id) for e in registry.enterprises
    ]
    by = Actor(f"cli:{getpass.getuser()}", "cli", None, "local")
    engine = make_engine(url)
    made = 0
    try:
        with engine.begin() as conn:
            for username, role, enterprise in wanted:
                if auth.find_user(conn, username) is not None:
                    continue
                password = auth.generate_password()
                auth.create_user(conn, username, role, enterprise, password, by, {e.id for e in registry.enterprises})
                logins[username] = {"password": password, "role": role, "enterprise": enterprise or ""}
                made += 1
    finally:
        engine.dispose()
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    write_private(path, json.dumps(logins, indent=2, ensure_ascii=False) + "\n")
    return DemoLogins(path, made, [w[0] for w in wanted])
