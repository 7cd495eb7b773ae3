"""Publish a simulated park over MQTT as its gateways would: one authenticated MQTT 5 client per
gateway, QoS 1, batches of readings in the native format, sequence numbers, a retained status
topic and a last will.

A shared window bounds the messages awaiting PUBACK (paho stalls and loses messages past 65,535
in flight), so the publisher goes as fast as the broker acknowledges and never faster.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from park.registry import Gateway
from park.settings import MqttSettings
from simulators.park import SimulatedPark

WINDOW = 2000  # messages awaiting PUBACK, across all gateways


def readings_topic(enterprise: str, gateway: str) -> str:
    return f"carbon/v1/{enterprise}/{gateway}/readings"


def status_topic(enterprise: str, gateway: str) -> str:
    return f"carbon/v1/{enterprise}/{gateway}/status"


def status_payload(state: str, **extra: object) -> bytes:
    return json.dumps({"state": state, "at": datetime.now(UTC).isoformat(timespec="seconds"), **extra}).encode()


class PublishError(RuntimeError):
    pass


@dataclass
class PublishStats:
    messages: int = 0
    readings: int = 0
    refused: int = 0
    seconds: float = 0.0
    refusals: list[str] = field(default_factory=list)

    @property
    def readings_per_s(self) -> float:
        return self.readings / self.seconds if self.seconds else 0.0


class _Window:
    """Counts messages awaiting PUBACK; blocks senders when full."""

    def __init__(self, size: int) -> None:
        self._slots = threading.Semaphore(size)
        self._lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    def take(self) -> None:
        self._slots.acquire()
        with self._lock:
            self._pending += 1

    def give(self) -> None:
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()
        self._slots.release()

    def wait_idle(self, timeout_s: float) -> bool:
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)


class GatewayClient:
    """One gateway's MQTT 5 connection (username = gateway id, as the broker's ACL expects)."""

    def __init__(
        self, gateway: Gateway, settings: MqttSettings, password: str, window: _Window, stats: PublishStats
    ) -> None:
        self.gateway = gateway
        self.seq = 0
        self._window = window
        self._stats = stats
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{gateway.id}", protocol=mqtt.MQTTv5)
        self.client.username_pw_set(gateway.id, password)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.will_set(
            status_topic(gateway.enterprise, gateway.id),
            status_payload("offline", reason="lost"),
            qos=1,
            retain=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self._settings = settings

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: Properties | None) -> None:
        """Fires when the broker answers CONNECT."""
        if reason.is_failure:
            self._connect_error = str(reason)
        self._connected.set()

    def _on_publish(self, _c: mqtt.Client, _u: object, _mid: int, reason: ReasonCode, _p: Properties) -> None:
        """Fires on PUBACK; MQTT 5 brokers say "Not authorized" here for a publish the ACL denies."""
        if reason.is_failure:
            self._stats.refused += 1
            if len(self._stats.refusals) < 20:
                self._stats.refusals.append(f"{self.gateway.id}: {reason}")
        self._window.give()

    def connect(self, timeout_s: float = 10.0) -> None:
        self.client.connect(self._settings.host, self._settings.port, keepalive=self._settings.keepalive_s)
        self.client.loop_start()
        if not self._connected.wait(timeout_s) or self._connect_error:
            self.client.loop_stop()
            raise PublishError(f"gateway {self.gateway.id} could not connect: {self._connect_error or 'timeout'}")
        self.publish(status_topic(self.gateway.enterprise, self.gateway.id), status_payload("online"), retain=True)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self._window.take()
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self._window.give()
            raise PublishError(f"gateway {self.gateway.id}: publish failed: {mqtt.error_string(info.rc)}")
        self._stats.messages += 1

    def close(self, final_state: str = "offline") -> None:
        self.publish(
            status_topic(self.gateway.enterprise, self.gateway.id),
            status_payload(final_state, reason="backfill finished"),
            retain=True,
        )

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def native_batches(park: SimulatedPark, gateway: Gateway, batch_intervals: int) -> Iterator[list[dict[str, object]]]:
    """One gateway's readings in the native format, ``batch_intervals`` timestamps per batch, in time order."""
    tz = park.registry.park.timezone
    columns = [c for c in park.registers.columns if park.registry.meter_by_id[c[0]].gateway == gateway.id]
    if not columns:
        return
    units = [park.registry.meter_by_id[m].unit for m, _ in columns]
    values = park.registers[columns].to_numpy()
    stamps = [t.isoformat() for t in park.times.tz_convert(tz)]
    for first in range(0, len(stamps), batch_intervals):
        rows = range(first, min(first + batch_intervals, len(stamps)))
        readings = [
            {
                "meter": meter,
                "ts": stamps[i],
                "register": register,
                "value": float(values[i, j]),
                "unit": units[j],
            }
            for i in rows
            for j, (meter, register) in enumerate(columns)
            if np.isfinite(values[i, j])
        ]
        yield readings


def publish_park(
    park: SimulatedPark,
    settings: MqttSettings,
    credentials: dict[str, str],
    batch_intervals: int = 4,
    on_progress: Callable[[int], None] | None = None,
    ack_timeout_s: float = 120.0,
) -> PublishStats:
    """Publish every reading of ``park`` once, chunk by chunk across gateways, and wait for all acks."""
    stats = PublishStats()
    window = _Window(WINDOW)
    gateways = [g for g in park.registry.gateways if park.registry.meters_of_gateway(g.id)]
    clients = [GatewayClient(g, settings, credentials[g.id], window, stats) for g in gateways]
    started = time.monotonic()
    try:
        for client in clients:
            client.connect()
        streams = [(client, native_batches(park, client.gateway, batch_intervals)) for client in clients]
        pending = list(streams)
        while pending:
            still = []
            for client, stream in pending:
                readings = next(stream, None)
                if readings is None:
                    continue
                client.seq += 1
                message = {
                    "gateway": client.gateway.id,
                    "seq": client.seq,
                    "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "readings": readings,
                }
                client.publish(
                    readings_topic(client.gateway.enterprise, client.gateway.id), json.dumps(message).encode()
                )
                stats.readings += len(readings)
                if on_progress:
                    on_progress(len(readings))
                still.append((client, stream))
            pending = still
        for client in clients:
            client.close()
        if not window.wait_idle(ack_timeout_s):
            raise PublishError(f"the broker did not acknowledge every message within {ack_timeout_s} s")
    finally:
        for client in clients:
            client.disconnect()
        stats.seconds = time.monotonic() - started
    return stats
