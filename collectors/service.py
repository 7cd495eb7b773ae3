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
- bad input is quarantined with its reason and raw payload, counted, and acked; whatever a payload
  does, it ends in its own quarantine row (``collectors.handler``), and the rows a message and a
  gateway may make are bounded (``collectors.budget``);
- a reading that would rewrite a stored value is quarantined as a conflict (``collectors.conflicts``);
- the registry may be swapped while running (:meth:`Collector.use_registry`, by
  ``collectors.registry_reload``): each batch is handled under one registry, the one in force when
  the receiver takes it, and nothing queued or spooled is dropped.

Callbacks stay thin: ``on_connect`` subscribes, ``on_message`` queues. One receiver thread turns
the queued messages into line protocol (``collectors.handler``), appends it to the spool and acks,
in order, and reports the statistics (:data:`COLLECTOR_STATS`); the sink (``collectors.sink``)
drains the spool into InfluxDB in a thread of its own. A supervisor (``collectors.supervise``)
restarts either thread if it dies, resuming the receiver's unacknowledged batch; a thread it cannot
keep alive makes :attr:`Collector.healthy` false.
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

from collectors.budget import QuarantineBudget
from collectors.conflicts import ConflictGuard
from collectors.fastnative import FastNative
from collectors.handler import Handled, Received, handle_batch
from collectors.points import UniqueClock
from collectors.sink import Outcome, Sink
from collectors.spool import Spool
from collectors.supervise import Supervisor
from park.measurements import COLLECTOR_STATS
from park.registry import Registry
from park.settings import Settings
from park.store import InfluxError, InfluxStore
from park.topics import collector_user, subscriptions

log = logging.getLogger("parkcarbon.collector")


@dataclass
class CollectorStats:
    received: int = 0
    acked: int = 0
    readings_spooled: int = 0
    readings_written: int = 0  # in InfluxDB
    lag_s: float = 0.0  # receive → InfluxDB, of the last record written
    quarantined: int = 0  # quarantine rows written (spooled by the receiver, or made by the sink)
    write_failures: int = 0
    quarantine_dropped: int = 0  # quarantine rows over a gateway's budget: counted, not written
    thread_restarts: int = 0  # receiver or drainer threads the supervisor restarted
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)


# A share group's replicas write the same series: the conflict guard takes a series' latest time from
# InfluxDB again when what it knows is older than this (see collectors.conflicts).
SHARED_REFRESH_S = 30.0


