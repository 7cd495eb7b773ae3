"""Helpers for tests on the real services."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pandas as pd
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collectors.service import Collector
from park.registry import Registry
from park.settings import Settings
from park.store import InfluxStore
from park.topics import collector_user
from parkcarbon.runtime import settings_for_run_dir
from parkcarbon.services import load_credentials
from simulators.formats import status_message
from simulators.park import SimulatedPark, simulate
from simulators.publisher import PublishStats, publish_park


def with_own_group(settings: Settings) -> Settings:
    """The collector replicas' broker passwords from the run directory (the InfluxDB account stays
    the test's), and a share group of this test's own, so no session left by another test shares its
    messages. A replica's client id is its account (collector-N): :func:`end_sessions` clears what an
    earlier test left under it."""
    resolved = settings_for_run_dir(settings, role="collector")
    group = settings.influx.database.replace("_", "")[:40]
    collector = resolved.collector.model_copy(update={"share_group": group, "stats_interval_s": 1.0})
    return resolved.model_copy(update={"collector": collector})


def end_sessions(settings: Settings, replicas: int) -> None:
    """Discard the broker sessions of collector replicas 0 … replicas-1 (a clean start, then a
    disconnect with session expiry 0): a test starts its collectors without what earlier tests queued
    or subscribed under the same accounts."""
    for replica in range(replicas):
        _end_session(settings, collector_user(replica))


def _end_session(settings: Settings, user: str) -> None:
    connected: list[bool] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, settings.mqtt.password_for(user))
    client.on_connect = lambda _c, _u, _f, reason, _p: connected.append(not reason.is_failure)
    expiry = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    expiry.SessionExpiryInterval = 0
    client.connect(settings.mqtt.host, settings.mqtt.port, clean_start=True, properties=expiry)
    client.loop_start()
    try:
        assert wait_until(lambda: bool(connected), 10) and connected[0], f"{user} could not connect"
    finally:
        client.disconnect()
        client.loop_stop()


@contextmanager
def running_collectors(
    settings: Settings, registry: Registry, replicas: int = 1, end_earlier_sessions: bool = True
) -> Iterator[list[Collector]]:
    """Collector replicas started, and stopped with their sessions ended; ``end_earlier_sessions=False``
    resumes what an earlier collector of this test left in the broker (a restart)."""
    if end_earlier_sessions:
        end_sessions(settings, replicas)
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


@contextmanager
def standalone_broker(directory: Path, accounts: dict[str, str], replicas: int = 1, **conf: Any) -> Iterator[int]:
    """A Mosquitto of a test's own, configured by ``parkcarbon.services.mosquitto_conf`` with ``conf``
    (e.g. small queue limits, a TLS listener), the ACL for ``replicas`` collector replicas and a
    password file for ``accounts``; yields its plain MQTT port. Stopped by PID at the end."""
    from parkcarbon.services import (
        _binary,
        _wait_exit,
        _wait_tcp,
        _write_password_file,
        free_port,
        mosquitto_acl,
        mosquitto_conf,
        private_dir,
    )

    private_dir(directory / "data")
    port = free_port()
    log = directory / "mosquitto.log"
    text = mosquitto_conf(
        directory, directory / "data", f"{port} 127.0.0.1", f"file {log}", run_as_root=os.geteuid() == 0, **conf
    )
    (directory / "mosquitto.conf").write_text(text)
    (directory / "acl").write_text(mosquitto_acl(replicas))
    _write_password_file(directory / "passwd", accounts)
    proc = subprocess.Popen(
        [_binary("mosquitto"), "-c", str(directory / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_tcp(port, 10, log)
        tls = conf.get("tls")
        if tls is not None:
            _wait_tcp(tls.port, 10, log)
        yield port
    finally:
        proc.send_signal(signal.SIGTERM)
        if not _wait_exit(proc.pid, 10):
            proc.kill()
        proc.wait()


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for {pid}")
