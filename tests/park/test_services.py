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
        assert "secret" not in (tmp_path / name / "mosquitto" / "passwd").read_text()
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
    from parkcarbon.services import docker_mosquitto_conf, mosquitto_acl

    docker = PROJECT_ROOT / "docker" / "mosquitto"
    assert (docker / "mosquitto.conf").read_text() == docker_mosquitto_conf()
    assert (docker / "acl").read_text() == mosquitto_acl()
    assert "allow_anonymous false" in docker_mosquitto_conf() and "max_queued_messages 0" in docker_mosquitto_conf()
