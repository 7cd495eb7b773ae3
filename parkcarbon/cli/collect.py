"""``parkcarbon collect``: run collector replicas until interrupted (SIGINT or SIGTERM)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from park.settings import Settings


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("collect", help="ingest MQTT readings into InfluxDB")
    p.add_argument("--replicas", type=int, default=1, help="replicas in this process (needs a share group)")
    p.add_argument("--first-replica", type=int, default=0, help="number of the first replica (for one per process)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from collectors.service import Collector
    from park.registry import load_registry
    from parkcarbon.cli.errors import require_broker, require_influx

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if (args.replicas > 1 or args.first_replica > 0) and not settings.collector.share_group:
        print(
            "parkcarbon collect: more than one replica needs a share group (PARKCARBON_COLLECTOR__SHARE_GROUP);"
            " without one every replica would receive and store every reading",
            file=sys.stderr,
        )
        return 2
    registry = load_registry(settings.registry)
    require_influx(settings)  # fail at once, naming host and port, rather than in a replica's threads
    require_broker(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    replicas = [Collector(settings, registry, args.first_replica + i) for i in range(args.replicas)]
    started: list[Collector] = []
    try:
        for replica in replicas:
            replica.start()
            started.append(replica)
    except BaseException:
        for replica in started:
            replica.stop()
        raise
    print(
        f"collecting with {len(replicas)} replica(s) into {settings.influx.url} db {settings.influx.database}",
        flush=True,
    )
    # A replica whose receiver or drainer cannot be kept alive is unhealthy: exit non-zero so that what
    # runs the collector restarts it (the spool keeps what was acknowledged, the broker the rest).
    while not stop.wait(1.0):
        if not all(replica.healthy for replica in replicas):
            break
    healthy = all(replica.healthy for replica in replicas)
    for replica in replicas:
        replica.stop()
    if not healthy:
        print("parkcarbon collect: a collector thread could not be kept alive; exiting", file=sys.stderr)
        return 1
    return 0
