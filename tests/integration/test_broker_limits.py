"""Broker limits against a hostile or faulty gateway (Mosquitto 2.0.11).

- Size: a publish over ``MESSAGE_SIZE_LIMIT`` (1 MiB + 64 KiB) is refused and never forwarded (with
  a PUBACK reason paho-mqtt rejects, so a paho gateway is disconnected); a packet over
  ``MAX_PACKET_SIZE`` (2 MiB) disconnects its client at the fixed header, before the broker allocates
  it. Before: five 50 MB publishes into the readings topic of a collector that was away were all
  acknowledged "Success" and took Mosquitto from 8 to 258 MB (resident); now it grows by 0 MB.
- Queue: what the broker holds for an absent collector replica is bounded (``max_queued_bytes``);
  past the limit Mosquitto drops what comes next for that replica silently (the gateway still gets a
  successful PUBACK) and says so in its log: the README states it, this test pins it.
"""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from park.topics import collector_user
from parkcarbon.services import MAX_PACKET_SIZE, MESSAGE_SIZE_LIMIT, load_credentials, private_dir
from tests.integration.helpers import rss_mb, standalone_broker, wait_until

pytestmark = pytest.mark.services
GATEWAY = "gw-e02-1"
TOPIC = f"carbon/v1/E02/{GATEWAY}/readings"


class Gateway:
    """One MQTT 5 connection of a gateway that records its PUBACK reason codes and disconnects; no
    automatic reconnect (paho would resend an oversized message forever)."""

    def __init__(self, port: int, password: str) -> None:
        self.acks: list[str] = []
        self.disconnected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-limits", protocol=mqtt.MQTTv5)
        self.client.username_pw_set(GATEWAY, password)
        self.client.on_publish = lambda _c, _u, _mid, reason, _p: self.acks.append(str(reason))
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert wait_until(self.client.is_connected, 10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_oversized_publishes_are_refused_without_growing_the_broker(settings, local_services):
    """With collector-0 away (its session queues), five 50 MB publishes each get their client
    disconnected and leave the broker's memory as it was; a publish just over the size limit is
    refused with "Packet too large" and the connection stays; only the small message is queued."""
    creds = load_credentials(settings.run_dir)
    replica = Replica(settings.mqtt.port, creds[collector_user(0)])
    replica.go_away()
    pid = local_services.pid("mosquitto")
    assert pid is not None
    before = rss_mb(pid)

    acks_of_big: list[str] = []
    for _ in range(5):
        gateway = Gateway(settings.mqtt.port, creds[GATEWAY])
        gateway.client.publish(TOPIC, b"x" * (50 * 1024 * 1024), qos=1)
        assert gateway.disconnected.wait(60), "a 50 MB packet did not get its client disconnected"
        acks_of_big += gateway.acks
        gateway.client.loop_stop()
    grown = rss_mb(pid) - before
    print(f"\nmosquitto grew by {grown:.1f} MB after 5 x 50 MB publishes ({before:.0f} MB before)")
    assert acks_of_big == [] and grown < 20

    # Past the size limit Mosquitto 2.0.11 answers PUBACK 0x95 "Packet too large", a reason code MQTT 5
    # does not allow in a PUBACK: paho-mqtt takes it for a malformed packet and drops the connection
    # (and would resend the message after reconnecting). Nothing of it is forwarded or queued.
    gateway = Gateway(settings.mqtt.port, creds[GATEWAY])
    gateway.client.publish(TOPIC, b"y" * (MESSAGE_SIZE_LIMIT + 1), qos=1)
    assert gateway.disconnected.wait(30)
    gateway.client.loop_stop()
    assert gateway.acks == []
    # Up to the limit a publish is accepted: the collector quarantines what is over its own 1,000,000 bytes.
    gateway = Gateway(settings.mqtt.port, creds[GATEWAY])
    try:
        gateway.client.publish(TOPIC, b"z" * MESSAGE_SIZE_LIMIT, qos=1)
        gateway.client.publish(TOPIC, b"small", qos=1)
        assert wait_until(lambda: len(gateway.acks) == 2, 30), gateway.acks
        assert gateway.acks == ["Success", "Success"]
    finally:
        gateway.close()
    assert replica.come_back(expect=2) == [b"z" * MESSAGE_SIZE_LIMIT, b"small"]
    assert MAX_PACKET_SIZE > MESSAGE_SIZE_LIMIT > 1_000_000  # the collector's own payload limit is 1,000,000


class Replica:
    """A collector replica's account subscribed directly to one gateway's readings, with a session
    the broker keeps while it is away."""

    def __init__(self, port: int, password: str, user: str = collector_user(0)) -> None:
        self.port, self.password, self.user = port, password, user
        self.received: list[bytes] = []
        subscribed = threading.Event()
        self.client = self._client(clean_start=True)
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.subscribe(TOPIC, qos=1)
        assert subscribed.wait(10)

    def _client(self, clean_start: bool) -> mqtt.Client:
        connected = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.user, protocol=mqtt.MQTTv5)
        client.username_pw_set(self.user, self.password)
        client.on_connect = lambda *_a: connected.set()
        client.on_message = lambda _c, _u, msg: self.received.append(msg.payload)
        client.connect("127.0.0.1", self.port, clean_start=clean_start, properties=_session(3600))
        client.loop_start()
        assert connected.wait(10)
        return client

    def go_away(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def come_back(self, expect: int) -> list[bytes]:
        """Reconnect to the kept session; return what was queued, then end the session."""
        self.client = self._client(clean_start=False)
        wait_until(lambda: len(self.received) >= expect, 10)
        time.sleep(1)
        self.client.disconnect(properties=_disconnect(0))
        self.client.loop_stop()
        return self.received


def test_queue_limit_drops_silently_and_says_so(tmp_path):
    """A broker of the test's own with a 100 kB queue limit: 300 messages of 1 kB for an absent
    replica are all acknowledged to the gateway, about 100 kB of them are kept, the rest dropped and
    logged."""
    accounts = {collector_user(0): "c0-pw", GATEWAY: "gw-pw"}
    directory = private_dir(tmp_path / "broker")
    with standalone_broker(directory, accounts, max_queued_bytes=100_000) as port:
        replica = Replica(port, "c0-pw")
        replica.go_away()
        gateway = Gateway(port, "gw-pw")
        try:
            for n in range(300):
                gateway.client.publish(TOPIC, f"{n:04d}".encode() + b"z" * 1020, qos=1)
            assert wait_until(lambda: len(gateway.acks) == 300, 30)
        finally:
            gateway.close()
        assert set(gateway.acks) == {"Success"}
        received = replica.come_back(expect=90)
    assert 90 <= len(received) <= 110, len(received)
    log = (directory / "mosquitto.log").read_text()
    assert f"Outgoing messages are being dropped for client {collector_user(0)}" in log


def _session(expiry_s: int) -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = expiry_s
    return properties


def _disconnect(expiry_s: int) -> Properties:
    properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = expiry_s
    return properties
