"""Hostile and faulty gateways against a real Mosquitto, a real collector and a real InfluxDB.

- Generated messages of every format and the status topic (``tests/collectors/hostile.py``), good
  readings interleaved with hostile ones, redeliveries and conflicting rewrites: the collector stays
  healthy, every good reading is stored once with its exact value, every fault is quarantined with a
  reason, every conflict keeps the stored value.
- The review's single messages: each poison payload is quarantined and acknowledged, the reading
  after it is stored, and a restarted collector gets nothing redelivered.
- One 0.8 MB message of 100,000 bad readings: 101 quarantine rows, and the reading after it is
  stored at once.
- A rewrite of a stored reading with another value: quarantined as a conflict, the value kept.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collectors.budget import MAX_ROWS_PER_MESSAGE
from collectors.model import Reason
from collectors.service import Collector
from park.registry import GatewayFormat, Registry
from park.settings import Settings
from park.store import InfluxStore
from park.topics import layout
from parkcarbon.services import load_credentials
from tests.collectors.hostile import Case, Generator, Good, RandomPick, Slots
from tests.integration.helpers import count_readings, end_sessions, running_collectors, wait_until, with_own_group

pytestmark = pytest.mark.services
MESSAGES = 300
REASONS = {r.value for r in Reason}


@contextmanager
def gateway_clients(settings: Settings, registry: Registry) -> Iterator[dict[str, mqtt.Client]]:
    """One connected MQTT client per registry gateway, logged in as the gateway (the broker's ACL
    lets each publish in its own topics only)."""
    credentials = load_credentials(settings.run_dir)
    clients: dict[str, mqtt.Client] = {}
    try:
        for gateway in registry.gateways:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-hostile-{gateway.id}", protocol=mqtt.MQTTv5)
            client.username_pw_set(gateway.id, credentials[gateway.id])
            client.connect(settings.mqtt.host, settings.mqtt.port)
            client.loop_start()
            clients[gateway.id] = client
        yield clients
    finally:
        for client in clients.values():
            client.disconnect()
            client.loop_stop()


def publish(clients: dict[str, mqtt.Client], gateway: str, topic: str, payload: bytes) -> None:
    info = clients[gateway].publish(topic, payload, qos=1)
    info.wait_for_publish(10)
    assert info.is_published(), (gateway, topic)


def stored(store: InfluxStore) -> dict[tuple[str, str, datetime], float]:
    frame = store.query('SELECT "raw_value" FROM "meter_register" GROUP BY "meter", "register"')
    if frame.empty:
        return {}
    return {
        (m, r, t.to_pydatetime()): v
        for m, r, t, v in zip(frame["meter"], frame["register"], frame["time"], frame["raw_value"], strict=True)
    }


def quarantine(store: InfluxStore):
    return store.query('SELECT "detail", "topic", "payload", "reason" FROM "quarantine"')


def native_reading(meter: str, register: str, when: datetime, value: float, unit: str = "kWh") -> dict[str, object]:
    return {"meter": meter, "ts": when.isoformat(), "register": register, "value": value, "unit": unit}


def test_generated_messages_through_broker_and_collector(settings, store, demo_registry):
    """A few hundred generated messages, with redeliveries and conflicting rewrites interleaved."""
    settings = with_own_group(settings)
    now = datetime.now(UTC)
    generator = Generator(demo_registry, now, Slots((now - timedelta(days=20)).replace(second=0, microsecond=0)))
    pick = RandomPick(20261129)
    cases: list[Case] = [generator.case(pick) for _ in range(MESSAGES)]
    # Redeliveries (the same message again) and rewrites (a good reading's time with another value).
    natives = [c for c in cases if c.kind == "native" and c.good]
    redelivered = [natives[i] for i in range(0, len(natives), max(1, len(natives) // 15))]
    rewrites: list[tuple[Case, Good]] = []
    for case in natives[1::7][:10]:
        good = case.good[0]
        meter = demo_registry.meter_by_id[good.meter]
        body = {
            "gateway": case.gateway,
            "seq": 1,
            "readings": [native_reading(good.meter, good.register, good.time, good.raw + 1.0, meter.unit)],
        }
        rewrites.append((Case("native/rewrite", case.gateway, case.topic, json.dumps(body).encode()), good))
    plan = cases + redelivered + [c for c, _ in rewrites]
    expected = {(g.meter, g.register, g.time): g.raw for c in cases for g in c.good}
    faulty = Counter(c.topic for c in cases if c.bad)

    with (
        running_collectors(settings, demo_registry) as (collector,),
        gateway_clients(settings, demo_registry) as clients,
    ):
        for case in cases + redelivered:
            publish(clients, case.gateway, case.topic, case.payload)
        # The rewrites go once the originals are stored: a conflict is with what InfluxDB holds.
        assert wait_until(lambda: collector.stats.acked >= len(cases) + len(redelivered), 30)
        assert wait_until(lambda: len(stored(store)) >= len(expected), 30), (len(stored(store)), len(expected))
        for case, _ in rewrites:
            publish(clients, case.gateway, case.topic, case.payload)
        assert wait_until(lambda: collector.stats.quarantined_by_reason.get("conflict", 0) >= len(rewrites), 30)
        assert wait_until(
            lambda: collector.stats.readings_written >= collector.stats.readings_spooled - len(rewrites), 30
        )
        assert wait_until(lambda: collector.stats.acked == collector.stats.received >= len(plan), 10)
        assert collector.healthy and collector.stats.thread_restarts == 0

    assert stored(store) == expected  # each good reading once, with its exact value; rewrites changed nothing
    assert count_readings(store) == len(expected)
    rows = quarantine(store)
    assert set(rows["reason"]) <= REASONS and rows["detail"].str.len().min() > 0
    per_topic = Counter(rows["topic"])
    assert all(per_topic[topic] >= n for topic, n in faulty.items()), {t: (per_topic[t], n) for t, n in faulty.items()}
    conflicts = rows[rows["reason"] == "conflict"]
    assert len(conflicts) == len(rewrites)
    for _, good in rewrites:
        assert (
            conflicts["detail"]
            .str.contains(f"InfluxDB has raw_value {good.raw!r}, this reading says {good.raw + 1.0!r}", regex=False)
            .any()
        )
    assert len(rows) == collector.stats.quarantined and collector.stats.quarantine_dropped == 0
    assert Reason.DECODER_ERROR.value not in set(rows["reason"])


POISON = [
    ("native", "deep nesting", '{"gateway": "gw-e02-1", "seq": 1, "readings": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("status", "deep nesting", '{"state": ' + "[" * 5_000 + "]" * 5_000 + "}"),
    (
        "native",
        "lone surrogate",
        '{"gateway": "gw-e02-1", "seq": 1, "readings": [{"meter": "\\ud800", "ts": "2026-03-01T00:00:00+08:00",'
        ' "register": "active_energy_import", "value": 1, "unit": "kWh"}]}',
    ),
    (
        "dlt645",
        "wrong type",
        '{"batch": [{"device_id": "AHU-E10", "timestamp": "20260301000000000", "metrics": [1, 2]}]}',
    ),
    ("shelly", "far timestamp", '{"method": "NotifyStatus", "params": {"ts": 1e20, "emdata:0": {"total_act": 5.0}}}'),
    ("native", "seq 2**70", '{"gateway": "gw-e02-1", "seq": 1180591620717411303424, "readings": []}'),
]


def test_poison_messages_are_quarantined_and_the_next_reading_is_stored(settings, store, demo_registry):
    """Each of these killed the receiver, and again after every restart (the broker redelivered it)."""
    settings = with_own_group(settings)
    topics = {
        "native": layout(GatewayFormat.NATIVE).readings_topic("E02", "gw-e02-1"),
        "status": layout(GatewayFormat.NATIVE).status_topic("E02", "gw-e02-1"),
        "dlt645": layout(GatewayFormat.DLT645_JSON).readings_topic("E10", "edge-e10"),
        "shelly": layout(GatewayFormat.SHELLY_GEN2).readings_topic("E09", "shellypro3em-e09"),
    }
    publisher = {"native": "gw-e02-1", "status": "gw-e02-1", "dlt645": "edge-e10", "shelly": "shellypro3em-e09"}
    when = datetime.now(ZoneInfo("Asia/Shanghai")).replace(microsecond=0) - timedelta(hours=1)
    good = {
        "gateway": "gw-e02-1",
        "seq": 2,
        "readings": [native_reading("E02-M-GRID", "active_energy_import", when, 4242.5)],
    }
    end_sessions(settings, 1)
    with gateway_clients(settings, demo_registry) as clients:
        collector = Collector(settings, demo_registry)
        collector.start()
        try:
            for kind, _, payload in POISON:
                publish(clients, publisher[kind], topics[kind], payload.encode())
            publish(clients, "gw-e02-1", topics["native"], json.dumps(good).encode())
            assert wait_until(lambda: count_readings(store) == 1, 20)
            assert wait_until(lambda: len(poisoned(store, topics)) == len(POISON), 20)
            assert wait_until(lambda: collector.stats.acked == collector.stats.received, 5)
            assert collector.healthy and collector.stats.thread_restarts == 0
        finally:
            collector.stop()  # the broker keeps the session: what was not acknowledged comes again
    # A restart: every message was acknowledged, so none of them comes again.
    with running_collectors(settings, demo_registry, end_earlier_sessions=False) as (again,):
        assert wait_until(lambda: again.stats.acked == again.stats.received, 5)
        time.sleep(2)
        assert again.healthy and again.stats.readings_spooled == 0
    rows = poisoned(store, topics)
    assert sorted(rows["reason"]) == sorted(["schema", "schema", "unknown_meter", "schema", "schema", "schema"])
    assert rows["payload"].str.contains("\\ud800", regex=False).any()
    assert stored(store) == {("E02-M-GRID", "active_energy_import", when.astimezone(UTC)): 4242.5}


def poisoned(store: InfluxStore, topics: dict[str, str]):
    """The quarantine rows of the poison topics (a status retained by another test may add others)."""
    rows = quarantine(store)
    return rows[rows["topic"].isin(topics.values())] if not rows.empty else rows


def test_an_amplifying_message_is_bounded_and_holds_nothing_back(settings, store, demo_registry):
    """0.8 MB of 100,000 bad readings: 100,000 rows before (InfluxDB refused the request as too large
    and the collector wrote line by line for minutes). Now that message is one ``oversized`` row, one
    of 10,000 bad readings makes 101, and the reading after them is stored at once."""
    settings = with_own_group(settings)
    topic = layout(GatewayFormat.NATIVE).readings_topic("E02", "gw-e02-1")

    def tiny_bad_readings(count: int) -> bytes:
        items = ", ".join((["1", "{}", "null", '"x"'] * (count // 4 + 1))[:count])
        return ('{"gateway": "gw-e02-1", "seq": 1, "readings": [' + items + "]}").encode()

    when = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    good = {
        "gateway": "gw-e02-1",
        "seq": 2,
        "readings": [native_reading("E02-M-GRID", "active_energy_import", when, 7.25)],
    }
    with (
        gateway_clients(settings, demo_registry) as clients,
        running_collectors(settings, demo_registry) as (collector,),
    ):
        publish(clients, "gw-e02-1", topic, tiny_bad_readings(100_000).ljust(800_000))
        publish(clients, "gw-e02-1", topic, tiny_bad_readings(10_000))
        publish(clients, "gw-e02-1", topic, json.dumps(good).encode())
        assert wait_until(lambda: count_readings(store) == 1, 15)
        assert wait_until(lambda: len(on_topic(store, topic)) == MAX_ROWS_PER_MESSAGE + 2, 15)
        assert collector.stats.write_failures == 0
    assert Counter(on_topic(store, topic)["reason"]) == {
        "oversized": 1,
        "schema": MAX_ROWS_PER_MESSAGE,
        "summarised": 1,
    }


def on_topic(store: InfluxStore, topic: str):
    rows = quarantine(store)
    return rows[rows["topic"] == topic] if not rows.empty else rows


def test_a_rewrite_of_a_stored_reading_is_a_conflict_and_the_value_stays(settings, store, demo_registry):
    """300 then 3 for the same meter register and time replaced the 300 without a trace, up to the
    400-day age limit. Now the 3 is quarantined as a conflict naming both; the 300 again is a
    redelivery, written (and counted) as before."""
    settings = with_own_group(settings)
    topic = layout(GatewayFormat.NATIVE).readings_topic("E02", "gw-e02-1")
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(days=300)
    later = when + timedelta(minutes=15)

    def message(value: float, at: datetime = when) -> bytes:
        return json.dumps(
            {
                "gateway": "gw-e02-1",
                "seq": 1,
                "readings": [native_reading("E02-M-GRID", "active_energy_import", at, value)],
            }
        ).encode()

    with (
        gateway_clients(settings, demo_registry) as clients,
        running_collectors(settings, demo_registry) as (collector,),
    ):
        publish(clients, "gw-e02-1", topic, message(300.0))
        publish(clients, "gw-e02-1", topic, message(300.0, later))
        assert wait_until(lambda: count_readings(store) == 2, 15)
        publish(clients, "gw-e02-1", topic, message(3.0))
        assert wait_until(lambda: collector.stats.quarantined_by_reason.get("conflict", 0) == 1, 15)
        publish(clients, "gw-e02-1", topic, message(300.0))
        assert wait_until(lambda: collector.stats.readings_written == 3, 15)
    assert stored(store) == {
        ("E02-M-GRID", "active_energy_import", when): 300.0,
        ("E02-M-GRID", "active_energy_import", later): 300.0,
    }
    (row,) = quarantine(store).itertuples()
    assert row.reason == "conflict"
    assert "InfluxDB has raw_value 300.0, this reading says 3.0; the stored value is kept" in row.detail
