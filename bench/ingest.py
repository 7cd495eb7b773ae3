"""Ingest benchmark: the collector's end-to-end readings/s (published → in InfluxDB, QoS 1, zero loss,
every point checked) and its CPU µs per reading, for 1 and 2 replicas, beside the raw limits measured
in the same run on the same messages:

- raw Mosquitto delivery: the same publishers to a QoS 1 subscriber that does nothing;
- raw InfluxDB: the same readings as the collector's line protocol, 5,000 points per request, one
  connection.

The workload is the peer benchmark's (10 native gateways × 50 meters, 15-minute readings), at 1 and
at 50 readings per message. The publishers must not be the bottleneck: the messages are built before
the clock starts and sent by several processes (``--publishers``), each for its own gateways, with
up to 1,000 unacknowledged messages per gateway. Collectors run as their own processes
(``parkcarbon collect``), one per replica, with a share group for two.

Run: ``.venv/bin/python bench/ingest.py [--per-message 1,50] [--readings 20000,200000]``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collectors.handler import Received, handle_batch
from collectors.points import UniqueClock
from park.registry import Registry, parse_registry
from park.settings import InfluxSettings, Settings
from park.store import InfluxStore
from park.topics import collector_user, subscriptions
from parkcarbon.runtime import environ_without_credentials, settings_for_run_dir
from parkcarbon.services import LocalServices, free_ports, load_credentials

GATEWAYS = 10
METERS_PER_GATEWAY = 50
ENTERPRISE = "acme"
TZ = timezone(timedelta(hours=8))
STEP = timedelta(minutes=15)
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
Sent = tuple[float, float, int]  # a publisher's first publish, last PUBACK (monotonic s), messages


def gateway_id(g: int) -> str:
    return f"gw-{g + 1:02d}"


def meter_id(g: int, m: int) -> str:
    return f"E-{g + 1:02d}-{m + 1:03d}"


def bench_registry() -> dict[str, object]:
    """The workload's registry: one enterprise, its native gateways and their grid meters."""
    return {
        "version": f"bench-ingest-{GATEWAYS}x{METERS_PER_GATEWAY}",
        "park": {"id": "bench", "name": "ingest benchmark", "timezone": "Asia/Shanghai"}
        | {"latitude_deg": 31.82, "longitude_deg": 117.13},
        "enterprises": [{"id": ENTERPRISE, "name": "ingest benchmark", "industry": "C39"}],
        "gateways": [
            {"id": gateway_id(g), "enterprise": ENTERPRISE, "model": "bench", "format": "native"}
            for g in range(GATEWAYS)
        ],
        "meters": [
            {
                "id": meter_id(g, m),
                "gateway": gateway_id(g),
                "enterprise": ENTERPRISE,
                "carrier": "grid_electricity",
                "role": "main",
                "unit": "kWh",
                "registers": ["active_energy_import"],
            }
            for g in range(GATEWAYS)
            for m in range(METERS_PER_GATEWAY)
        ],
    }


@dataclass(frozen=True)
class Workload:
    readings: int  # in all
    per_message: int
    start: datetime  # the first interval

    @property
    def per_gateway(self) -> int:
        return self.readings // GATEWAYS

    def messages(self, g: int) -> list[tuple[str, bytes]]:
        """Gateway ``g``'s messages in order: reading j is meter j % 50 at interval j // 50."""
        topic = f"carbon/v1/{ENTERPRISE}/{gateway_id(g)}/readings"
        out = []
        for seq, first in enumerate(range(0, self.per_gateway, self.per_message), start=1):
            readings = []
            for j in range(first, first + self.per_message):
                m, t = j % METERS_PER_GATEWAY, j // METERS_PER_GATEWAY
                readings.append(
                    {
                        "meter": meter_id(g, m),
                        "ts": (self.start + t * STEP).astimezone(TZ).isoformat(),
                        "register": "active_energy_import",
                        "value": round(100_000 + g * 1_000 + m * 10 + t * 0.25 + (m % 4) * 0.01, 2),
                        "unit": "kWh",
                    }
                )
            body = {"gateway": gateway_id(g), "seq": seq, "readings": readings}
            out.append((topic, json.dumps(body, separators=(",", ":")).encode()))
        return out

    def expected(self) -> dict[tuple[str, int], float]:
        """(meter, time in ns) → raw_value of every reading."""
        found = {}
        for g in range(GATEWAYS):
            for j in range(self.per_gateway):
                m, t = j % METERS_PER_GATEWAY, j // METERS_PER_GATEWAY
                at = int((self.start + t * STEP).timestamp()) * 1_000_000_000
                found[(meter_id(g, m), at)] = round(100_000 + g * 1_000 + m * 10 + t * 0.25 + (m % 4) * 0.01, 2)
        return found


