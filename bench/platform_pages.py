"""Platform benchmark: the enterprise page's latency (p50, p95) served by ``parkcarbon platform serve``
to 20 concurrent users, for a park of 500 enterprises with a year of monthly results.

The script starts Mosquitto and a real ``influxd`` (``LocalServices``, as ``bench/monthly.py`` does),
writes twelve months of results for every enterprise as the monthly DAG writes them (credits, emissions
by scope for the enterprise and a workshop, coverage, activity, data quality of two meters, near-zero
progress: 78,000 points), settles the year into the ledger (SQLite in the run directory, 500
enterprises' holdings and statements), creates one enterprise reporter per user, then starts the
platform as its own process (one uvicorn worker) and lets each user log in and ask for its enterprise's
page, month after month of the year (``?period=``), back to back (no think time: the hardest case for a
closed loop of 20) and with about a second between pages. Each set runs with the platform keeping a
page's results for 30 s (the default: the first visit of each month reads InfluxDB, later ones do
not) and with no results cache at all (every page reads InfluxDB).

Run: ``.venv/bin/python bench/platform_pages.py [--enterprises 500] [--users 20] [--requests 25]``.
(Named ``platform.py`` until 2026-11-29: run as a script, that name shadowed the standard library's
``platform`` module for every other script in ``bench/``.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

YEAR = 2025
DATABASE = "bench_platform"


def registry_data(n: int) -> dict[str, object]:
    enterprises, workshops, gateways, meters = [], [], [], []
    for e in range(n):
        eid = f"P{e:04d}"
        enterprises.append({"id": eid, "name": f"Bench enterprise {e}", "industry": ("C39", "C34", "C26")[e % 3]})
        workshops.append({"id": f"{eid}-WS", "enterprise": eid, "name": "Workshop"})
        gateways.append({"id": f"gw-{eid.lower()}", "enterprise": eid})
        for m, workshop in ((0, None), (1, f"{eid}-WS")):
            meters.append(
                {
                    "id": f"{eid}-M{m}",
                    "gateway": f"gw-{eid.lower()}",
                    "enterprise": eid,
                    "workshop": workshop,
                    "carrier": "grid_electricity",
                    "role": "main" if m == 0 else "sub",
                    "unit": "kWh",
                }
            )
    park = {
        "id": "bench",
        "name": "Bench park",
        "metering_start": f"{YEAR}-01-01",
        "latitude_deg": 31.8,
        "longitude_deg": 117.1,
    }
    return {
        "version": f"bench-{n}",
        "park": park,
        "enterprises": enterprises,
        "workshops": workshops,
        "gateways": gateways,
        "meters": meters,
    }


def write_year(store: Any, registry: Any) -> int:
    """Twelve months of results for every enterprise; returns the number of points."""
    from park.measurements import (
        ACTIVITY_MONTHLY,
        CREDITS,
        DATA_QUALITY,
        EMISSIONS_MONTHLY,
        MONTH_COVERAGE,
        NEAR_ZERO_PROGRESS,
    )
    from park.month import Month

    rng = np.random.default_rng(11)
    points = []
    for e in registry.enterprises:
        base = float(rng.uniform(50, 5000))
        credits = 0.0
        for month in range(1, 13):
            at = Month.of(f"{YEAR}-{month:02d}", registry.park.timezone).start_ns
            tco2 = base * float(rng.uniform(0.8, 1.2))
            credits += float(rng.normal(0, base / 10))
            grade = int(rng.integers(1, 6))
            points.append(
                CREDITS.point(
                    {"enterprise": e.id, "industry": e.industry},
                    {
                        "emissions_tco2": tco2 * month,
                        "value_added_10k_cny": base * 3,
                        "intensity_t_per_10k_cny": 0.3 * grade,
                        "benchmark_t_per_10k_cny": 0.9,
                        "credits_tco2": credits,
                        "k_ratio": 0.2 * grade,
                        "grade": grade,
                        "rating_score": 100.0 - 15 * grade,
                        "rating": "ABCDE"[grade - 1],
                        "months_covered": month,
                        "provisional": month < 12,
                        "rating_reasons": "carbon efficiency 80; trend 70; green power 10; compliance 100; data 99",
                        "factor_set": "cn-national-2023",
                        "policy_version": "2026.1",
                    },
                    at,
                )
            )
            for workshop, share in (("", 1.0), (f"{e.id}-WS", 0.4)):
                for scope, part in (("scope1", 0.3), ("scope2", 0.7), ("total", 1.0)):
                    points.append(
                        EMISSIONS_MONTHLY.point(
                            {"enterprise": e.id, "workshop": workshop, "scope": scope},
                            {"tco2_location": tco2 * share * part, "tco2_market": tco2 * share * part * 0.9},
                            at,
                        )
                    )
            points.append(MONTH_COVERAGE.point({"enterprise": e.id}, {"status": "data", "meters": 2}, at))
            for source, unit in (("grid_electricity", "kWh"), ("natural_gas", "Nm3")):
                points.append(
                    ACTIVITY_MONTHLY.point(
                        {"enterprise": e.id, "workshop": "", "source": source, "origin": "metered"},
                        {"quantity": tco2 * 1000, "unit": unit, "completeness": 0.99},
                        at,
                    )
                )
            for meter in (f"{e.id}-M0", f"{e.id}-M1"):
                points.append(
                    DATA_QUALITY.point(
                        {"enterprise": e.id, "meter": meter, "register": "active_energy_import"},
                        {"completeness": 0.995, "readings": 2970, "expected": 2976, "gaps": 1, "resets": 0},
                        at,
                    )
                )
            points.append(
                NEAR_ZERO_PROGRESS.point(
                    {"enterprise": e.id, "workshop": f"{e.id}-WS"},
                    {"offset_ratio": 0.3, "target": 0.8, "required_ratio": 0.25, "status": "on_track"},
                    at,
                )
            )
    return int(store.write(points))


def seed_database(url: str, registry: Any, users: int) -> dict[str, str]:
    """The year settled into the ledger and one enterprise reporter per user; their passwords."""
    from ledger.book import Ledger, SettledCredit
    from ledger.db import make_engine, migrate
    from portal import auth
    from portal.audit import Actor

    engine = make_engine(url)
    migrate(engine)
    ledger = Ledger(engine, registry.park.timezone)
    ids = [e.id for e in registry.enterprises]
    ledger.open_accounts(ids)
    rng = np.random.default_rng(3)
    settled = [SettledCredit(i, float(rng.normal(0, 200)), "b" * 64, "2026.1", "cn-national-2023") for i in ids]
    ledger.settle(YEAR, settled, date(YEAR + 1, 6, 30), "bench")
    passwords = {}
    with engine.begin() as conn:
        for i in ids[:users]:
            username = f"rep-{i.lower()}"
            passwords[username] = auth.generate_password()
            auth.create_user(
                conn,
                username,
                "enterprise_reporter",
                i,
                passwords[username],
                Actor("bench", "cli", None, "local"),
                set(ids),
            )
    engine.dispose()
    return passwords


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def user_loop(
    base: str,
    username: str,
    password: str,
    requests: int,
    out: list[float],
    barrier: threading.Barrier,
    think: float,
) -> None:
    try:
        _user_loop(base, username, password, requests, out, barrier, think)
    except BaseException:
        barrier.abort()  # the others (and the main thread) stop waiting
        raise


def _user_loop(
    base: str,
    username: str,
    password: str,
    requests: int,
    out: list[float],
    barrier: threading.Barrier,
    think: float,
) -> None:
    pause = np.random.default_rng(abs(hash(username)) % 2**32)
    with httpx.Client(base_url=base, timeout=60) as client:
        page = client.get("/login").text
        token = page.split('name="csrf_token" value="')[1].split('"')[0]
        home = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
        assert home.status_code == 303, home.text[:300]
        enterprise = client.get("/").headers["location"]
        assert client.get(enterprise).status_code == 200  # warm
        barrier.wait(timeout=600)
        for i in range(requests):
            if think:
                time.sleep(pause.uniform(0, 2 * think))
            started = time.perf_counter()
            response = client.get(enterprise, params={"period": f"{YEAR}-{12 - i % 12:02d}"})  # every month in turn
            out.append(time.perf_counter() - started)
            assert response.status_code == 200 and 'id="credits-tco2"' in response.text


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def serve(run_dir: Path, env: dict[str, str], workers: int, ttl_s: float) -> tuple[subprocess.Popen[bytes], str]:
    """``parkcarbon platform serve`` with ``workers`` processes keeping results ``ttl_s`` seconds,
    answering; (process, base URL)."""
    port = free_port()
    env = env | {"PARKCARBON_PLATFORM_RESULTS_TTL_S": str(ttl_s)}
    log = run_dir / f"serve-{workers}.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "parkcarbon", "platform", "serve", "--port", str(port), "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            raise RuntimeError(log.read_text())
        time.sleep(0.2)


def measure(
    base: str, passwords: dict[str, str], args: argparse.Namespace, workers: int, think: float, ttl_s: float
) -> None:
    """The users' closed loop against ``base``, then one user alone; prints the figures."""
    latencies: list[float] = []
    barrier = threading.Barrier(len(passwords) + 1)
    threads = [
        threading.Thread(target=user_loop, args=(base, u, p, args.requests, latencies, barrier, think))
        for u, p in passwords.items()
    ]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=600)
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    assert len(latencies) == len(passwords) * args.requests, "a user failed: see above"
    ms = [1000 * v for v in latencies]
    pace = "back to back" if not think else f"{think:g} s apart on average"
    print(
        f"{workers} worker(s), results kept {ttl_s:g} s: enterprise page, {args.enterprises} enterprises"
        f" × 12 months, {len(passwords)} concurrent users {pace}, {len(ms)} pages:"
        f" p50 {percentile(ms, 50):.0f} ms, p95 {percentile(ms, 95):.0f} ms,"
        f" p99 {percentile(ms, 99):.0f} ms, max {max(ms):.0f} ms; {len(ms) / wall:.1f} pages/s",
        flush=True,
    )
    if think:
        return
    single = []
    with httpx.Client(base_url=base, timeout=60) as client:
        user, password = next(iter(passwords.items()))
        token = client.get("/login").text.split('name="csrf_token" value="')[1].split('"')[0]
        client.post("/login", data={"username": user, "password": password, "csrf_token": token})
        enterprise = client.get("/").headers["location"]
        for _ in range(20):
            t0 = time.perf_counter()
            assert client.get(enterprise).status_code == 200
            single.append(1000 * (time.perf_counter() - t0))
    print(
        f"{workers} worker(s), results kept {ttl_s:g} s: one user alone: p50 {percentile(single, 50):.0f} ms,"
        f" p95 {percentile(single, 95):.0f} ms",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--enterprises", type=int, default=500)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--requests", type=int, default=25, help="pages per user")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn worker processes")
    parser.add_argument(
        "--think",
        type=float,
        nargs="+",
        default=[0.0, 1.0],
        help="seconds each user waits between pages, on average (0: back to back)",
    )
    parser.add_argument(
        "--results-ttl",
        type=float,
        nargs="+",
        default=[30.0, 0.0],
        help="seconds the platform keeps a page's results (PARKCARBON_PLATFORM_RESULTS_TTL_S; 0: no cache)",
    )
    args = parser.parse_args()

    from park.registry import load_registry
    from parkcarbon.services import LocalServices, free_ports

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the services are stopped below
    run_dir = Path(tempfile.mkdtemp(prefix="bench-platform-"))
    registry_path = run_dir / "registry.yaml"
    registry_path.write_text(yaml.safe_dump(registry_data(args.enterprises)))
    registry = load_registry(registry_path)
    services = LocalServices(run_dir)
    try:
        services.up(registry, free_ports(), database=DATABASE)
        started = time.monotonic()
        with services.admin_store(DATABASE) as admin:
            points = write_year(admin, registry)
        print(
            f"{points:,} points of {args.enterprises} enterprises × 12 months written"
            f" in {time.monotonic() - started:.1f} s"
        )
        url = f"sqlite:///{run_dir / 'platform.sqlite'}"
        passwords = seed_database(url, registry, args.users)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARKCARBON_")} | {
            "PARKCARBON_RUN_DIR": str(run_dir),
            "PARKCARBON_REGISTRY": str(registry_path),
            "PARKCARBON_LEDGER__URL": url,
            "PARKCARBON_INFLUX__DATABASE": DATABASE,
        }
        for ttl_s in args.results_ttl:
            for workers in args.workers:
                server, base = serve(run_dir, env, workers, ttl_s)
                try:
                    for think in args.think:
                        measure(base, passwords, args, workers, think, ttl_s)
                finally:
                    server.terminate()
                    server.wait(timeout=30)
    finally:
        services.down()
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
