"""The commands of docs/operations.md that can run here, run as the guide writes them (each test
first checks that the guide still says exactly that)."""

from __future__ import annotations

import json
import subprocess
import time

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from park.lineprotocol import Point
from park.settings import DEMO_REGISTRY, PROJECT_ROOT
from park.store import InfluxStore
from parkcarbon.cli import main
from parkcarbon.services import load_credentials
from tests.integration.helpers import wait_until

GUIDE = (PROJECT_ROOT / "docs" / "operations.md").read_text()


def in_guide(command: str) -> str:
    assert command in GUIDE, f"docs/operations.md no longer says: {command}"
    return command


def connects(port: int, user: str, password: str) -> bool:
    """True if the broker accepts ``user`` with ``password`` (MQTT 5 CONNACK)."""
    result: list[bool] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-auth-{time.monotonic_ns()}", protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(not reason.is_failure)
    client.connect("127.0.0.1", port)
    client.loop_start()
    wait_until(lambda: bool(result), 10.0)
    client.disconnect()
    client.loop_stop()
    return bool(result and result[0])


@pytest.mark.services
def test_backup_and_restore_influxdb(settings, store, ports, tmp_path, local_services, monkeypatch):
    """`influxd backup -portable` of the database and `influxd restore -portable` into a new one (the
    RPC port needs no account), then the roles' grants on it with `services up`."""
    base_ns = 1_700_000_000 * 10**9
    store.write(
        [Point("activity_monthly", {"enterprise": "E01"}, {"quantity": float(i)}, base_ns + i) for i in range(50)]
    )
    database, backup = settings.influx.database, str(tmp_path / "backup")
    rpc = f"127.0.0.1:{ports.influx_rpc}"
    restored = f"{database}_restored"
    backup_cmd = in_guide("influxd backup -portable -database carbon -host 127.0.0.1:$RPC_PORT")
    restore_cmd = in_guide("influxd restore -portable -db carbon -newdb carbon_restored -host 127.0.0.1:$RPC_PORT")
    for command in (
        backup_cmd.replace("-database carbon", f"-database {database}"),
        restore_cmd.replace("-db carbon", f"-db {database}").replace("carbon_restored", restored),
    ):
        argv = [*command.replace("127.0.0.1:$RPC_PORT", rpc).split(), backup]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
    grant = in_guide("PARKCARBON_INFLUX__DATABASE=carbon_restored parkcarbon services up")
    variable, command = grant.split(" ", 1)
    monkeypatch.setenv("PARKCARBON_RUN_DIR", str(settings.run_dir))
    monkeypatch.setenv(variable.split("=")[0], restored)
    assert main(command.split()[1:]) == 0
    try:
        with InfluxStore(settings.influx.model_copy(update={"database": restored})) as copy:
            assert copy.query('SELECT sum("quantity") FROM "activity_monthly"')["sum"].iloc[0] == sum(range(50))
    finally:
        local_services.drop_database(restored)


@pytest.mark.services
def test_rotate_a_gateway_password(tmp_path, monkeypatch, capsys):
    """The old password is refused once the broker reloaded; the new one is accepted."""
    monkeypatch.setenv("PARKCARBON_RUN_DIR", str(tmp_path / "run"))
    assert main(["services", "up", "--free-ports"]) == 0
    try:
        port = json.loads((tmp_path / "run" / "services.json").read_text())["ports"]["mqtt"]
        old = load_credentials(tmp_path / "run")["gw-e01-1"]
        assert connects(port, "gw-e01-1", old)
        assert main(in_guide("parkcarbon services rotate-password --user gw-e01-1").split()[1:]) == 0
        new = load_credentials(tmp_path / "run")["gw-e01-1"]
        assert new != old
        # The broker re-reads its password file on SIGHUP: the old password is refused once it has.
        assert wait_until(lambda: not connects(port, "gw-e01-1", old), 10)
        assert connects(port, "gw-e01-1", new)
        assert main(["services", "rotate-password", "--user", "gw-nope"]) == 1
        assert "no broker user 'gw-nope'" in capsys.readouterr().err
    finally:
        main(["services", "down"])


def test_docker_secrets(tmp_path):
    """One broker password per gateway and collector replica, one InfluxDB password per account, the
    broker's password file hashed, files readable by their owner only; a second run keeps them."""
    command = in_guide("parkcarbon services docker-secrets --out docker/secrets")
    out = tmp_path / "secrets"
    assert main(command.replace("docker/secrets", str(out)).split()[1:]) == 0
    creds = json.loads((out / "credentials.json").read_text())
    gateways = {g["id"] for g in yaml.safe_load(DEMO_REGISTRY.read_text())["gateways"]}
    assert set(creds["mqtt"]) == gateways | {"collector-0", "collector-1"}
    assert set(creds["influxdb"]) == {"admin", "collector", "pipeline", "dashboards"}
    hashed = dict(line.split(":", 1) for line in (out / "mosquitto-passwd").read_text().splitlines())
    assert set(hashed) == set(creds["mqtt"]) and all(h.startswith("$7$101$") for h in hashed.values())
    assert json.loads((out / "gateways.json").read_text()) == {g: creds["mqtt"][g] for g in gateways}
    for name in ("credentials.json", "mosquitto-passwd", "gateways.json", "compose.env"):
        assert (out / name).stat().st_mode & 0o777 == 0o600, name
    assert main(command.replace("docker/secrets", str(out)).split()[1:]) == 0
    assert json.loads((out / "credentials.json").read_text()) == creds


def test_registry_check_after_adding_a_meter(tmp_path, capsys):
    """A meter added with a workshop of another enterprise is refused, naming the entry and field."""
    data = yaml.safe_load(DEMO_REGISTRY.read_text())
    meter = dict(data["meters"][0], id="E01-M-NEW", workshop="E02-WS-ARR")
    data["meters"].append(meter)
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    command = in_guide("parkcarbon registry check park/registry.yaml")
    assert main(command.replace("park/registry.yaml", str(path)).split()[1:]) == 1
    err = capsys.readouterr().err
    assert "E01-M-NEW" in err and "workshop" in err
    data["meters"][-1]["workshop"] = None
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    assert main(command.replace("park/registry.yaml", str(path)).split()[1:]) == 0
    assert "60 meters" in capsys.readouterr().out
