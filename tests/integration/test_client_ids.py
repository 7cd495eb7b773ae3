"""Client ids are bound to broker accounts: a gateway cannot take a collector replica's client id, so
it can neither kick the replica off nor take (and with a clean start discard) its queued session.

Before: the collector's client id was a setting (``parkcarbon-collector-0``) any account could present.
A gateway connecting with it every second kicked the collector off 3 times in 5 s, and a clean start
under it discarded the 5 readings queued for the collector while it was away: 0 of 5 stored.
Now the broker takes each account's user name as its client id (``use_username_as_clientid``), and a
replica's account is ``collector-N``: 0 kicks, 5 of 5 stored.
"""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collectors.service import Collector
from park.registry import RegistryError, is_service_account, parse_registry
from park.topics import collector_user
from parkcarbon.services import load_credentials
from tests.integration.helpers import count_readings, end_sessions, wait_until, with_own_group

pytestmark = pytest.mark.services

ATTACKER, VICTIM = "gw-e01-1", "gw-e02-1"


def _reading(hour: int) -> bytes:
    reading = {
        "meter": "E02-M-GRID",
        "ts": f"2026-03-01T{hour:02d}:00:00+08:00",
        "register": "active_energy_import",
        "value": 1000.0 + hour,
        "unit": "kWh",
    }
    return json.dumps({"gateway": VICTIM, "seq": hour, "readings": [reading]}).encode()


def _connect(client_id: str, user: str, password: str, port: int) -> tuple[mqtt.Client, str]:
    """Connect with a clean start under ``client_id``; return the client and the id the broker assigned."""
    answer: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, password)

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, props: object) -> None:
        assigned = getattr(props, "AssignedClientIdentifier", None)
        answer.append(assigned or client_id)

    client.on_connect = on_connect
    client.connect("127.0.0.1", port, clean_start=True)
    client.loop_start()
    assert wait_until(lambda: bool(answer), 10)
    return client, answer[0]


def test_a_gateway_cannot_take_a_collectors_client_id(settings, store, demo_registry):
    """A gateway presenting the collector's client id, once a second: the collector is never kicked
    off, and the readings queued for it while it was away are all stored when it returns."""
    settings = with_own_group(settings)
    settings = settings.model_copy(update={"collector": settings.collector.model_copy(update={"share_group": None})})
    creds = load_credentials(settings.run_dir)
    port = settings.mqtt.port
    end_sessions(settings, 1)

    collector = Collector(settings, demo_registry, 0)
    collector.start()
    assert collector.client_id == collector_user(0)
    kicks: list[float] = []
    collector.client.on_disconnect = lambda *_a: kicks.append(time.monotonic())
    assigned = set()
    for _ in range(5):
        attacker, as_id = _connect(collector.client_id, ATTACKER, creds[ATTACKER], port)
        assigned.add(as_id)
        attacker.disconnect()
        attacker.loop_stop()
        time.sleep(1)
    print(f"\ncollector kicked off {len(kicks)} times in 5 s")
    assert kicks == [], f"a gateway kicked the collector off {len(kicks)} times"
    assert wait_until(collector.client.is_connected, 10)
    collector.stop()  # away, its session kept: the broker queues for it

    victim, _ = _connect("anything", VICTIM, creds[VICTIM], port)
    for hour in range(5):
        victim.publish(f"carbon/v1/E02/{VICTIM}/readings", _reading(hour), qos=1).wait_for_publish(5)
    victim.disconnect()
    victim.loop_stop()
    attacker, _ = _connect(collector.client_id, ATTACKER, creds[ATTACKER], port)  # a clean start "as the collector"
    attacker.disconnect()
    attacker.loop_stop()

    returned = Collector(settings, demo_registry, 0)
    returned.start()
    try:
        wait_until(lambda: count_readings(store) >= 5, 15)
        stored = count_readings(store)
    finally:
        returned.stop(end_session=True)
    print(f"stored {stored} of 5 readings queued for the collector")
    assert stored == 5


def test_two_connections_of_one_gateway_share_one_id(settings, demo_registry):
    """Whatever client id a gateway sends, the broker uses its user name: a second connection of the
    same account replaces the first (a gateway can only ever kick itself)."""
    creds = load_credentials(settings.run_dir)
    first_gone = threading.Event()
    first = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="one", protocol=mqtt.MQTTv5)
    first.username_pw_set(ATTACKER, creds[ATTACKER])
    first.on_disconnect = lambda *_a: first_gone.set()
    first.connect("127.0.0.1", settings.mqtt.port)
    first.loop_start()
    assert wait_until(first.is_connected, 10)
    second, _ = _connect("two", ATTACKER, creds[ATTACKER], settings.mqtt.port)
    try:
        assert first_gone.wait(10), "the second connection of the same account did not replace the first"
    finally:
        first.loop_stop()
        second.disconnect()
        second.loop_stop()


def test_registry_refuses_a_gateway_named_like_a_service_account(demo_registry):
    """`collector`, `collector-0`, `Collector-12` are the collector replicas' accounts: no gateway may be
    named so (it would log in as that account's client id); other names with the word pass."""
    data = demo_registry.model_dump(mode="json")
    for name in ("collector", "collector-0", "Collector-12"):
        changed = json.loads(json.dumps(data))
        changed["gateways"][0]["id"] = name
        for meter in changed["meters"]:
            if meter["gateway"] == data["gateways"][0]["id"]:
                meter["gateway"] = name
        with pytest.raises(RegistryError, match="reserved for a collector's broker account"):
            parse_registry(changed, "registry.yaml")
    assert all(is_service_account(collector_user(n)) for n in range(64))
    assert not any(is_service_account(name) for name in ("collector-a", "gw-collector-0", "collectors", "collector-"))
