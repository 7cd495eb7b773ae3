"""The broker follows the platform: ``parkcarbon broker sync`` rebuilds Mosquitto's password file and
ACL from the database and reloads the running broker with SIGHUP, without a restart.

Who is in the password file:

- the run directory's service accounts and gateways (``RUN/credentials.json``), hashed;
- except every gateway the platform manages (a row in ``gateway_credentials``): an active one has the
  platform's ``$7$`` entry instead of its run-directory password, a revoked one is not in the file at
  all and gets an explicit ``topic deny #`` in the ACL.

What a reload does to a connected client (measured on Mosquitto 2.0.11 here): a user no longer in the
password file is disconnected at the SIGHUP (within a few ms) and its reconnection is refused ("not
authorised"); a ``deny`` rule refuses its publishes (MQTT 5: PUBACK 135 "not authorized"; MQTT 3.1.1:
dropped silently) even on a connection that stays up. Both are written, so a revoked gateway is also
refused if something else rewrites the password file from the run's credentials (``services up``,
``services rotate-password``) before the next sync puts it right.

Files are compared before they are written, so an unchanged database neither rewrites them nor
reloads the broker: each poll is one SELECT. An entry of the run's own accounts that still matches its
password is kept as it is (a new salt would change the file at every poll).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from park.mqtt_passwords import mosquitto_password_hash, password_file, read_password_file, verify_password
from park.registry import SERVICE_ACCOUNT_PREFIX
from park.topics import acl
from parkcarbon.services import LocalServices, ServiceError, load_credentials, write_private
from portal.gateways import BrokerAccounts, broker_accounts

LOG = logging.getLogger("parkcarbon.broker_sync")
POLL_INTERVAL_S = 1.0  # the longest a platform change waits for the broker (plus one SELECT and a reload)
_REPLICA = re.compile(rf"^{SERVICE_ACCOUNT_PREFIX}-(\d+)$")


@dataclass(frozen=True)
class BrokerFiles:
    passwd: str
    acl: str


@dataclass(frozen=True)
class Broker:
    """Where a broker reads its password file and ACL, where the run's own accounts come from, and how
    to make the broker reload (never a restart: that would drop every collector's connection)."""

    config_dir: Path  # holds passwd and acl
    base_entries: Callable[[str], dict[str, str]]  # the run's accounts, user → $7$ entry (given the file now)
    reload: Callable[[], object]
    owner: tuple[int, int] | None = None  # (uid, gid) the files are handed to: the broker's own user

    @classmethod
    def local(cls, run_dir: Path) -> Broker:
        """The local stack's broker (``parkcarbon services up``): the run's accounts hashed from
        ``RUN/credentials.json``, reloaded through the broker's recorded PID."""
        services = LocalServices(run_dir)

        def reload() -> None:
            if not services.reload_broker():
                raise ServiceError(f"no broker runs from {run_dir}: start it with `parkcarbon services up`")

        return cls(run_dir / "mosquitto", lambda current: hashed_accounts(load_credentials(run_dir), current), reload)

    @classmethod
    def by_pid(cls, config_dir: Path, base_passwd: Path, pid: int, owner: tuple[int, int] | None = None) -> Broker:
        """A broker known by its PID, the run's accounts from an already hashed password file (docker/:
        secrets/mosquitto-passwd, so no clear-text password reaches the sync; the broker is PID 1 of the
        PID namespace the sync's container shares with it)."""
        return cls(
            config_dir,
            lambda _current: read_password_file(base_passwd.read_text()),
            lambda: os.kill(pid, signal.SIGHUP),
            owner,
        )


def hashed_accounts(passwords: dict[str, str], current_passwd: str = "") -> dict[str, str]:
    """The run's accounts (user → password) as password-file entries; an entry of ``current_passwd`` (the
    file on disk) that still matches its password is kept, so an unchanged run gives an unchanged file."""
    current = read_password_file(current_passwd)
    return {
        user: current[user] if verify_password(password, current.get(user, "")) else mosquitto_password_hash(password)
        for user, password in passwords.items()
    }


def collector_replicas(accounts: Iterable[str]) -> int:
    """How many collector replicas the run's accounts provide (collector-0 … collector-(N-1))."""
    numbers = [int(m[1]) for m in map(_REPLICA.match, accounts) if m is not None]
    return max(numbers) + 1 if numbers else 0


def render(base: dict[str, str], platform: BrokerAccounts) -> BrokerFiles:
    """The password file and ACL for the run's accounts (``base``: user → entry) and the platform's
    gateways: a gateway the platform manages takes the platform's entry, or leaves the file if revoked."""
    managed = set(platform.active) | platform.revoked
    entries = {user: entry for user, entry in base.items() if user not in managed}
    entries.update(platform.active)
    lines = [acl(collector_replicas(base)).rstrip("\n")]
    if platform.revoked:
        lines += ["", "# revoked on the platform (portal/gateways.py): refused even on a connection still open"]
        for gateway_id in sorted(platform.revoked):
            lines += [f"user {gateway_id}", "topic deny #"]
    return BrokerFiles(password_file(entries), "\n".join(lines) + "\n")


def sync_once(broker: Broker, engine: Engine) -> bool:
    """Bring the broker's ``passwd`` and ``acl`` in line with the database; if either changed, write it
    (atomically, 0600, handed to the broker's user if one is named) and reload the broker. Returns
    whether anything changed."""
    passwd_path, acl_path = broker.config_dir / "passwd", broker.config_dir / "acl"
    current_passwd = passwd_path.read_text() if passwd_path.exists() else ""
    current_acl = acl_path.read_text() if acl_path.exists() else ""
    base = broker.base_entries(current_passwd)
    with engine.connect() as conn:
        platform = broker_accounts(conn)
    wanted = render(base, platform)
    if (wanted.passwd, wanted.acl) == (current_passwd, current_acl):
        return False
    # The ACL first: a revoked gateway is denied before it leaves the password file.
    for path, text, current in ((acl_path, wanted.acl, current_acl), (passwd_path, wanted.passwd, current_passwd)):
        if text != current:
            write_private(path, text)
            if broker.owner is not None:
                os.chown(path, *broker.owner)
    broker.reload()
    LOG.info(
        "broker files rewritten: %d active and %d revoked gateways from the platform",
        len(platform.active),
        len(platform.revoked),
    )
    return True


def watch(
    broker: Broker, engine: Engine, interval_s: float = POLL_INTERVAL_S, stop: threading.Event | None = None
) -> None:
    """Sync every ``interval_s`` seconds until ``stop`` is set (or forever). A database that cannot be
    read for a while is logged and tried again at the next poll; the broker keeps its last files."""
    stop = stop or threading.Event()
    while not stop.is_set():
        started = time.monotonic()
        try:
            sync_once(broker, engine)
        except SQLAlchemyError as exc:
            LOG.warning("the platform's database could not be read; the broker keeps its files: %s", exc)
        stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
