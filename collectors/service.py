"""The collector: MQTT 5 → parse → InfluxDB, acknowledging a message only once it is stored.

- QoS 1, a fixed client id per replica, ``clean_start=False`` and a session expiry, so the broker
  queues for a replica while it restarts;
- manual acknowledgement (paho 2.x ``manual_ack``): the PUBACK goes out after InfluxDB accepted
  the batch holding the message, so a crash before that means redelivery, never loss;
- the point's time is the meter's timestamp, so a redelivered reading overwrites itself;
- by default one replica subscribes directly: Mosquitto restores such subscriptions from its
  persistence, so readings published after a broker restart wait for the collector in its session;
- with a share group, replicas share ``$share/<group>/...`` reading subscriptions for throughput.
  Mosquitto 2.0.11 does not restore shared subscriptions from its persistence (measured, see
  ``tests/integration/test_collector_faults.py``): readings published after a broker restart and
  before a replica has resubscribed reach no subscriber and are dropped;
- status topics are always subscribed directly because retained messages are not sent to shared
  subscriptions (MQTT 5 §4.8.2);
- bad input goes to ``quarantine`` with its reason and raw payload, is counted, and is acked.

Callbacks only hand messages to a queue; one writer thread parses, writes and acks in order.
"""

from __future__ import annotations

import json
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

from collectors.decode import READING_ROUTES, STATUS_ROUTES, parse_message, status_gateway, status_state
from collectors.model import Reason, Rejection
from collectors.points import UniqueClock, quarantine_point, reading_point, status_point
from collectors.spool import Spool
from park.lineprotocol import LineProtocolError, Point, encode
from park.registry import Registry
from park.settings import Settings
from park.store import InfluxError, InfluxStore

log = logging.getLogger("parkcarbon.collector")


