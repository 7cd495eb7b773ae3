"""The collector's MQTT client, one replica: connect, subscribe, receive, spool, acknowledge.

- QoS 1, a fixed client id per replica, ``clean_start=False`` and a session expiry, so the broker
  queues for a replica while it restarts;
- manual acknowledgement (paho 2.x ``manual_ack``): the PUBACK goes out once the message's points
  are in the fsync'd spool, so a crash before that means redelivery, never loss;
- the point's time is the meter's timestamp, so a redelivered reading overwrites itself;
- by default one replica subscribes directly: Mosquitto restores such subscriptions from its
  persistence, so readings published after a broker restart wait for the collector in its session;
- with a share group, replicas share ``$share/<group>/...`` reading subscriptions for throughput.
  Mosquitto 2.0.11 does not restore shared subscriptions from its persistence (measured, see
  ``tests/integration/test_collector_faults.py``): readings published after a broker restart and
  before a replica has resubscribed reach no subscriber and are dropped;
- status topics are always subscribed directly because retained messages are not sent to shared
  subscriptions (MQTT 5 §4.8.2);
- bad input is quarantined with its reason and raw payload, counted, and acked.

Callbacks stay thin: ``on_connect`` subscribes, ``on_message`` queues. One receiver thread turns
the queued messages into line protocol (``collectors.handler``), appends it to the spool and acks,
in order, and reports the statistics (:data:`COLLECTOR_STATS`); the sink (``collectors.sink``)
drains the spool into InfluxDB in a thread of its own.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from collectors.handler import Handled, Received, handle
from collectors.points import UniqueClock
from collectors.sink import Outcome, Sink
from collectors.spool import Spool
from park.measurements import COLLECTOR_STATS
from park.registry import Registry
from park.settings import Settings
from park.store import InfluxError, InfluxStore
from park.topics import subscriptions

log = logging.getLogger("parkcarbon.collector")


@dataclass
class CollectorStats:
    received: int = 0
    acked: int = 0
    readings_spooled: int = 0
    readings_written: int = 0  # in InfluxDB
    lag_s: float = 0.0  # receive → InfluxDB, of the last record written
    quarantined: int = 0
    write_failures: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)


class Collector:
    """One collector replica."""

    def __init__(self, settings: Settings, registry: Registry, replica: int = 0) -> None:
        self.settings = settings
        self.registry = registry
        self.replica = replica
        self.client_id = f"{settings.collector.client_id_prefix}-{replica}"
        self.stats = CollectorStats()
        self._queue: queue.Queue[Received] = queue.Queue()
        self._stop = threading.Event()
        self._clock = UniqueClock()
        self._subscribed = threading.Event()
        self._connect_error: str | None = None
        self._store = InfluxStore(settings.influx)
        self._spool = Spool(settings.collector.spool_dir or settings.run_dir / "spool" / self.client_id)
        self._sink = Sink(self._spool, self._store, self._clock, self.client_id, self._count_drained)
        self._max_age = timedelta(days=settings.collector.max_reading_age_days)
        self._receiver = threading.Thread(target=self._receive_loop, name=f"{self.client_id}-receiver", daemon=True)
        self.client = self._make_client()

    # -- MQTT -----------------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        password = self.settings.mqtt.password
        client.username_pw_set(self.settings.mqtt.username, password.get_secret_value() if password else None)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        return client

    def _on_connect(
        self,
        client: mqtt.Client,
        _u: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _p: Properties | None,
    ) -> None:
        """Fires when the broker answers CONNECT, also after every automatic reconnect."""
        if reason.is_failure:
            self._connect_error = str(reason)
            log.error("collector %s: broker refused the connection: %s", self.client_id, reason)
            return
        log.info("collector %s connected (session present: %s)", self.client_id, flags.session_present)
        # Subscribing in on_connect means a lost session is rebuilt on every reconnect.
        group = self.settings.collector.share_group
        prefix = f"$share/{group}/" if group else ""
        readings, status = subscriptions()
        client.subscribe([(prefix + f, 1) for f in readings] + [(f, 1) for f in status])

    def _on_subscribe(
        self, _c: mqtt.Client, _u: object, _mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        """Fires on SUBACK."""
        failed = [str(c) for c in codes if c.is_failure]
        if failed:
            self._connect_error = f"subscription refused: {failed}"
            log.error("collector %s: %s", self.client_id, self._connect_error)
        self._subscribed.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        """Fires for each PUBLISH; hands it to the receiver thread at once (no PUBACK yet)."""
        self.stats.received += 1
        self._queue.put(Received.of(msg, time.time_ns()))

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: mqtt.DisconnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        """Fires when the connection ends; paho's loop reconnects with backoff unless we stopped."""
        if not self._stop.is_set():
            log.warning("collector %s disconnected: %s; reconnecting", self.client_id, reason)

    def start(self, timeout_s: float = 15.0) -> None:
        """Connect, subscribe, start spooling and draining; raise if the broker refuses.

        The sink starts first: what an earlier run spooled but did not write goes to InfluxDB
        before anything new.
        """
        self._store.create_database()
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho is untyped here
        properties.SessionExpiryInterval = self.settings.collector.session_expiry_s
        properties.ReceiveMaximum = self.settings.collector.receive_maximum
        self._sink.start()
        self._receiver.start()
        self.client.connect(
            self.settings.mqtt.host,
            self.settings.mqtt.port,
            keepalive=self.settings.mqtt.keepalive_s,
            clean_start=False,
            properties=properties,
        )
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s) or self._connect_error:
            self.stop()
            raise RuntimeError(f"collector {self.client_id} could not subscribe: {self._connect_error or 'timeout'}")

    def stop(self, end_session: bool = False, drain_timeout_s: float = 30.0) -> None:
        """Stop taking messages, spool and ack what is queued, disconnect, and drain the spool.

        What InfluxDB has not taken within ``drain_timeout_s`` stays in the spool for the next start.
        ``end_session`` tells the broker to drop this replica's session (for a replica that is
        retired, or a test); otherwise the broker keeps queueing for it until it returns.
        """
        properties = None
        if end_session:
            properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0
        self.client.on_message = lambda *_a: None  # take nothing new; the broker redelivers it later
        self._stop.set()
        if self._receiver.is_alive():
            self._receiver.join(drain_timeout_s)
        self.client.disconnect(properties=properties)
        self.client.loop_stop()
        self._sink.stop(drain_timeout_s)
        self._report_stats()
        self._spool.close()
        self._store.close()

    # -- receiving: parse, spool (fsync), acknowledge ---------------------------------------------------

    def _next_batch(self) -> list[Received]:
        cfg = self.settings.collector
        try:
            batch = [self._queue.get(timeout=cfg.flush_interval_s)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + cfg.flush_interval_s
        while len(batch) < cfg.batch_max_messages:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _receive_loop(self) -> None:
        last_stats = time.monotonic()
        while not (self._stop.is_set() and self._queue.empty()):
            batch = self._next_batch()
            if batch:
                self._spool_batch(batch)
                for message in batch:
                    if message.qos > 0:
                        self.client.ack(message.mid, message.qos)
                    self.stats.acked += 1
            if time.monotonic() - last_stats >= self.settings.collector.stats_interval_s:
                self._report_stats()
                last_stats = time.monotonic()

    def _spool_batch(self, batch: list[Received]) -> None:
        """Turn the batch into line protocol and append it to the spool; returns once it is on disk."""
        lines: list[str] = []
        for message in batch:
            handled = handle(message, self.registry, self._clock, datetime.now(UTC), self._max_age)
            lines += handled.lines
            self._count_handled(handled)
        if lines:
            self._spool.append("\n".join(lines), batch[0].received_ns)

    # -- statistics ---------------------------------------------------------------------------------------

    def _count_handled(self, handled: Handled) -> None:
        self.stats.readings_spooled += handled.readings
        self.stats.quarantined += len(handled.rejections)
        for rejection in handled.rejections:
            reason = rejection.reason.value
            self.stats.quarantined_by_reason[reason] = self.stats.quarantined_by_reason.get(reason, 0) + 1

    def _count_drained(self, outcome: Outcome) -> None:
        """The sink's report, from its thread."""
        if outcome.error is not None:
            self.stats.write_failures += 1
            return
        self.stats.readings_written += outcome.readings
        self.stats.lag_s = (time.time_ns() - outcome.received_ns) / 1e9

    def _report_stats(self) -> None:
        s = self.stats
        depth = self._queue.qsize()
        spool_bytes = self._spool.depth_bytes()
        log.info(
            "collector %s: received %d acked %d spooled %d written %d quarantined %d queued %d spool %d B lag %.1f s",
            self.client_id,
            s.received,
            s.acked,
            s.readings_spooled,
            s.readings_written,
            s.quarantined,
            depth,
            spool_bytes,
            s.lag_s,
        )
        point = COLLECTOR_STATS.point(
            {"replica": self.client_id},
            {
                "received": s.received,
                "acked": s.acked,
                "readings_spooled": s.readings_spooled,
                "readings_written": s.readings_written,
                "quarantined": s.quarantined,
                "queue_depth": depth,
                "spool_depth_bytes": spool_bytes,
                "lag_s": float(s.lag_s),
                "write_failures": s.write_failures,
            },
            self._clock.now_ns(),
        )
        try:
            self._store.write([point])
        except InfluxError as exc:
            log.warning("collector %s: could not write its stats: %s", self.client_id, exc)
