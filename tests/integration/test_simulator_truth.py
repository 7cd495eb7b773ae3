"""What a subscriber receives from the simulator is exactly what its ground truth says was published."""

from __future__ import annotations

import threading
from datetime import datetime
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pandas as pd
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collectors.decode import READING_ROUTES, parse_message
from park.topics import collector_user
from parkcarbon.services import load_credentials
from simulators.faults import parse_faults
from simulators.publisher import send_plan
from simulators.run import simulate_run
from tests.integration.helpers import running_collectors, wait_until, with_own_group

pytestmark = pytest.mark.services
TZ = ZoneInfo("Asia/Shanghai")
FAULTS = "gap:2,rollover:1,replacement:1,reset:1,duplicate:10,out_of_order:5,late:1,malformed:8,spoof:4"


class Recorder:
    """A plain MQTT 5 subscriber (a collector replica's account may read) that keeps every payload."""

    def __init__(self, settings, user: str, password: str) -> None:
        self.payloads: list[bytes] = []
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="recorder", protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, *_: c.subscribe([(r.topic_filter, 1) for r in READING_ROUTES])
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", settings.mqtt.port)
        self.client.loop_start()
        assert self._ready.wait(10)

    def _on_message(self, _c, _u, msg) -> None:
        with self._lock:
            self.payloads.append(bytes(msg.payload))
            self.messages.append((msg.topic, bytes(msg.payload)))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_published_equals_truth(settings, store, demo_registry):
    """Distinct readings received = registers the truth says were sent; quarantine and refusals as expected."""
    settings = with_own_group(settings)
    credentials = load_credentials(settings.run_dir)
    run = simulate_run(
        demo_registry,
        datetime(2026, 5, 1, tzinfo=TZ),
        datetime(2026, 5, 3, tzinfo=TZ),
        pd.Timedelta("15min"),
        11,
        parse_faults(FAULTS),
    )
    long = run.published.stack(level=[0, 1], future_stack=True).dropna()
    published = {(m, reg, t): v for (t, m, reg), v in long.items()}
    # The account of a replica that does not run here (replica 0 does): the broker makes it the client id.
    recorder = Recorder(settings, collector_user(1), credentials[collector_user(1)])
    with running_collectors(settings, demo_registry) as (collector,):
        stats = send_plan(demo_registry, run.plan, settings.mqtt, credentials)
        delivered = {m.payload for m in run.plan if m.note != "spoof:topic"}
        assert wait_until(lambda: set(recorder.payloads) >= delivered, 30)
        assert wait_until(lambda: collector.stats.quarantined >= sum(run.expected_quarantine.values()), 60)
        assert wait_until(lambda: collector.stats.readings_written >= sum(m.readings for m in run.plan), 60)
    recorder.stop()

    # At least once: a gateway whose connection the broker closed (after the ACL refusal) resends
    # what it had in flight, so payloads may arrive twice; none may be missing or unplanned.
    assert stats.refused == run.expected_refused == 2
    assert set(recorder.payloads) == delivered
    # What arrived, decoded by each format's decoder and mapped to meters (valid readings only).
    received = {}
    later = run.park.times[-1].to_pydatetime() + pd.Timedelta(days=1)
    for topic, payload in recorder.messages:
        for r in parse_message(topic, payload, demo_registry, later).readings:
            received[(r.meter, r.register, pd.Timestamp(r.time).tz_convert("UTC"))] = r.raw_value
    assert received.keys() == published.keys()
    assert all(abs(received[k] - v) <= 1e-6 * max(1.0, abs(v)) for k, v in published.items())
    quarantine = store.query('SELECT "payload", "reason", "detail" FROM "quarantine"')
    distinct = quarantine.drop_duplicates(["reason", "payload", "detail"])["reason"].value_counts().to_dict()
    assert distinct == run.expected_quarantine
    count = store.query('SELECT COUNT("raw_value") FROM "meter_register"')["count"].iloc[0]
    assert count == len(published)


def test_live_mode_paces_by_reading_time(settings, demo_registry):
    """Live at 3600x: two hours of readings take about two seconds, not as fast as the broker acks."""
    settings = with_own_group(settings)
    run = simulate_run(
        demo_registry,
        datetime(2026, 5, 1, tzinfo=TZ),
        datetime(2026, 5, 1, 2, tzinfo=TZ),
        pd.Timedelta("15min"),
        1,
        batch_intervals=1,
    )
    stats = send_plan(demo_registry, run.plan, settings.mqtt, load_credentials(settings.run_dir), speed=3600.0)
    assert stats.refused == 0
    assert 1.8 <= stats.seconds < 6.0
