"""The broker follows the platform (parkcarbon/broker_sync.py) on the session's real Mosquitto: a
gateway connects with the password the platform issued (only its $7$ hash is stored), a rotation
refuses the old password and accepts the new, a revocation disconnects the gateway at the reload and
refuses it from then on, and the collector stores nothing more from it. Every test puts the broker's
files back as the run directory has them (a sync against a database without gateway credentials)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ledger.db import make_engine, migrate
from park.mqtt_passwords import verify_password
from park.registry import Registry
from park.settings import Settings
from park.topics import acl
from parkcarbon.broker_sync import Broker, hashed_accounts, render, sync_once, watch
from parkcarbon.services import LocalServices, load_credentials, mosquitto_password_file
from portal import gateways
from portal.audit import Actor
from tests.integration.gateway_client import GatewayClient
from tests.integration.helpers import count_readings, running_collectors, wait_for_count, wait_until, with_own_group

pytestmark = pytest.mark.services

ADMIN = Actor("olga-admin", "park_admin", None, "10.0.0.1")
GATEWAY, ENTERPRISE, METER = "gw-e01-1", "E01", "E01-S-FAB"  # a native gateway of the demo registry


@pytest.fixture
def platform_db(tmp_path: Path, run_dir: Path, local_services: LocalServices) -> Iterator[Engine]:
    """An empty, migrated platform database; afterwards the broker's files are the run directory's again."""
    engine = make_engine(f"sqlite:///{tmp_path / 'platform.sqlite'}")
    migrate(engine)
    yield engine
    empty = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    migrate(empty)
    sync_once(Broker.local(run_dir), empty)
    empty.dispose()
    engine.dispose()


def _client(settings: Settings, password: str) -> GatewayClient:
    return GatewayClient(settings.mqtt.host, settings.mqtt.port, GATEWAY, password)


def test_issued_hash_lets_the_gateway_in_and_rotation_refuses_the_old_password(
    settings, run_dir, platform_db, demo_registry: Registry
):
    with platform_db.begin() as conn:
        first = gateways.issue(conn, ADMIN, demo_registry, GATEWAY, datetime.now(UTC))
    assert sync_once(Broker.local(run_dir), platform_db) is True
    assert sync_once(Broker.local(run_dir), platform_db) is False  # nothing changed: no rewrite, no reload
    passwd = (run_dir / "mosquitto" / "passwd").read_text()
    assert first not in passwd and f"{GATEWAY}:$7$101$" in passwd
    assert (run_dir / "mosquitto" / "passwd").stat().st_mode & 0o777 == 0o600
    # The run directory's own password of that gateway no longer opens the broker: the platform's does.
    run_password = load_credentials(run_dir)[GATEWAY]
    assert _client(settings, run_password).connect() == "Not authorized"
    connected = _client(settings, first)
    try:
        assert connected.connect() == "Success"
        with platform_db.begin() as conn:
            second = gateways.rotate(conn, ADMIN, demo_registry, GATEWAY, 1, datetime.now(UTC))
        assert sync_once(Broker.local(run_dir), platform_db) is True
        # What the connection opened with the old password experiences at the reload (measured): it is
        # closed by the broker, as the entry it authenticated with is gone.
        assert connected.wait_disconnected(5.0)
    finally:
        connected.close()
    assert _client(settings, first).connect() == "Not authorized"
    fresh = _client(settings, second)
    try:
        assert fresh.connect() == "Success"
    finally:
        fresh.close()


def test_revoked_gateway_is_disconnected_and_refused_and_nothing_more_is_stored(
    settings, store, run_dir, platform_db, demo_registry: Registry, local_services: LocalServices
):
    """With the watcher polling every second: the gateway's reading is stored; the revocation closes its
    connection within about a second, its reconnection is refused and the collector stores nothing more.
    A password file rewritten from the run's credentials (``services rotate-password`` does that) still
    does not let it publish: the ACL denies it."""
    with platform_db.begin() as conn:
        password = gateways.issue(conn, ADMIN, demo_registry, GATEWAY, datetime.now(UTC))
    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(Broker.local(run_dir), platform_db, 1.0, stop), daemon=True)
    watcher.start()
    gateway = _client(settings, password)
    try:
        assert wait_until(lambda: verify_password(password, _entry(run_dir)), 5)
        with running_collectors(with_own_group(settings), demo_registry):
            assert gateway.connect() == "Success"
            assert gateway.publish_reading(ENTERPRISE, METER, "2026-02-01T00:00:00+08:00", 100.0, 1) == "Success"
            assert wait_for_count(store, 1, 30) == 1
            with platform_db.begin() as conn:
                gateways.revoke(conn, ADMIN, demo_registry, GATEWAY, datetime.now(UTC))
            revoked_at = time.monotonic()
            assert gateway.wait_disconnected(5.0)
            delay_s = gateway.disconnected_at - revoked_at
            print(f"revoke → disconnected: {delay_s:.3f} s")
            assert delay_s < 2.5  # one poll (1 s) + one SELECT + the reload
            again = _client(settings, password)
            try:
                assert again.connect() == "Not authorized"
            finally:
                again.close()
            # Something rewrites the password file from the run's credentials (the gateway's run password
            # is back in it) and reloads the broker, before the watcher's next poll: the ACL still refuses.
            stop.set()
            watcher.join(5)
            accounts = load_credentials(run_dir)
            (run_dir / "mosquitto" / "passwd").write_text(mosquitto_password_file(accounts))
            assert local_services.reload_broker()
            sneaky = _client(settings, accounts[GATEWAY])
            try:
                assert sneaky.connect() == "Success"
                assert (
                    sneaky.publish_reading(ENTERPRISE, METER, "2026-02-01T00:15:00+08:00", 101.0, 2) == "Not authorized"
                )
            finally:
                sneaky.close()
            time.sleep(2.0)  # what the collector would have stored by now
            assert count_readings(store) == 1
    finally:
        stop.set()
        gateway.close()
        watcher.join(5)


def _entry(run_dir: Path) -> str:
    lines = (run_dir / "mosquitto" / "passwd").read_text().splitlines()
    return next((line.split(":", 1)[1] for line in lines if line.startswith(f"{GATEWAY}:")), "")


def test_render_keeps_run_entries_and_lists_revoked_gateways_in_the_acl():
    """Pure: a run account whose entry still matches keeps it (no new salt each poll); a managed gateway
    takes the platform's entry or, revoked, leaves the file and gets ``topic deny #``."""
    accounts = {"collector-0": "c0", "collector-1": "c1", "gw-a": "pa", "gw-b": "pb", "gw-c": "pc"}
    base = hashed_accounts(accounts)
    assert all(verify_password(accounts[user], entry) for user, entry in base.items())
    first = render(base, gateways.BrokerAccounts({}, frozenset()))
    assert hashed_accounts(accounts, first.passwd) == base  # the same entries, salts and all
    platform = gateways.BrokerAccounts({"gw-a": "$7$101$AAAA$BBBB"}, frozenset({"gw-b"}))
    files = render(base, platform)
    users = [line.split(":")[0] for line in files.passwd.splitlines()]
    assert users == ["collector-0", "collector-1", "gw-a", "gw-c"]
    assert "gw-a:$7$101$AAAA$BBBB\n" in files.passwd
    assert files.acl.endswith("user gw-b\ntopic deny #\n")
    assert "user collector-1\n" in files.acl and "user collector-2\n" not in files.acl
    assert first.acl == acl(2)  # no revoked gateway: exactly the ACL ``services up`` writes