class Collector:
    """One collector replica."""

    def __init__(self, settings: Settings, registry: Registry, replica: int = 0) -> None:
        self.settings = settings
        self.registry = registry  # the registry batches are handled under; swapped by use_registry
        self.replica = replica
        # The replica's broker account: Mosquitto makes the user name the client id, so only this
        # account can present it and take over the replica's session.
        self.client_id = collector_user(replica)
        self.stats = CollectorStats()
        self._stats_lock = threading.Lock()  # quarantine rows are counted by the receiver and by the sink
        self._queue: queue.Queue[Received] = queue.Queue()
        self._stop = threading.Event()
        self._clock = UniqueClock()
        self._subscribed = threading.Event()
        self._connect_error: str | None = None
        self._store = InfluxStore(settings.influx)
        self._spool = Spool(settings.collector.spool_dir or settings.run_dir / "spool" / self.client_id)
        self._budget = QuarantineBudget()
        refresh = SHARED_REFRESH_S if settings.collector.share_group else None
        self._guard = ConflictGuard(self._store, registry, self._clock, self._budget, refresh)
        self._sink = Sink(self._spool, self._store, self._clock, self.client_id, self._count_drained, self._guard)
        self._max_age = timedelta(days=settings.collector.max_reading_age_days)
        # the registry and its fast path, swapped together as one tuple: the receiver reads both at once
        self._handling: tuple[Registry, FastNative] = (registry, FastNative(registry))
        self._pending: list[Received] = []  # the batch being spooled and acked, resumed after a restart
        self._pending_spooled = False
        self._pending_acked = 0
        self._pending_handled: list[Handled] | None = None
        self._receiver = self._new_receiver()
        self._supervisor = Supervisor(self.client_id, self._count_restart)
        self._supervisor.watch("receiver", lambda: self._receiver.is_alive(), self._restart_receiver)
        self._supervisor.watch("drainer", lambda: self._sink.alive, self._sink.restart)
        self.client = self._make_client()

    def use_registry(self, registry: Registry) -> None:
        """Handle the next batches under ``registry`` (a reload); the batch being handled finishes under
        the one it started with. Called from another thread: one tuple assignment, atomic."""
        self._handling = (registry, FastNative(registry))
        self.registry = registry
        self._guard.use_registry(registry)

    # -- MQTT -----------------------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        client.username_pw_set(self.client_id, self.settings.mqtt.password_for(self.client_id))
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
        """Fires for each PUBLISH; hands it to the receiver thread at once (no PUBACK yet). Never
        raises: paho would end its network loop."""
        self.stats.received += 1
        try:
            self._queue.put(Received.of(msg, time.time_ns()))
        except Exception:
            log.exception("collector %s: a message could not be queued; the broker redelivers it", self.client_id)

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
        self._supervisor.start()
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
        self._supervisor.stop()
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

    @property
    def healthy(self) -> bool:
        """False once the supervisor could not keep the receiver or the drainer alive."""
        return self._supervisor.healthy

    def _new_receiver(self) -> threading.Thread:
        return threading.Thread(target=self._receive, name=f"{self.client_id}-receiver", daemon=True)

    def _receive(self) -> None:
        """The receiver thread: the receive loop until stopped, or until it fails (the supervisor sees it end)."""
        try:
            self._receive_loop()
        except Exception:
            log.exception("collector %s: the receiver failed", self.client_id)

    def _restart_receiver(self) -> None:
        if not self._receiver.is_alive() and not self._stop.is_set():
            self._receiver = self._new_receiver()
            self._receiver.start()

    def _receive_loop(self) -> None:
        last_stats = time.monotonic()
        while not (self._stop.is_set() and self._queue.empty() and not self._pending):
            if not self._pending:  # else a restarted receiver finishes the batch its predecessor died in
                self._pending, self._pending_spooled, self._pending_acked = self._next_batch(), False, 0
                self._pending_handled = None
            if self._pending:
                if not self._pending_spooled:
                    self._spool_batch(self._pending)
                    self._pending_spooled = True
                for message in self._pending[self._pending_acked :]:
                    if message.qos > 0:
                        self.client.ack(message.mid, message.qos)
                    self.stats.acked += 1
                    self._pending_acked += 1
                self._pending = []
            if time.monotonic() - last_stats >= self.settings.collector.stats_interval_s:
                self._report_stats()
                last_stats = time.monotonic()

    def _spool_batch(self, batch: list[Received]) -> None:
        """Turn the batch into line protocol and append it to the spool; returns once it is on disk.
        A receiver restarted after a failed append appends what its predecessor had made."""
        if self._pending_handled is None:
            now = datetime.now(UTC)
            registry, fast = self._handling
            self._pending_handled = handle_batch(batch, registry, self._clock, now, self._max_age, self._budget, fast)
        lines = [line for handled in self._pending_handled for line in handled.lines]
        if lines:
            self._spool.append("\n".join(lines), batch[0].received_ns)
        for handled in self._pending_handled:
            self._count_handled(handled)

    # -- statistics ---------------------------------------------------------------------------------------

    def _count_handled(self, handled: Handled) -> None:
        self.stats.readings_spooled += handled.readings
        with self._stats_lock:
            self.stats.quarantine_dropped += handled.dropped
        for rejection in handled.rejections:
            self._count_quarantined(rejection.reason.value, 1)

    def _count_quarantined(self, reason: str, rows: int) -> None:
        with self._stats_lock:
            self.stats.quarantined += rows
            self.stats.quarantined_by_reason[reason] = self.stats.quarantined_by_reason.get(reason, 0) + rows

    def _count_drained(self, outcome: Outcome) -> None:
        """The sink's report, from its thread."""
        if outcome.error is not None:
            self.stats.write_failures += 1
            return
        self.stats.readings_written += outcome.readings
        with self._stats_lock:
            self.stats.quarantine_dropped += outcome.dropped
        for reason, rows in outcome.quarantined:
            self._count_quarantined(reason, rows)
        self.stats.lag_s = (time.time_ns() - outcome.received_ns) / 1e9

    def _count_restart(self, _thread: str) -> None:
        self.stats.thread_restarts += 1

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
                "quarantine_dropped": s.quarantine_dropped,
                "thread_restarts": s.thread_restarts,
            },
            self._clock.now_ns(),
        )
        try:
            self._store.write([point])
        except InfluxError as exc:
            log.warning("collector %s: could not write its stats: %s", self.client_id, exc)
        except Exception:  # statistics must never stop the receiver
            log.exception("collector %s: could not report its stats", self.client_id)
