"""``parkcarbon broker sync``: the broker follows the platform's gateway credentials
(``parkcarbon/broker_sync.py``): the password file and ACL rebuilt from the database (``ledger.url``,
or the run's SQLite ledger) and the running Mosquitto reloaded by SIGHUP, never restarted.

- Local stack (default): the run directory's ``mosquitto/passwd`` and ``acl``, the broker that
  ``parkcarbon services up`` started.
- docker/: ``--config-dir`` (the broker's config volume), ``--base-passwd`` (docker/secrets' hashed
  mosquitto-passwd: the service accounts, no clear text), ``--broker-pid`` (1: the broker's container
  shares its PID namespace) and ``--owner UID:GID`` (the broker's user, which reads the files at the
  reload).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from park.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    broker = subparsers.add_parser("broker", help="keep the broker's passwords and ACL in line with the platform")
    commands = broker.add_subparsers(dest="broker_command", required=True)
    sync = commands.add_parser("sync", help="rebuild the broker's passwd and acl from the database; reload it")
    sync.add_argument("--once", action="store_true", help="sync once and exit (default: every --interval-s seconds)")
    sync.add_argument("--interval-s", type=float, default=1.0, help="seconds between polls of the database (default 1)")
    sync.add_argument("--config-dir", type=Path, help="the broker's passwd and acl directory (default RUN/mosquitto)")
    sync.add_argument(
        "--base-passwd", type=Path, help="with --broker-pid: the run's accounts as a hashed password file"
    )
    sync.add_argument("--broker-pid", type=int, help="the broker's PID to signal (default: the local stack's)")
    sync.add_argument("--owner", help="UID:GID to hand the files to (the broker's user; default: unchanged)")
    sync.set_defaults(handler=_sync)


def _sync(args: argparse.Namespace, settings: Settings) -> int:
    from ledger.db import current_revision, head_revision, make_engine
    from parkcarbon.broker_sync import Broker, sync_once, watch

    if args.interval_s <= 0:
        raise ValueError(f"--interval-s must be positive, not {args.interval_s}")
    owner = None
    if args.owner:
        uid, _, gid = args.owner.partition(":")
        if not (uid.isdigit() and gid.isdigit()):
            raise ValueError(f"--owner must be UID:GID in digits, not {args.owner!r}")
        owner = (int(uid), int(gid))
    if args.broker_pid is None:
        if args.config_dir or args.base_passwd or owner:
            raise ValueError("--config-dir, --base-passwd and --owner go with --broker-pid")
        broker = Broker.local(settings.run_dir)
    else:
        if args.config_dir is None or args.base_passwd is None:
            raise ValueError("--broker-pid needs --config-dir and --base-passwd")
        broker = Broker.by_pid(args.config_dir, args.base_passwd, args.broker_pid, owner)
    engine = make_engine(settings.ledger_url, read_only=True)
    try:
        # The first pass outside the loop: a missing run, broker or database fails at once, in one line.
        changed = sync_once(broker, engine)
        if current_revision(engine) != head_revision():
            raise ValueError("the platform's database is not at the newest schema: run `parkcarbon platform migrate`")
        if args.once:
            print("broker files changed, broker reloaded" if changed else "broker up to date")
        else:
            print(f"syncing {broker.config_dir} every {args.interval_s:g} s (Ctrl-C stops)", flush=True)
            watch(broker, engine, args.interval_s)
    finally:
        engine.dispose()
    return 0