@dataclass(frozen=True, slots=True)
class _Message:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ns: int


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
        self._queue: queue.Queue[_Message] = queue.Queue()
        self._stop = threading.Event()
        self._clock = UniqueClock()
        self._subscribed = threading.Event()
        self._connect_error: str | None = None
        self._store = InfluxStore(settings.influx)
        self._spool = Spool(settings.collector.spool_dir or settings.run_dir / "spool" / self.client_id)
        self._stop_draining = threading.Event()
        self._max_age = timedelta(days=settings.collector.max_reading_age_days)
        self._drain_deadline = 0.0
        self._receiver = threading.Thread(target=self._receive_loop, name=f"{self.client_id}-receiver", daemon=True)
        self._drainer = threading.Thread(target=self._drain_loop, name=f"{self.client_id}-drainer", daemon=True)
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
        client.subscribe(
            [(prefix + route.topic_filter, 1) for route in READING_ROUTES]
            + [(topic_filter, 1) for topic_filter, _ in STATUS_ROUTES]
        )

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
        """Fires for each PUBLISH; hands it to the writer at once (no PUBACK yet)."""
        self.stats.received += 1
        self._queue.put(_Message(msg.mid, msg.qos, msg.topic, bytes(msg.payload), time.time_ns()))

    def _on_disconnect(
        self, _c: mqtt.Client, _u: object, _f: mqtt.DisconnectFlags, reason: ReasonCode, _p: Properties | None
    ) -> None:
        """Fires when the connection ends; paho's loop reconnects with backoff unless we stopped."""
        if not self._stop.is_set():
            log.warning("collector %s disconnected: %s; reconnecting", self.client_id, reason)

    def start(self, timeout_s: float = 15.0) -> None:
        """Connect, subscribe, start spooling and draining; raise if the broker refuses.

        The drainer starts first: what an earlier run spooled but did not write goes to InfluxDB
        before anything new.
        """
        self._store.create_database()
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho is untyped here
        properties.SessionExpiryInterval = self.settings.collector.session_expiry_s
        properties.ReceiveMaximum = self.settings.collector.receive_maximum
        self._drainer.start()
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
        self._drain_deadline = time.monotonic() + drain_timeout_s
        self._stop_draining.set()
        if self._drainer.is_alive():
            self._drainer.join(drain_timeout_s + 5)
        self._report_stats()
        self._spool.close()
        self._store.close()

    # -- receiving: parse, spool (fsync), acknowledge ---------------------------------------------------

    def _next_batch(self) -> list[_Message]:
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

    def _spool_batch(self, batch: list[_Message]) -> None:
        """Turn the batch into line protocol and append it to the spool; returns once it is on disk."""
        lines: list[str] = []
        for message in batch:
            points, readings, rejections = self._points_of(message)
            for point in points:
                try:
                    lines.append(encode(point))
                except LineProtocolError as exc:
                    rejection = Rejection(Reason.SCHEMA, f"cannot be stored: {exc}", "", "", "")
                    lines.append(
                        encode(quarantine_point(rejection, message.topic, message.payload, self._clock.now_ns()))
                    )
                    rejections.append(rejection)
            self.stats.readings_spooled += readings
            self.stats.quarantined += len(rejections)
            for rejection in rejections:
                reason = rejection.reason.value
                self.stats.quarantined_by_reason[reason] = self.stats.quarantined_by_reason.get(reason, 0) + 1
        if lines:
            self._spool.append("\n".join(lines), batch[0].received_ns)

    # -- draining: spool → InfluxDB, with retry and backoff ------------------------------------------------

    def _drain_loop(self) -> None:
        position = self._spool.committed
        delay = 0.5
        while True:
            records = self._spool.read(position, max_bytes=2_000_000)
            if not records:
                if self._stop_draining.is_set():
                    return
                self._spool.wait(position, 0.5)
                continue
            text = "\n".join(r.text for r in records)
            try:
                self._store.write_lines(text)
            except InfluxError as exc:
                self.stats.write_failures += 1
                if exc.retryable:
                    if self._stop_draining.is_set() and time.monotonic() > self._drain_deadline:
                        log.warning(
                            "collector %s: InfluxDB unavailable at stop; %d bytes stay spooled",
                            self.client_id,
                            self._spool.depth_bytes(),
                        )
                        return
                    log.warning(
                        "collector %s: InfluxDB write failed (%s); retrying in %.1f s", self.client_id, exc, delay
                    )
                    time.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                self._write_line_by_line(text, exc)
            delay = 0.5
            position = records[-1].end
            self._spool.commit(position)
            self.stats.readings_written += sum(line.startswith("meter_register,") for line in text.split("\n"))
            self.stats.lag_s = (time.time_ns() - records[-1].received_ns) / 1e9

    def _write_line_by_line(self, text: str, first_error: InfluxError) -> None:
        """InfluxDB will never take this text as it is: write it line by line so one bad point cannot
        hold the rest back, and quarantine the refused lines (raw line protocol kept)."""
        log.error("collector %s: InfluxDB refused a batch (%s); writing line by line", self.client_id, first_error)
        for line in text.split("\n"):
            try:
                self._store.write_lines(line)
            except InfluxError as exc:
                rejection = Rejection(Reason.SCHEMA, f"InfluxDB refused the point: {exc}")
                self._store.write([quarantine_point(rejection, "(spool)", line.encode(), self._clock.now_ns())])

    def _points_of(self, message: _Message) -> tuple[list[Point], int, list[Rejection]]:
        if status_gateway(message.topic) is not None:
            return self._status_points(message)
        parsed = parse_message(message.topic, message.payload, self.registry, datetime.now(UTC), self._max_age)
        points = [reading_point(r) for r in parsed.readings]
        points += [quarantine_point(r, message.topic, message.payload, self._clock.now_ns()) for r in parsed.rejections]
        return points, len(parsed.readings), parsed.rejections

    def _status_points(self, message: _Message) -> tuple[list[Point], int, list[Rejection]]:
        """``gateway_status`` from a retained status or a last will; the time is the payload's ``at``
        when it has one (so every replica writes the same point), else the receive time."""
        gateway_id = status_gateway(message.topic) or ""
        parts = message.topic.split("/")
        gateway = self.registry.gateway_by_id.get(gateway_id)
        state = status_state(message.payload)
        rejection = None
        if gateway is None:
            rejection = Rejection(Reason.UNKNOWN_GATEWAY, f"status of unknown gateway {gateway_id!r}", "", gateway_id)
        elif parts[0] == "carbon" and parts[2] != gateway.enterprise:
            rejection = Rejection(
                Reason.SPOOFED, f"status of {gateway_id!r} under enterprise {parts[2]!r}", parts[2], gateway_id
            )
        elif state is None:
            rejection = Rejection(Reason.SCHEMA, "status is neither online nor offline", gateway.enterprise, gateway_id)
        if rejection is not None or gateway is None or state is None:
            assert rejection is not None
            return [quarantine_point(rejection, message.topic, message.payload, self._clock.now_ns())], 0, [rejection]
        at = datetime.fromtimestamp(message.received_ns / 1e9, UTC)
        try:
            stated = json.loads(message.payload).get("at")
            parsed_at = datetime.fromisoformat(stated) if isinstance(stated, str) else None
            at = parsed_at if parsed_at is not None and parsed_at.tzinfo else at
        except (ValueError, AttributeError, UnicodeDecodeError):
            pass
        return [status_point(gateway.enterprise, gateway_id, state, at)], 0, []

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
        point = Point(
            "collector_stats",
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