def _publisher(
    port: int, gateways: list[int], passwords: dict[str, str], work: Workload, go: Event, out: Queue[Sent]
) -> None:
    """One publisher process: its gateways' connections and messages ready before ``go``; then every
    message sent (QoS 1) round robin over its gateways, and (first publish, last PUBACK) reported."""
    queues = {g: work.messages(g) for g in gateways}
    acked = threading.Semaphore(0)
    clients = {}
    for g in gateways:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=gateway_id(g), protocol=mqtt.MQTTv5)
        client.username_pw_set(gateway_id(g), passwords[gateway_id(g)])
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_publish = lambda *_a: acked.release()
        client.connect("127.0.0.1", port)
        client.loop_start()
        clients[g] = client
    time.sleep(0.5)  # connected (CONNACK) before the clock starts
    go.wait()
    first = time.monotonic()
    total = 0
    for i in range(max(len(q) for q in queues.values())):
        for g, q in queues.items():
            if i < len(q):
                clients[g].publish(*q[i], qos=1)
                total += 1
    for _ in range(total):
        acked.acquire()
    last = time.monotonic()
    for client in clients.values():
        client.disconnect()
        client.loop_stop()
    out.put((first, last, total))


def publish(port: int, passwords: dict[str, str], work: Workload, processes: int) -> tuple[float, float]:
    """Send the workload from ``processes`` publisher processes; (first publish, last PUBACK), monotonic."""
    ctx = mp.get_context("fork")
    go = ctx.Event()
    out: Queue[Sent] = ctx.Queue()
    shares = [list(range(GATEWAYS))[p::processes] for p in range(processes)]
    procs = [ctx.Process(target=_publisher, args=(port, s, passwords, work, go, out)) for s in shares if s]
    for proc in procs:
        proc.start()
    time.sleep(1.0 + 0.002 * work.readings / work.per_message / processes)  # messages built, connected
    go.set()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(30)
    return min(r[0] for r in results), max(r[1] for r in results)


def raw_mosquitto(port: int, passwords: dict[str, str], work: Workload, processes: int) -> float:
    """Readings/s delivered to a QoS 1 subscriber that only counts."""
    expected = work.readings // work.per_message
    got = 0
    done, ready = threading.Event(), threading.Event()

    def on_message(*_a: object) -> None:
        nonlocal got
        got += 1
        if got >= expected:
            done.set()

    user = collector_user(0)  # a collector replica's account: it may read
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
    sub.username_pw_set(user, passwords[user])
    sub.on_connect = lambda c, *_a: c.subscribe([(f, 1) for f in subscriptions()[0]])
    sub.on_subscribe = lambda *_a: ready.set()
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    ready.wait(10)
    first, _ = publish(port, passwords, work, processes)
    done.wait(600)
    elapsed = time.monotonic() - first
    sub.disconnect()
    sub.loop_stop()
    return work.readings / elapsed


def raw_influx(run_dir: Path, influx: InfluxSettings, registry: Registry, work: Workload) -> float:
    """Readings/s of writing the collector's own lines for the workload, 5,000 a request."""
    now = datetime.now(UTC)
    received = [Received(0, 1, t, p, 0) for g in range(GATEWAYS) for t, p in work.messages(g)]
    handled = handle_batch(received, registry, UniqueClock(), now, timedelta(days=400))
    lines = [line for h in handled for line in h.lines]
    assert len(lines) == work.readings and all(not h.rejections for h in handled)
    requests = ["\n".join(lines[i : i + 5000]) for i in range(0, len(lines), 5000)]
    database = f"bench_raw_{work.per_message}"
    LocalServices(run_dir).create_database(database)  # by the admin
    with InfluxStore(influx.model_copy(update={"database": database})) as store:
        start = time.monotonic()
        for body in requests:
            store.write_lines(body)
        elapsed = time.monotonic() - start
    return work.readings / elapsed


def end_sessions(port: int, passwords: dict[str, str], replicas: int) -> None:
    """Discard the broker sessions of collector replicas 0 … replicas-1 (a clean start, then a disconnect
    with session expiry 0): a run starts without what an earlier run subscribed or queued for them."""
    for replica in range(replicas):
        user = collector_user(replica)
        connected = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=mqtt.MQTTv5)
        client.username_pw_set(user, passwords[user])
        client.on_connect = lambda *_a, done=connected: done.set()
        expiry = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho is untyped here
        expiry.SessionExpiryInterval = 0
        client.connect("127.0.0.1", port, clean_start=True, properties=expiry)
        client.loop_start()
        try:
            if not connected.wait(10):
                raise RuntimeError(f"{user} could not connect to end its session")
        finally:
            client.disconnect()
            client.loop_stop()


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S  # utime + stime


@dataclass(frozen=True)
class EndToEnd:
    rate: float  # readings/s from the first publish until InfluxDB holds every reading
    cpu_us_per_reading: float  # the collector processes' CPU time, all replicas together


