"""Broker persistence benchmark: what saving Mosquitto's database often costs, and what a kill -9 loses
with each setting.

For each persistence setting (``autosave_on_changes false`` with ``autosave_interval`` 30 s as before,
every ``--seconds`` N s (parkcarbon writes 1 s now), and ``autosave_on_changes true`` every ``--changes``
N changes), on Mosquitto 2.0.11 with
the demo park's gateways (4 intervals per message, QoS 1, as fast as the broker acknowledges):

- publish rate with the collector connected (``parkcarbon collect``, direct subscription);
- publish rate with the collector away (its session kept: every message is queued and saved);
- readings lost when the broker is killed with SIGKILL right after the last PUBACK while the
  collector is away, counted in InfluxDB once the broker and the collector are back.

Run: ``.venv/bin/python bench/broker.py [--days N] [--seconds 1,5] [--changes 1,100]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from park.registry import DEFAULT_TIMEZONE, load_registry
from park.settings import DEMO_REGISTRY, Settings
from park.store import InfluxStore
from parkcarbon.runtime import environ_without_credentials, settings_for_run_dir
from parkcarbon.services import LocalServices, free_ports, load_credentials, local_mosquitto_conf
from simulators.publisher import send_plan
from simulators.run import simulate_run

TZ = ZoneInfo(DEFAULT_TIMEZONE)


def _count(store: InfluxStore) -> int:
    frame = store.query('SELECT COUNT("raw_value") FROM "meter_register"')
    return int(frame["count"].iloc[0]) if len(frame) else 0


def _wait_count(store: InfluxStore, expected: int, timeout_s: float = 300) -> int:
    deadline = time.monotonic() + timeout_s
    while (count := _count(store)) < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return count


class Collector:
    """``parkcarbon collect`` as its own process (replica 0, direct subscription)."""

    def __init__(self, run_dir: Path, database: str) -> None:
        self.run_dir, self.database = run_dir, database
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.run_dir / "bench-collector.log"
        before = log.read_bytes().count(b"collecting with") if log.exists() else 0
        env = {
            **environ_without_credentials(),
            "PARKCARBON_RUN_DIR": str(self.run_dir),
            "PARKCARBON_INFLUX__DATABASE": self.database,
        }
        env.pop("PARKCARBON_COLLECTOR__SHARE_GROUP", None)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "parkcarbon", "collect"], stdout=out, stderr=subprocess.STDOUT, env=env
            )
        while log.read_bytes().count(b"collecting with") <= before:
            if self.proc.poll() is not None:
                raise RuntimeError(log.read_text())
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


def run(days: int, changes: list[int], seconds: list[int]) -> None:
    # label → (autosave_changes, autosave_s)
    settings_to_try: dict[str, tuple[int | None, int]] = {"every 30 s (before)": (None, 30)}
    settings_to_try |= {f"every {n} s": (None, n) for n in seconds}
    settings_to_try |= {f"every {n} change{'s' if n > 1 else ''}": (n, 1) for n in changes}
    registry = load_registry(DEMO_REGISTRY)
    start = datetime(2026, 5, 1, tzinfo=TZ)
    runs = [
        simulate_run(registry, start + pd.Timedelta(days=d), start + pd.Timedelta(days=d + 1), pd.Timedelta("15min"), d)
        for d in range(days)
    ]
    # Consecutive days share their boundary reading: count distinct points, as InfluxDB stores them.
    points = set()
    for one in runs:
        long = one.published.stack(level=[0, 1], future_stack=True).dropna()
        points |= set(long.index)
    distinct = len(points)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        services = LocalServices(run_dir)
        ports = services.up(registry, free_ports())
        try:
            settings = settings_for_run_dir(Settings(run_dir=run_dir))
            creds = load_credentials(run_dir)
            print(f"demo park, {days} day(s) per step, {sum(len(r.plan) for r in runs)} messages in all")
            print(f"{'persistence':24} {'collector connected':>22} {'collector away':>18} {'kill -9 loses':>16}")
            for index, (label, (changes_n, seconds_n)) in enumerate(settings_to_try.items()):
                (run_dir / "mosquitto" / "mosquitto.conf").write_text(
                    local_mosquitto_conf(run_dir, ports.mqtt, autosave_changes=changes_n, autosave_s=seconds_n)
                )
                services.stop_one("mosquitto")
                services.start_one("mosquitto")
                figures = []
                for phase in ("connected", "away", "kill"):
                    database = f"bench_broker_{index}_{phase}"
                    services.create_database(database)
                    collector = Collector(run_dir, database)
                    plan = [m for r in runs for m in r.plan]
                    with InfluxStore(settings.influx.model_copy(update={"database": database})) as store:
                        collector.start()
                        if phase != "connected":
                            collector.stop()  # away: the broker queues every message for its session
                        stats = send_plan(registry, plan, settings.mqtt, creds, ack_timeout_s=3600)
                        if phase == "kill":
                            services.kill_one("mosquitto")
                            services.start_one("mosquitto")
                        if phase != "connected":
                            collector.start()
                        stored = _wait_count(store, distinct, timeout_s=60 if phase == "kill" else 600)
                        collector.stop()
                    if phase == "kill":
                        figures.append(f"{distinct - stored:,} of {distinct:,}")
                    else:
                        figures.append(f"{stats.readings / stats.seconds:,.0f} readings/s")
                        assert stored == distinct, (label, phase, stored, distinct)
                print(f"{label:24} {figures[0]:>22} {figures[1]:>18} {figures[2]:>16}", flush=True)
        finally:
            services.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=5, help="days of the demo park published per step")
    parser.add_argument("--changes", default="1", help="autosave_interval values to try with autosave_on_changes")
    parser.add_argument("--seconds", default="1", help="autosave_interval seconds to try, not on changes")
    args = parser.parse_args()
    os.umask(0o077)
    run(args.days, [int(n) for n in args.changes.split(",") if n], [int(n) for n in args.seconds.split(",") if n])


if __name__ == "__main__":
    main()
