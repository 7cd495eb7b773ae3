"""Ingest benchmark: end-to-end readings/s (published → queryable in InfluxDB, QoS 1, zero loss) for
1 and 2 collector replicas, next to two limits measured in the same run on the same messages:

- the raw Mosquitto delivery rate to a subscriber that does nothing (QoS 1);
- the raw InfluxDB line-protocol write rate of the same readings (5,000-point batches).

Gateways batch readings as real ones do (4 intervals per native message). Collectors run as their
own processes (``parkcarbon collect``), one per replica. Run: ``.venv/bin/python bench/ingest.py``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pandas as pd
from paho.mqtt.enums import CallbackAPIVersion

from collectors.decode import READING_ROUTES, parse_message
from collectors.points import reading_point
from park.registry import DEFAULT_TIMEZONE, load_registry
from park.settings import DEMO_REGISTRY, InfluxSettings, MqttSettings, Settings
from park.store import InfluxStore
from parkcarbon.runtime import environ_without_credentials, settings_for_run_dir
from parkcarbon.services import LocalServices, free_ports, load_credentials
from simulators.publisher import send_plan
from simulators.run import simulate_run

TZ = ZoneInfo(DEFAULT_TIMEZONE)


def raw_mqtt_rate(run_dir: Path, port: int, plan, registry) -> float:  # type: ignore[no-untyped-def]
    """Readings/s delivered by Mosquitto to a QoS 1 subscriber that does nothing with them."""
    creds = load_credentials(run_dir)
    expected = len(plan)
    got = 0
    done = threading.Event()
    ready = threading.Event()

    def on_message(*_args: object) -> None:
        nonlocal got
        got += 1
        if got >= expected:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=mqtt.MQTTv5)
    sub.username_pw_set("collector-0", creds["collector-0"])  # a collector replica's account: it may read
    sub.on_connect = lambda c, *_: c.subscribe([(r.topic_filter, 1) for r in READING_ROUTES])
    sub.on_subscribe = lambda *_: ready.set()
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    ready.wait(10)
    start = time.monotonic()
    send_plan(registry, plan, MqttSettings(port=port), creds)
    done.wait(300)
    elapsed = time.monotonic() - start
    sub.disconnect()
    sub.loop_stop()
    return sum(m.readings for m in plan) / elapsed


def raw_influx_rate(influx: InfluxSettings, plan, registry) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Readings/s of writing the same readings as line protocol (database bench_raw, created by the
    admin), and how many there are."""
    later = max(m.due for m in plan).to_pydatetime() + timedelta(days=1)
    readings = [r for m in plan for r in parse_message(m.topic, m.payload, registry, later).readings]
    points = [reading_point(r) for r in readings]
    with InfluxStore(influx.model_copy(update={"database": "bench_raw"})) as store:
        start = time.monotonic()
        store.write(points, batch_size=5000)
        elapsed = time.monotonic() - start
    return len(points) / elapsed, len(points)


def end_to_end_rate(
    run_dir: Path,
    port_mqtt: int,
    influx: InfluxSettings,
    plan,
    registry,
    replicas: int,  # type: ignore[no-untyped-def]
    distinct: int,
) -> tuple[float, int]:
    """Readings/s from the first publish until InfluxDB holds every reading; collector peak RSS [kB]."""
    database = f"bench_e2e_{replicas}"
    LocalServices(run_dir).create_database(database)  # by the admin; the collectors may only write
    env = {
        **environ_without_credentials(),  # each collector resolves its own accounts from the run directory
        "PARKCARBON_RUN_DIR": str(run_dir),
        "PARKCARBON_INFLUX__DATABASE": database,
        "PARKCARBON_COLLECTOR__SHARE_GROUP": database,
    }
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
            time.sleep(0.05)
    store = InfluxStore(influx.model_copy(update={"database": database}))
    peak_kb = 0
    try:
        start = time.monotonic()
        send_plan(registry, plan, MqttSettings(port=port_mqtt), load_credentials(run_dir))
        while True:
            frame = store.query('SELECT COUNT("raw_value") FROM "meter_register"')
            count = int(frame["count"].iloc[0]) if len(frame) else 0
            for proc in procs:
                status = Path(f"/proc/{proc.pid}/status").read_text()
                peak_kb = max(peak_kb, int(status.split("VmHWM:")[1].split()[0]))
            if count >= distinct:
                break
            time.sleep(0.05)
        elapsed = time.monotonic() - start
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        store.close()
    return sum(m.readings for m in plan) / elapsed, peak_kb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=20, help="days of 15-minute readings of the demo park")
    args = parser.parse_args()
    registry = load_registry(DEMO_REGISTRY)
    start = datetime(2026, 3, 1, tzinfo=TZ)
    run = simulate_run(registry, start, start + timedelta(days=args.days), pd.Timedelta("15min"), 1)
    readings = sum(m.readings for m in run.plan)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    services = LocalServices(run_dir)
    ports = services.up(registry, free_ports(), database="bench_raw")
    influx = settings_for_run_dir(Settings(run_dir=run_dir), "pipeline").influx  # reads and writes
    try:
        mqtt_rate = raw_mqtt_rate(run_dir, ports.mqtt, run.plan, registry)
        influx_rate, distinct = raw_influx_rate(influx, run.plan, registry)
        results = [end_to_end_rate(run_dir, ports.mqtt, influx, run.plan, registry, n, distinct) for n in (1, 2)]
    finally:
        services.down()
    limit = min(mqtt_rate, influx_rate)
    print(
        f"{readings:,} readings in {len(run.plan):,} messages ({args.days} days, {len(registry.meters)} meters, "
        f"{len(registry.gateways)} gateways), on {os.cpu_count()} cores"
    )
    print(f"  raw Mosquitto delivery, QoS 1, no-op subscriber  {mqtt_rate:>10,.0f} readings/s")
    print(f"  raw InfluxDB line-protocol write, 5,000/batch     {influx_rate:>10,.0f} readings/s")
    for replicas, (rate, peak_kb) in zip((1, 2), results, strict=True):
        print(
            f"  end to end, {replicas} replica(s), zero loss            {rate:>10,.0f} readings/s  "
            f"= {rate / limit:.2f} of the slower limit  (collector peak RSS {peak_kb / 1024:.0f} MiB)"
        )


if __name__ == "__main__":
    main()
