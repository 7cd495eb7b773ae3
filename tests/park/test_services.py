"""``parkcarbon services``: up, status and down on real Mosquitto and influxd, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from parkcarbon.cli import main

pytestmark = pytest.mark.services


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_two_run_dirs_side_by_side(tmp_path, monkeypatch, capsys):
    """Two run directories come up on their own ports; down stops exactly what each up started."""
    pids = {}
    for name in ("a", "b"):
        monkeypatch.setenv("PARKCARBON_RUN_DIR", str(tmp_path / name))
        assert main(["services", "up", "--free-ports"]) == 0
        assert main(["services", "status"]) == 0
        state = json.loads((tmp_path / name / "services.json").read_text())
        pids[name] = [s["pid"] for s in state["services"]]
        assert (tmp_path / name / "credentials.json").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / name / "mosquitto" / "passwd").stat().st_mode & 0o777 == 0o600
        creds = json.loads((tmp_path / name / "credentials.json").read_text())
        passwd = (tmp_path / name / "mosquitto" / "passwd").read_text()
        assert set(creds["mqtt"]) >= {"collector-0", "collector-3", "gw-e01-1"} and "collector" not in creds["mqtt"]
        assert set(creds["influxdb"]) == {"admin", "collector", "pipeline", "dashboards"}
        assert not any(pw in passwd for pw in creds["mqtt"].values())
    assert set(pids["a"]).isdisjoint(pids["b"])
    assert all(_alive(p) for p in pids["a"] + pids["b"])

    monkeypatch.setenv("PARKCARBON_RUN_DIR", str(tmp_path / "a"))
    assert main(["services", "down"]) == 0
    assert not any(_alive(p) for p in pids["a"])
    assert all(_alive(p) for p in pids["b"])
    assert main(["services", "status"]) == 1

    monkeypatch.setenv("PARKCARBON_RUN_DIR", str(tmp_path / "b"))
    assert main(["services", "down"]) == 0
    assert not any(_alive(p) for p in pids["b"])
    assert "stopped: mosquitto, influxd" in capsys.readouterr().out


def test_port_in_use_is_a_clear_error(tmp_path, monkeypatch, capsys, ports):
    """Asking for a port that is taken names the port instead of starting half a stack."""
    monkeypatch.setenv("PARKCARBON_RUN_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("PARKCARBON_MQTT__PORT", str(ports.mqtt))
    assert main(["services", "up"]) == 1
    assert f"port {ports.mqtt} is already in use" in capsys.readouterr().err


def test_docker_configs_are_the_tested_ones():
    """docker/mosquitto holds exactly what the code that the tests run would write."""
    from park.settings import PROJECT_ROOT
    from parkcarbon.services import DOCKER_COLLECTOR_REPLICAS, docker_mosquitto_conf, mosquitto_acl

    docker = PROJECT_ROOT / "docker" / "mosquitto"
    assert (docker / "mosquitto.conf").read_text() == docker_mosquitto_conf()
    assert (docker / "acl").read_text() == mosquitto_acl(DOCKER_COLLECTOR_REPLICAS)
    assert "allow_anonymous false" in docker_mosquitto_conf()


# -- secrets are private from their first byte ----------------------------------------------------------------


class _Watch:
    """What the audit hook checks while a test watches a run directory."""

    installed = False
    busy = False
    run_dir: Path | None = None
    passwords: list[str] = []  # noqa: RUF012
    seen: list[str] = []  # noqa: RUF012


def _audit(event: str, _args: object) -> None:
    """At every audited operation (open, chmod, rename, subprocess, …) while a test watches a run
    directory: no secret file may exist with more than owner access, and the broker's password file
    may never hold a clear password. Installed once (audit hooks cannot be removed), so it still runs
    at interpreter exit, when this module's globals may already be gone."""
    watch = globals().get("_Watch")
    if watch is None or watch.run_dir is None or watch.busy:
        return
    run_dir = watch.run_dir
    _Watch.busy = True
    try:
        for path in [run_dir / "credentials.json", run_dir / "mosquitto" / "passwd", *run_dir.rglob(".*.tmp")]:
            try:
                mode = path.stat().st_mode & 0o777
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            if mode & 0o077:
                _Watch.seen.append(f"{event}: {path.name} {oct(mode)}")
            if path.name == "passwd" and any(f":{pw}\n" in text for pw in _Watch.passwords):
                _Watch.seen.append(f"{event}: clear passwords in {path.name}")
    finally:
        _Watch.busy = False


def test_secrets_are_private_from_the_first_byte(tmp_path, demo_registry):
    """`services up` with umask 000 (the widest): at no moment does credentials.json or the broker's
    password file exist with group or other access, and the password file never holds a clear
    password. Before: the password file was written in clear at 0644 (umask 022), then chmod'ed and
    hashed. The run directory and its service directories are 0700."""
    import os
    import sys

    from parkcarbon.services import LocalServices, free_ports

    if not _Watch.installed:
        sys.addaudithook(_audit)
        _Watch.installed = True
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    services = LocalServices(run_dir)
    previous = os.umask(0)
    _Watch.run_dir, _Watch.seen, _Watch.passwords = run_dir.resolve(), [], []
    try:
        services.up(demo_registry, free_ports())
        creds = json.loads((run_dir / "credentials.json").read_text())
        _Watch.passwords = [*creds["mqtt"].values()]
        services.down()
        services.up(demo_registry, free_ports())  # a second start rewrites the files
    finally:
        _Watch.run_dir = None
        os.umask(previous)
        services.down()
    assert _Watch.seen == []
    for sub in ("", "mosquitto", "influxdb", "mosquitto/data", "influxdb/data"):
        assert (run_dir / sub).stat().st_mode & 0o777 == 0o700, sub
    passwd = (run_dir / "mosquitto" / "passwd").read_text()
    assert all(line.split(":", 1)[1].startswith("$7$101$") for line in passwd.splitlines())


def test_the_ledger_file_is_private(tmp_path, monkeypatch):
    """The embedded SQLite ledger, created by the `parkcarbon` command under the usual umask 022, is
    0600: the command runs with umask 077 (before: 0644)."""
    import os

    monkeypatch.setenv("PARKCARBON_RUN_DIR", str(tmp_path / "run"))
    previous = os.umask(0o022)
    try:
        assert main(["ledger", "balance"]) == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "run" / "ledger.sqlite").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o700


def test_password_file_entries_are_what_mosquitto_passwd_writes():
    """The password file is hashed in Python before it is written, in mosquitto_passwd's format."""
    import base64
    import hashlib

    from parkcarbon.services import mosquitto_password_hash

    entry = mosquitto_password_hash("secret", salt=b"0123456789ab")
    _, kind, iterations, salt, digest = entry.split("$")
    assert (kind, iterations, base64.b64decode(salt)) == ("7", "101", b"0123456789ab")
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac("sha512", b"secret", b"0123456789ab", 101)
