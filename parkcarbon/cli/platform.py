"""``parkcarbon platform``: the management platform (碳积分管理平台) on the ledger's database.

- ``serve [--host H] [--port N]``: migrate the database to the newest schema, then serve the web
  application with uvicorn. It reads InfluxDB with the run directory's read-only account
  (``dashboards``, READ) unless an account is configured.
- ``create-admin --username U``: the first (or another) park admin; prints a generated password once.
  There is no default password anywhere.
- ``migrate``: bring the database to the newest schema (the ledger's and the platform's tables).
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from typing import TYPE_CHECKING, Any

from park.settings import Settings
from parkcarbon.platform_setup import DEMO_LOGINS, ensure_demo_logins, prepare_database

if TYPE_CHECKING:
    from fastapi import FastAPI


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    platform = subparsers.add_parser("platform", help="the web platform for the park office and the enterprises")
    commands = platform.add_subparsers(dest="platform_command", required=True)

    serve = commands.add_parser("serve", help="serve the platform (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies whose X-Forwarded-For/-Proto are trusted (the TLS proxy in front; default 127.0.0.1)",
    )
    serve.add_argument(
        "--workers", type=int, default=1, help="processes serving requests (default 1; one per core is the most useful)"
    )
    serve.set_defaults(handler=_serve)

    admin = commands.add_parser("create-admin", help="create a park admin; prints its generated password once")
    admin.add_argument("--username", required=True, help="3 to 64 characters: a-z, 0-9, ., _, -")
    admin.set_defaults(handler=_create_admin)

    demo = commands.add_parser(
        "demo-users",
        help=f"logins for the demo park: a park admin and an admin per enterprise, passwords into RUN/{DEMO_LOGINS}",
    )
    demo.set_defaults(handler=_demo_users)

    grant = commands.add_parser(
        "grant-role",
        help="PostgreSQL: make ROLE the application's login (the ledger's rights and the platform's, nothing more)",
    )
    grant.add_argument("--role", required=True, help="a lower-case SQL name, not the tables' owner")
    grant.add_argument(
        "--password-env", help="name of an environment variable holding the role's new password (none: unchanged)"
    )
    grant.set_defaults(handler=_grant_role)

    migrate = commands.add_parser("migrate", help="bring the database to the newest schema")
    migrate.set_defaults(handler=_migrate)


def read_only_settings(settings: Settings) -> Settings:
    """``settings`` with the run directory's read-only InfluxDB account, unless one is configured."""
    from parkcarbon.runtime import settings_for_run_dir

    if settings.influx.username is not None and settings.influx.username != "pipeline":
        return settings
    unset = settings.model_copy(
        update={"influx": settings.influx.model_copy(update={"username": None, "password": None})}
    )
    return settings_for_run_dir(unset, "dashboards")


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    prepare_database(settings)
    print("the platform's database is at the newest schema")
    return 0


def _create_admin(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.db import make_engine
    from park.registry import load_registry
    from portal import auth
    from portal.audit import Actor

    url = prepare_database(settings)
    registry = load_registry(settings.registry)
    password = auth.generate_password()
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            by = Actor(f"cli:{getpass.getuser()}", "cli", None, "local")
            auth.create_user(
                conn, args.username, "park_admin", None, password, by, {e.id for e in registry.enterprises}
            )
    except auth.AuthError as exc:
        print(f"parkcarbon platform create-admin: refused: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"park admin {args.username} created; password (shown once, change it after the first login):")
    print(password)
    return 0


def app_from_environment() -> FastAPI:
    """The application as each of several uvicorn workers makes it: from the settings that
    :func:`_serve` exported into the environment (the read-only InfluxDB account included)."""
    from portal.app import create_app
    from portal.config import PlatformConfig

    return create_app(PlatformConfig.from_settings(Settings()))


def _grant_role(args: argparse.Namespace, settings: Settings) -> int:
    """Run as the tables' owner (``PARKCARBON_LEDGER__URL``), after each migration."""
    import os

    from ledger.db import grant_app_role, make_engine
    from portal.db import grant_platform_role

    url = prepare_database(settings)
    password = os.environ.get(args.password_env) if args.password_env else None
    if args.password_env and not password:
        print(f"parkcarbon platform grant-role: {args.password_env} is not set", file=sys.stderr)
        return 1
    engine = make_engine(url)
    try:
        grant_app_role(engine, args.role, password)
        grant_platform_role(engine, args.role)
    except ValueError as exc:
        print(f"parkcarbon platform grant-role: refused: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"{args.role} may read and append to the ledger and run the platform; it owns nothing")
    return 0


def _demo_users(_args: argparse.Namespace, settings: Settings) -> int:
    logins = ensure_demo_logins(settings)
    print(f"{logins.made} new logins; all demo logins and their passwords are in {logins.path} (readable by you only)")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from parkcarbon.cli.errors import require_influx
    from parkcarbon.runtime import export_settings
    from portal.app import create_app
    from portal.config import PlatformConfig

    prepare_database(settings)
    reader = read_only_settings(settings)
    require_influx(reader)
    config = PlatformConfig.from_settings(reader)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"parkcarbon platform on http://{args.host}:{args.port}/ (database {_redacted(config.ledger_url)})")
    common: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "proxy_headers": True,
        "forwarded_allow_ips": args.forwarded_allow_ips,
        "server_header": False,
        "log_level": "info",
    }
    if args.workers > 1:
        export_settings(reader)
        uvicorn.run("parkcarbon.cli.platform:app_from_environment", factory=True, workers=args.workers, **common)
    else:
        uvicorn.run(create_app(config), **common)
    return 0


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
