"""Simulator → Mosquitto → collector → InfluxDB on the real services, against the ground truth."""

from __future__ import annotations

import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from numpy.testing import assert_allclose
from paho.mqtt.enums import CallbackAPIVersion

from parkcarbon.services import load_credentials
from tests.integration.helpers import (
    count_readings,
    publish,
    running_collectors,
    wait_for_count,
    wait_until,
    with_own_group,
)

pytestmark = pytest.mark.services
TZ = ZoneInfo("Asia/Shanghai")


def test_every_reading_arrives_once(settings, store, demo_registry):
    """Three days of 15-minute readings: InfluxDB holds exactly the published registers, multiplier applied."""
    settings = with_own_group(settings)
    with running_collectors(settings, demo_registry) as (collector,):
        park, stats = publish(settings, demo_registry, datetime(2026, 3, 1, tzinfo=TZ), datetime(2026, 3, 4, tzinfo=TZ))
        assert stats.refused == 0
        assert wait_for_count(store, stats.readings) == stats.readings
    assert stats.readings == park.registers.size == 64 * (3 * 96 + 1)
    assert collector.stats.quarantined == 0
    stored = store.query(
        'SELECT "raw_value", "value" FROM "meter_register" WHERE "meter" = \'E01-M-GRID\' '
        "AND \"register\" = 'active_energy_import'"
    )
    expected = park.registers[("E01-M-GRID", "active_energy_import")]
    assert_allclose(stored["raw_value"].to_numpy(), expected.to_numpy())
    assert_allclose(stored["value"].to_numpy(), expected.to_numpy() * 80)  # registry multiplier of E01-M-GRID
    status = store.query('SELECT LAST("online") FROM "gateway_status" GROUP BY "gateway"')
    assert len(status) == len(demo_registry.gateways)


def test_republished_readings_overwrite_themselves(settings, store, demo_registry):
    """Publishing the same day twice leaves each reading once: the point time is the meter's."""
    settings = with_own_group(settings)
    with running_collectors(settings, demo_registry) as (collector,):
        for _ in range(2):
            _, stats = publish(
                settings, demo_registry, datetime(2026, 3, 1, tzinfo=TZ), datetime(2026, 3, 2, tzinfo=TZ)
            )
        assert wait_until(lambda: collector.stats.readings_written >= 2 * stats.readings)
    assert collector.stats.readings_written == 2 * stats.readings
    assert count_readings(store) == stats.readings


def test_bad_payloads_are_quarantined_not_lost(settings, store, demo_registry):
    """Malformed, spoofed and unknown-meter messages land in quarantine with a reason; good ones still pass."""
    settings = with_own_group(settings)
    creds = load_credentials(settings.run_dir)
    gw = "gw-e02-1"
    good = {
        "meter": "E02-M-GRID",
        "ts": "2026-03-01T00:00:00+08:00",
        "register": "active_energy_import",
        "value": 1000.5,
        "unit": "kWh",
    }
    bodies = [
        b"{not json",
        b"\xff\xfe",
        json.dumps(
            {
                "gateway": gw,
                "seq": 1,
                "readings": [good, {**good, "meter": "NOPE"}, {**good, "meter": "E01-M-GRID"}],
            }
        ).encode(),
    ]
    with running_collectors(settings, demo_registry) as (collector,):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-bad", protocol=mqtt.MQTTv5)
        client.username_pw_set(gw, creds[gw])
        client.connect("127.0.0.1", settings.mqtt.port)
        client.loop_start()
        for body in bodies:
            client.publish(f"carbon/v1/E02/{gw}/readings", body, qos=1).wait_for_publish(5)
        client.disconnect()
        client.loop_stop()
        assert wait_until(lambda: collector.stats.quarantined >= 4 and collector.stats.readings_written >= 1)
    q = store.query('SELECT "detail", "payload", "reason" FROM "quarantine"')
    assert sorted(q["reason"]) == ["malformed_json", "not_utf8", "spoofed", "unknown_meter"]
    assert count_readings(store) == 1


def test_acl_keeps_gateways_in_their_topics(settings, store, demo_registry):
    """A gateway publishing under another gateway's topic is refused by the broker and never reaches
    InfluxDB; an anonymous client cannot connect at all."""
    import threading

    settings = with_own_group(settings)
    creds = load_credentials(settings.run_dir)
    reading = {
        "meter": "E03-M-GRID",
        "ts": "2026-03-01T00:00:00+08:00",
        "register": "active_energy_import",
        "value": 4242.42,
        "unit": "kWh",
    }
    refused = threading.Event()
    with running_collectors(settings, demo_registry) as (collector,):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-acl", protocol=mqtt.MQTTv5)
        client.username_pw_set("gw-e02-1", creds["gw-e02-1"])
        client.on_publish = lambda _c, _u, _mid, reason, _p: refused.set() if reason.is_failure else None
        client.connect("127.0.0.1", settings.mqtt.port)
        client.loop_start()
        body = json.dumps({"gateway": "gw-e03-1", "seq": 1, "readings": [reading]}).encode()
        client.publish("carbon/v1/E03/gw-e03-1/readings", body, qos=1)
        assert refused.wait(5), "the broker accepted a publish outside the gateway's own topic"
        client.loop_stop()
        # Had the broker let it through, the collector would have stored or quarantined it by now
        # (status messages, retained ones included, may still arrive: they are not readings).
        time.sleep(1.5)
        spooled = collector.stats.readings_spooled
        quarantined = collector.stats.quarantined
    assert (spooled, quarantined) == (0, 0)
    assert count_readings(store) == 0
    assert store.query('SELECT * FROM "quarantine"').empty

    anonymous = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="t-anon", protocol=mqtt.MQTTv5)
    outcome: list[str] = []
    anonymous.on_connect = lambda _c, _u, _f, reason, _p: outcome.append(str(reason))
    anonymous.connect("127.0.0.1", settings.mqtt.port)
    anonymous.loop_start()
    assert wait_until(lambda: bool(outcome), 5)
    anonymous.loop_stop()
    assert outcome[0] == "Not authorized"