def end_to_end(
    run_dir: Path,
    registry_path: Path,
    port: int,
    influx: InfluxSettings,
    passwords: dict[str, str],
    work: Workload,
    replicas: int,
    processes: int,
) -> EndToEnd:
    database = f"bench_e2e_{work.per_message}_{replicas}"
    LocalServices(run_dir).create_database(database)  # by the admin; the collectors may only write
    end_sessions(port, passwords, 2)
    env = {
        **environ_without_credentials(),  # each collector resolves its own accounts from the run directory
        "PARKCARBON_RUN_DIR": str(run_dir),
        "PARKCARBON_REGISTRY": str(registry_path),
        "PARKCARBON_INFLUX__DATABASE": database,
    }
    env.pop("PARKCARBON_COLLECTOR__SHARE_GROUP", None)
    if replicas > 1:
        env["PARKCARBON_COLLECTOR__SHARE_GROUP"] = database
    procs = []
    for replica in range(replicas):
        log = run_dir / f"{database}-{replica}.log"
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "parkcarbon", "collect", "--first-replica", str(replica)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        while b"collecting with" not in log.read_bytes():
            if procs[-1].poll() is not None:
                raise RuntimeError(log.read_text())
            time.sleep(0.05)
    store = InfluxStore(influx.model_copy(update={"database": database}))
    try:
        cpu_before = sum(cpu_s(p.pid) for p in procs)
        first, _ = publish(port, passwords, work, processes)
        deadline = time.monotonic() + 600
        while (count := _count(store)) < work.readings and time.monotonic() < deadline:
            time.sleep(0.05)
        elapsed = time.monotonic() - first
        cpu = sum(cpu_s(p.pid) for p in procs) - cpu_before
        _verify(store, work, count)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        store.close()
    return EndToEnd(work.readings / elapsed, cpu / work.readings * 1e6)


def _count(store: InfluxStore) -> int:
    frame = store.query('SELECT COUNT("raw_value") FROM "meter_register"')
    return int(frame["count"].iloc[0]) if len(frame) else 0


def _verify(store: InfluxStore, work: Workload, count: int) -> None:
    """Every reading stored once, at its time, with its value, and nothing quarantined."""
    frame = store.query('SELECT "raw_value" FROM "meter_register" GROUP BY "meter"')
    stored = {(m, int(t.value)): v for m, t, v in zip(frame["meter"], frame["time"], frame["raw_value"], strict=True)}
    quarantined = store.query('SELECT COUNT("payload_bytes") FROM "quarantine"')
    if stored != work.expected() or len(quarantined) or count != work.readings:
        raise SystemExit(f"not every reading was stored exactly: {len(stored)} of {work.readings}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-message", default="1,50", help="readings per message, one run each")
    parser.add_argument("--readings", default="20000,200000", help="readings in all, one per --per-message")
    parser.add_argument("--publishers", type=int, default=5, help="publisher processes")
    args = parser.parse_args()
    sizes = [int(k) for k in args.per_message.split(",")]
    totals = [int(n) for n in args.readings.split(",")]
    start = (datetime.now(UTC) - timedelta(days=90)).replace(hour=0, minute=0, second=0, microsecond=0)
    document = bench_registry()
    registry = parse_registry(document)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    registry_path = run_dir / "registry.yaml"
    registry_path.write_text(json.dumps(document))  # JSON is YAML
    services = LocalServices(run_dir)
    ports = services.up(registry, free_ports(), database="bench_raw")
    influx = settings_for_run_dir(Settings(run_dir=run_dir), "pipeline").influx  # reads and writes
    passwords = load_credentials(run_dir)
    rows = []
    try:
        for k, n in zip(sizes, totals, strict=True):
            work = Workload(n, k, start)
            mqtt_rate = raw_mosquitto(ports.mqtt, passwords, work, args.publishers)
            influx_rate = raw_influx(run_dir, influx, registry, work)
            e2e = [
                end_to_end(run_dir, registry_path, ports.mqtt, influx, passwords, work, r, args.publishers)
                for r in (1, 2)
            ]
            rows.append((work, mqtt_rate, influx_rate, e2e))
    finally:
        services.down()
        shutil.rmtree(run_dir, ignore_errors=True)
    print(
        f"{GATEWAYS} native gateways x {METERS_PER_GATEWAY} meters, {args.publishers} publisher processes,"
        f" QoS 1, on {os.cpu_count()} cores; every reading verified in InfluxDB"
    )
    head = f"{'per msg':>7} {'readings':>9} {'raw Mosquitto':>14} {'raw InfluxDB':>13}"
    print(f"{head}   collector: readings/s, share of the slower limit (CPU us per reading)")
    for work, mqtt_rate, influx_rate, e2e in rows:
        limit = min(mqtt_rate, influx_rate)
        cells = "   ".join(
            f"{r} replica{'s' if r > 1 else ''} {x.rate:>9,.0f} = {x.rate / limit:.2f} ({x.cpu_us_per_reading:.1f} us)"
            for r, x in zip((1, 2), e2e, strict=True)
        )
        print(f"{work.per_message:>7} {work.readings:>9,} {mqtt_rate:>14,.0f} {influx_rate:>13,.0f}   {cells}")


if __name__ == "__main__":
    main()
