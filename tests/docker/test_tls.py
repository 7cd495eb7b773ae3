"""MQTT over TLS as docker/ serves it to the gateways, on this machine's Mosquitto 2.0.11: the
certificates from `parkcarbon services tls-certs` (the command docs/operations.md gives) and the TLS
listener section that ``docker_mosquitto_conf()`` writes, with local paths."""

from __future__ import annotations

import socket
import ssl
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from park.settings import PROJECT_ROOT
from parkcarbon.cli import main
from parkcarbon.services import TlsListener, free_port, private_dir
from tests.integration.helpers import standalone_broker

pytestmark = pytest.mark.services
GUIDE = (PROJECT_ROOT / "docs" / "operations.md").read_text()
GATEWAY, PASSWORD = "gw-e01-1", "gw-pw"


def _connect(port: int, ca: str | None, host: str = "localhost") -> str:
    """Connect as a gateway and publish once with QoS 1; return how it went."""
    outcome: list[str] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-tls", protocol=mqtt.MQTTv5)
    client.username_pw_set(GATEWAY, PASSWORD)
    if ca is not None:
        client.tls_set(ca_certs=ca, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.on_publish = lambda _c, _u, _m, reason, _p: (outcome.append(str(reason)), done.set())  # no subscriber: fine
    try:
        client.connect(host, port)
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {type(exc).__name__}"
    client.loop_start()
    client.publish(f"tele/{GATEWAY}/SENSOR", b"{}", qos=1)
    done.wait(5)
    client.disconnect()
    client.loop_stop()
    return outcome[0] if outcome else "no answer"


def _handshake(port: int, ca: str, host: str = "mqtt.park.example") -> str:
    """A TLS handshake with the broker, verifying its certificate for ``host`` against ``ca``."""
    context = ssl.create_default_context(cafile=ca)
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return "ok"
    except ssl.SSLError as exc:
        return type(exc).__name__


def test_gateways_reach_the_broker_over_tls_only_with_its_ca(tmp_path):
    """The documented command writes a CA and a server certificate (keys 0600); a gateway that trusts
    the CA publishes over TLS; one that does not, or speaks plain MQTT to the TLS port, is refused.
    Running the command again keeps the CA (gateways keep trusting it) and issues a new server key."""
    command = "parkcarbon services tls-certs --out docker/certs --host mqtt.park.example"
    assert command in GUIDE, f"docs/operations.md no longer says: {command}"
    certs = tmp_path / "certs"
    assert main(command.replace("docker/certs", str(certs)).split()[1:]) == 0
    for key in ("ca.key", "server.key"):
        assert (certs / key).stat().st_mode & 0o777 == 0o600
    ca_before, key_before = (certs / "ca.crt").read_bytes(), (certs / "server.key").read_bytes()
    assert main(command.replace("docker/certs", str(certs)).split()[1:]) == 0
    assert (certs / "ca.crt").read_bytes() == ca_before and (certs / "server.key").read_bytes() != key_before

    tls = TlsListener(free_port(), certs / "server.crt", certs / "server.key", certs / "ca.crt")
    other = tmp_path / "other"
    assert main(["services", "tls-certs", "--out", str(other)]) == 0
    with standalone_broker(private_dir(tmp_path / "broker"), {GATEWAY: PASSWORD}, tls=tls) as plain_port:
        accepted = "No matching subscribers"  # acknowledged (no collector subscribes in this test)
        assert _connect(tls.port, str(certs / "ca.crt")) == accepted
        assert _connect(tls.port, str(certs / "ca.crt"), host="127.0.0.1") == accepted
        assert _handshake(tls.port, str(certs / "ca.crt")) == "ok"
        assert _handshake(tls.port, str(other / "ca.crt")) == "SSLCertVerificationError"  # another CA
        assert _handshake(tls.port, str(certs / "ca.crt"), host="mqtt.elsewhere.example") == "SSLCertVerificationError"
        plain_to_tls = _connect(tls.port, None)
        assert plain_to_tls == "no answer" or plain_to_tls.startswith("refused")
        assert _connect(plain_port, None) == accepted  # the stack's internal listener
