"""Helpers for tests on the real services."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import paho.mqtt.client as mqtt
import pandas as pd
from paho.mqtt.enums import CallbackAPIVersion

from collectors.service import Collector
from park.registry import Registry
from park.settings import Settings
from park.store import InfluxStore
from parkcarbon.runtime import settings_for_run_dir
from parkcarbon.services import load_credentials
from simulators.formats import status_message
from simulators.park import SimulatedPark, simulate
from simulators.publisher import PublishStats, publish_park


def with_own_group(settings: Settings) -> Settings:
    """The run directory's credentials, and a share group and client ids of this test's own, so
    no session left by another test shares its messages."""
    resolved = settings_for_run_dir(settings)
    group = settings.influx.database.replace("_", "")[:40]
    collector = resolved.collector.model_copy(
        update={"share_group": group, "client_id_prefix": f"c-{group}", "stats_interval_s": 1.0}
    )
    return resolved.model_copy(update={"collector": collector})


@contextmanager
def running_collectors(settings: Settings, registry: Registry, replicas: int = 1) -> Iterator[list[Collector]]:
    collectors = [Collector(settings, registry, i) for i in range(replicas)]
    for c in collectors:
        c.start()
    try:
        yield collectors
    finally:
        for c in collectors:
            c.stop(end_session=True)


def publish(
    settings: Settings,
    registry: Registry,
    start: datetime,
    end: datetime,
    seed: int = 1,
    interval: str = "15min",
) -> tuple[SimulatedPark, PublishStats]:
    park = simulate(registry, start, end, pd.Timedelta(interval), seed)
    stats = publish_park(park, settings.mqtt, load_credentials(settings.run_dir), batch_intervals=4)
    return park, stats


def wait_until(predicate: Callable[[], bool], timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def count_readings(store: InfluxStore) -> int:
    frame = store.query('SELECT COUNT("raw_value") FROM "meter_register"')
    return int(frame["count"].iloc[0]) if len(frame) else 0


def wait_for_count(store: InfluxStore, expected: int, timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    count = count_readings(store)
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        count = count_readings(store)
    return count


def clear_retained_status(settings: Settings, registry: Registry) -> None:
    """Delete the retained status of every gateway in ``registry`` (an empty retained message does).

    The broker is shared by the session: a status retained by one test reaches the next test's
    collector, which rightly quarantines it when that test's registry does not know the gateway.
    Only the gateway itself may publish there (broker ACL), so each is cleared with its own account.
    """
    credentials = load_credentials(settings.run_dir)
    for gateway in registry.gateways:
        topic, _payload = status_message(gateway.format, gateway.enterprise, gateway.id, online=True)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-clear-{gateway.id}", protocol=mqtt.MQTTv5)
        client.username_pw_set(gateway.id, credentials[gateway.id])
        client.connect("127.0.0.1", settings.mqtt.port)
        client.loop_start()
        try:
            client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)
        finally:
            client.disconnect()
            client.loop_stop()
