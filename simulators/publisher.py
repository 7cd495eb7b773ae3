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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from park.registry import Gateway, GatewayFormat, Registry
from park.settings import MqttSettings
from simulators.formats import status_message
from simulators.park import SimulatedPark
from simulators.plan import Outgoing, plan_messages, status_topic

WINDOW = 2000  # messages awaiting PUBACK, across all gateways


def status_payload(state: str, **extra: object) -> bytes:
    return json.dumps({"state": state, "at": datetime.now(UTC).isoformat(timespec="seconds"), **extra}).encode()


class PublishError(RuntimeError):
    pass


@dataclass
class PublishStats:
    messages: int = 0
    status_messages: int = 0
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
        self._status_mids: set[int] = set()  # status messages are sent outside the window
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{gateway.id}", protocol=mqtt.MQTTv5)
        self.client.username_pw_set(gateway.id, password)
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        will_topic, will_payload = self._status(False, reason="lost")
        self.client.will_set(will_topic, will_payload, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._settings = settings

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: ReasonCode, _p: Properties | None) -> None:
        """Fires when the broker answers CONNECT, also after paho reconnected on its own.

        Every connection announces ``online`` again: a broker that dropped us has published our
        last will (``offline``) in the meantime.
        """
        if reason.is_failure:
            self._connect_error = str(reason)
        else:
            self.send_status("online")
        self._connected.set()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: ReasonCode, _p: Properties) -> None:
        """Fires on PUBACK. MQTT 5 brokers say "Not authorized" here for a publish the ACL denies;
        Mosquitto 2.0 then also closes the connection (eclipse-mosquitto/mosquitto#2579), and paho
        reconnects and sends what it queued meanwhile."""
        if reason.is_failure:
            self._stats.refused += 1
            if len(self._stats.refusals) < 20:
                self._stats.refusals.append(f"{self.gateway.id}: {reason}")
        if mid in self._status_mids:
            self._status_mids.discard(mid)
        else:
            self._window.give()

    def _status(self, online: bool, **extra: object) -> tuple[str, bytes]:
        """Topic and payload of this gateway's status in its own format."""
        if self.gateway.format is GatewayFormat.NATIVE:
            state = "online" if online else "offline"
            return status_topic(self.gateway.enterprise, self.gateway.id), status_payload(state, **extra)
        return status_message(self.gateway.format, self.gateway.enterprise, self.gateway.id, online)

    def send_status(self, state: str, **extra: object) -> None:
        """The retained status message (not counted in the window: it may be sent from a callback)."""
        topic, payload = self._status(state == "online", **extra)
        info = self.client.publish(topic, payload, qos=1, retain=True)
        self._status_mids.add(info.mid)
        self._stats.status_messages += 1
        self._stats.messages += 1

    def connect(self, timeout_s: float = 10.0) -> None:
        self.client.connect(self._settings.host, self._settings.port, keepalive=self._settings.keepalive_s)
        self.client.loop_start()
        if not self._connected.wait(timeout_s) or self._connect_error:
            self.client.loop_stop()
            raise PublishError(f"gateway {self.gateway.id} could not connect: {self._connect_error or 'timeout'}")

    def publish(self, topic: str, payload: bytes) -> None:
        """QoS 1; while paho reconnects, it queues the message and sends it once connected."""
        self._window.take()
        info = self.client.publish(topic, payload, qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            self._window.give()
            raise PublishError(f"gateway {self.gateway.id}: publish failed: {mqtt.error_string(info.rc)}")
        self._stats.messages += 1

    def close(self) -> None:
        self.send_status("offline", reason="backfill finished")

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def send_plan(
    registry: Registry,
    plan: list[Outgoing],
    settings: MqttSettings,
    credentials: dict[str, str],
    on_progress: Callable[[int], None] | None = None,
    speed: float | None = None,
    ack_timeout_s: float = 120.0,
) -> PublishStats:
    """Send every planned message, each with its gateway's own connection, and wait for all acks.

    ``speed`` None sends as fast as the broker acknowledges (backfill); a number paces the messages
    by their due times, ``speed`` simulated seconds per wall-clock second (1 = real time).
    """
    stats = PublishStats()
    window = _Window(WINDOW)
    senders = {m.gateway for m in plan}
    clients = {
        g.id: GatewayClient(g, settings, credentials[g.id], window, stats) for g in registry.gateways if g.id in senders
    }
    started = time.monotonic()
    try:
        for client in clients.values():
            client.connect()
        first_due = plan[0].due if plan else None
        for message in plan:
            if speed is not None and first_due is not None:
                wait = (message.due - first_due).total_seconds() / speed - (time.monotonic() - started)
                if wait > 0:
                    time.sleep(wait)
            clients[message.gateway].publish(message.topic, message.payload)
            stats.readings += message.readings
            if on_progress:
                on_progress(message.readings)
        for client in clients.values():
            client.close()
        if not window.wait_idle(ack_timeout_s):
            raise PublishError(f"the broker did not acknowledge every message within {ack_timeout_s} s")
    finally:
        for client in clients.values():
            client.disconnect()
        stats.seconds = time.monotonic() - started
    return stats


def publish_park(
    park: SimulatedPark,
    settings: MqttSettings,
    credentials: dict[str, str],
    batch_intervals: int = 4,
    on_progress: Callable[[int], None] | None = None,
) -> PublishStats:
    """Publish every register of ``park`` once, as planned with no faults, and wait for all acks."""
    plan = plan_messages(park.registry, park.registers, batch_intervals)
    return send_plan(park.registry, plan, settings, credentials, on_progress)