def test_the_command_syncs_once_and_then_finds_nothing_to_do(
    run_dir, platform_db, demo_registry: Registry, tmp_path, monkeypatch, capsys
):
    """``parkcarbon broker sync --once`` on the run directory and the platform's database; bad options
    are one line and exit 1."""
    from parkcarbon.cli import main

    with platform_db.begin() as conn:
        gateways.issue(conn, ADMIN, demo_registry, GATEWAY, datetime.now(UTC))
    monkeypatch.setenv("PARKCARBON_RUN_DIR", str(run_dir))
    monkeypatch.setenv("PARKCARBON_LEDGER__URL", str(platform_db.url))
    assert main(["broker", "sync", "--once"]) == 0
    assert main(["broker", "sync", "--once"]) == 0
    assert capsys.readouterr().out.splitlines() == ["broker files changed, broker reloaded", "broker up to date"]
    assert main(["broker", "sync", "--once", "--broker-pid", "1", "--owner", "mosquitto"]) == 1
    assert "--owner must be UID:GID" in capsys.readouterr().err
    assert main(["broker", "sync", "--once", "--owner", "0:0"]) == 1
    assert "go with --broker-pid" in capsys.readouterr().err
    assert main(["broker", "sync", "--once", "--broker-pid", "1"]) == 1
    assert "needs --config-dir and --base-passwd" in capsys.readouterr().err


def test_docker_mode_reads_hashed_accounts_signals_the_pid_and_hands_over_the_files(
    settings, run_dir, platform_db, demo_registry: Registry, local_services: LocalServices, tmp_path
):
    """``Broker.by_pid`` as docker/ runs it: the service accounts from a hashed password file (no clear
    text), the files handed to the named owner, the broker reloaded by its PID."""
    base = tmp_path / "mosquitto-passwd"
    base.write_text(mosquitto_password_file(load_credentials(run_dir)))
    pid = local_services.pid("mosquitto")
    assert pid is not None
    broker = Broker.by_pid(run_dir / "mosquitto", base, pid, (os.getuid(), os.getgid()))
    with platform_db.begin() as conn:
        password = gateways.issue(conn, ADMIN, demo_registry, GATEWAY, datetime.now(UTC))
    assert sync_once(broker, platform_db) is True
    passwd = (run_dir / "mosquitto" / "passwd").read_text()
    for line in base.read_text().splitlines():  # every service account's entry exactly as given
        assert line in passwd or line.startswith(f"{GATEWAY}:")
    assert (run_dir / "mosquitto" / "passwd").stat().st_uid == os.getuid()
    client = _client(settings, password)
    try:
        assert client.connect() == "Success"
    finally:
        client.close()
