"""Dashboard benchmark: every panel's query, as Grafana sends it, on a year of a park of N meters.

The script starts a real ``influxd`` (``LocalServices``), writes a year up to now of what the panels
read for a park of ``--meters`` meters (100 per enterprise, one gateway each): the meters' daily
rollups (``meter_daily``) and daily quality, the gateways' daily quality and status changes, a few
quarantined messages a day, a collector replica's statistics every 10 s, the monthly results of
every enterprise (credits, emissions, activity, coverage, each meter's data quality, near-zero
progress and evaluation), the settled year and its compliance, and the last two days of raw
15-minute registers (the only raw readings a panel reads: the meters panel's last 24 h). Then it runs
each panel's query through :func:`dashboards.render.rendered` (the panel's own range and minimum
interval honoured, ``$__interval`` computed for a 1,000-point panel) for the last year and the last
7 days, for one enterprise, three times, and prints the median per panel.

Run: ``.venv/bin/python bench/dashboards.py [--meters 2000]``.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml

METERS_PER_ENTERPRISE = 100
DATABASE = "bench_dashboards"
DAY_NS = 86_400 * 10**9


def registry_data(n_meters: int) -> dict[str, object]:
    enterprises, workshops, gateways, meters = [], [], [], []
    for e in range(n_meters // METERS_PER_ENTERPRISE):
        eid = f"D{e:03d}"
        enterprises.append({"id": eid, "name": f"Bench {e}", "industry": ("C39", "C34", "C26")[e % 3]})
        gateways.append({"id": f"gw-{eid.lower()}", "enterprise": eid})
        workshops.append({"id": f"{eid}-WS", "enterprise": eid, "name": "Workshop"})
        for m in range(METERS_PER_ENTERPRISE):
            meters.append(
                {
                    "id": f"{eid}-M{m:03d}",
                    "gateway": f"gw-{eid.lower()}",
                    "enterprise": eid,
                    "carrier": "grid_electricity",
                    "role": "main" if m == 0 else "sub",
                    "workshop": None if m == 0 else f"{eid}-WS",
                    "unit": "kWh",
                }
            )
    park = {
        "id": "bench",
        "name": "Bench park",
        "metering_start": "2024-01-01",
        "latitude_deg": 31.8,
        "longitude_deg": 117.1,
    }
    return {
        "version": f"bench-{n_meters}",
        "park": park,
        "enterprises": enterprises,
        "workshops": workshops,
        "gateways": gateways,
        "meters": meters,
    }


def points(registry: Any, now: datetime) -> Iterator[Any]:
    """A year of what the panels read, up to ``now``."""
    from park.measurements import (
        ACTIVITY_MONTHLY,
        COLLECTOR_STATS,
        COMPLIANCE,
        CREDITS,
        CREDITS_ANNUAL,
        DATA_QUALITY,
        EMISSIONS_MONTHLY,
        GATEWAY_QUALITY_DAILY,
        GATEWAY_STATUS,
        METER_DAILY,
        METER_QUALITY_DAILY,
        METER_REGISTER,
        MONTH_COVERAGE,
        NEAR_ZERO_PROGRESS,
        NEARZERO_EVALUATION,
        QUARANTINE,
    )
    from park.month import Month

    tz = registry.park.timezone
    rng = np.random.default_rng(5)
    days = [
        (now - timedelta(days=d)).astimezone(UTC).replace(hour=16, minute=0, second=0, microsecond=0)
        for d in range(1, 366)
    ]
    day_ns = [int(d.timestamp() * 10**9) for d in days]
    for meter in registry.meters:
        for at in day_ns:
            kwh = float(rng.uniform(50, 500))
            yield METER_DAILY.point(
                {"enterprise": meter.enterprise, "meter": meter.id, "register": "active_energy_import"},
                {"quantity": kwh, "unit": "kWh", "readings": 96, "expected": 96, "gaps": 0},
                at,
            )
            yield METER_QUALITY_DAILY.point(
                {
                    "enterprise": meter.enterprise,
                    "gateway": meter.gateway,
                    "meter": meter.id,
                    "register": "active_energy_import",
                },
                {"readings": 96.0, "expected": 96.0, "completeness": 1.0, "last_seen_age_h": 0.25, "stale": False},
                at,
            )
        # The last two days of raw registers, every 15 minutes.
        value = 1e5
        start = int((now - timedelta(days=2)).timestamp()) // 900 * 900
        for t in range(start, int(now.timestamp()), 900):
            value += float(rng.uniform(1, 5))
            yield METER_REGISTER.point(
                {
                    "enterprise": meter.enterprise,
                    "workshop": "",
                    "meter": meter.id,
                    "carrier": "grid_electricity",
                    "register": "active_energy_import",
                },
                {"value": value, "raw_value": value},
                t * 10**9,
            )
    for gateway in registry.gateways:
        for at in day_ns:
            yield GATEWAY_QUALITY_DAILY.point(
                {"enterprise": gateway.enterprise, "gateway": gateway.id},
                {
                    "readings": 9600.0,
                    "meters_silent": 0.0,
                    "announced_online": 1.0,
                    "offline": False,
                    "registers": 100.0,
                    "completeness_sum": 99.5,
                },
                at,
            )
            for hour, online in ((3, False), (4, True)):
                yield GATEWAY_STATUS.point(
                    {"enterprise": gateway.enterprise, "gateway": gateway.id},
                    {"online": 1.0 if online else 0.0, "state": "online" if online else "offline"},
                    at + hour * 3600 * 10**9,
                )
            yield QUARANTINE.point(
                {"reason": "malformed", "enterprise": gateway.enterprise, "gateway": gateway.id},
                {"payload": "{", "payload_bytes": 1, "detail": "bench"},
                at + 7200 * 10**9,
            )
    written = 0.0
    first = int((now - timedelta(days=365)).timestamp())
    for t in range(first, int(now.timestamp()), 10):  # one replica, every 10 s
        written += 40.0
        yield COLLECTOR_STATS.point(
            {"replica": "collector-0"},
            {"received": written / 10, "readings_written": written, "spool_depth_bytes": 0.0, "lag_s": 0.4},
            t * 10**9,
        )
    month = Month.containing(now, tz).previous()
    months = []
    for _ in range(12):
        months.append(month)
        month = month.previous()
    for e, enterprise in enumerate(registry.enterprises):
        for m in months:
            at = m.start_ns
            tco2 = float(rng.uniform(500, 5000))
            yield CREDITS.point(
                {"enterprise": enterprise.id, "industry": enterprise.industry},
                {
                    "emissions_tco2": tco2,
                    "credits_tco2": float(rng.normal(0, 100)),
                    "grade": int(e % 5 + 1),
                    "rating_score": 70.0,
                    "rating": "C",
                    "k_ratio": 1.0,
                    "intensity_t_per_10k_cny": 0.5,
                    "benchmark_t_per_10k_cny": 0.5,
                },
                at,
            )
            for scope, share in (("scope1", 0.3), ("scope2", 0.7), ("total", 1.0)):
                yield EMISSIONS_MONTHLY.point(
                    {"enterprise": enterprise.id, "workshop": "", "scope": scope},
                    {"tco2_location": tco2 * share, "tco2_market": tco2 * share * 0.9},
                    at,
                )
            yield ACTIVITY_MONTHLY.point(
                {"enterprise": enterprise.id, "workshop": "", "source": "grid_electricity", "origin": "metered"},
                {"quantity": tco2 * 1800, "unit": "kWh", "completeness": 1.0},
                at,
            )
            yield MONTH_COVERAGE.point({"enterprise": enterprise.id}, {"status": "data", "meters": 100}, at)
            yield NEAR_ZERO_PROGRESS.point(
                {"enterprise": enterprise.id, "workshop": f"{enterprise.id}-WS"},
                {"offset_ratio": 0.3, "target": 0.8, "required_ratio": 0.25, "on_track": True, "status": "on_track"},
                at,
            )
            yield NEARZERO_EVALUATION.point(
                {
                    "enterprise": enterprise.id,
                    "workshop": "",
                    "profile": "suzhou-nzc-factory-2023",
                    "indicator": "offset",
                },
                {
                    "value": 0.3,
                    "unit": "-",
                    "threshold": 0.8,
                    "status": "fail",
                    "gap_tco2": 100.0,
                    "action": "offset 100 t",
                },
                at,
            )
        for meter in registry.meters:
            if meter.enterprise != enterprise.id:
                continue
            for m in months:
                yield DATA_QUALITY.point(
                    {"enterprise": enterprise.id, "meter": meter.id, "register": "active_energy_import"},
                    {"completeness": 1.0, "readings": 2976, "expected": 2976, "gaps": 0, "resets": 0},
                    m.start_ns,
                )
        january = Month.of(f"{months[-1].year}-01", tz).start_ns
        yield CREDITS_ANNUAL.point(
            {"enterprise": enterprise.id, "industry": enterprise.industry},
            {"emissions_tco2": 30000.0, "credits_tco2": 10.0, "grade": 3, "rating_score": 70.0, "rating": "C"},
            january,
        )
        yield COMPLIANCE.point(
            {"enterprise": enterprise.id}, {"due_tco2": 0.0, "status": "no obligation", "score": 100.0}, january
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meters", type=int, default=2000, help="meters in the park (100 per enterprise)")
    parser.add_argument("--runs", type=int, default=3, help="times each query runs (the median is printed)")
    args = parser.parse_args()

    from dashboards.build import all_dashboards
    from dashboards.render import rendered
    from park.registry import load_registry
    from parkcarbon.services import LocalServices, free_ports

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run_dir = Path(tempfile.mkdtemp(prefix="bench-dashboards-"))
    registry_path = run_dir / "registry.yaml"
    registry_path.write_text(yaml.safe_dump(registry_data(args.meters)))
    registry = load_registry(registry_path)
    services = LocalServices(run_dir)
    now = datetime.now(UTC)
    try:
        services.up(registry, free_ports(), database=DATABASE)
        started = time.monotonic()
        with services.admin_store(DATABASE) as store:
            count = store.write(points(registry, now), batch_size=50_000)
            print(
                f"{count:,} points for {args.meters:,} meters, a year, written in {time.monotonic() - started:.0f} s",
                flush=True,
            )
            enterprise = registry.enterprises[0].id
            print(f"\nper panel, median of {args.runs} runs, enterprise {enterprise} (100 meters):")
            print(f"{'last year':>10} {'last 7 days':>12}  dashboard · panel · query")
            for uid, board in all_dashboards(registry.park.timezone).items():
                for panel in board["panels"]:
                    for target in panel.get("targets", []):
                        times = []
                        for days in (365, 7):
                            query = rendered(
                                panel, target["query"], now - timedelta(days=days), now, {"enterprise": enterprise}
                            )
                            runs = []
                            for _ in range(args.runs):
                                t0 = time.perf_counter()
                                store.query(query)
                                runs.append(time.perf_counter() - t0)
                            times.append(statistics.median(runs) * 1000)
                        print(
                            f"{times[0]:8.0f} ms {times[1]:9.0f} ms  {uid} · {panel['title'][:60]} · {target['refId']}",
                            flush=True,
                        )
    finally:
        services.down()
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
