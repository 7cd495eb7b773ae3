"""``parkcarbon collect``: run collector replicas until interrupted (SIGINT or SIGTERM).

The registry is the file (``settings.registry``), read once; or, with ``registry_source =
"database"``, the platform's registry as of the park's today, reloaded every
``collector.registry_reload_s`` seconds (``collectors.registry_reload``) so a gateway or meter added on
the platform is collected without a restart.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING

from park.settings import Settings

if TYPE_CHECKING:
    from ledger.registry_live import LiveRegistry
    from park.registry import Registry


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("collect", help="ingest MQTT readings into InfluxDB")
    p.add_argument("--replicas", type=int, default=1, help="replicas in this process (needs a share group)")
    p.add_argument("--first-replica", type=int, default=0, help="number of the first replica (for one per process)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from collectors.registry_reload import RegistryReloader
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
    live = None
    if settings.registry_source == "database":
        live = database_registry(settings, registry)
        registry = live.current()  # at start the database must answer: a clear error now, not a silent file
    require_influx(settings)  # fail at once, naming host and port, rather than in a replica's threads
    require_broker(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    replicas = [Collector(settings, registry, args.first_replica + i) for i in range(args.replicas)]
    reloader = None
    if live is not None:
        reloader = RegistryReloader(live.current, registry, replicas, settings.collector.registry_reload_s)
    started: list[Collector] = []
    try:
        for replica in replicas:
            replica.start()
            started.append(replica)
    except BaseException:
        for replica in started:
            replica.stop()
        raise
    if reloader is not None:
        reloader.start()
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
    if reloader is not None:
        reloader.stop()
    if live is not None:
        live.dispose()
    for replica in replicas:
        replica.stop()
    if not healthy:
        print("parkcarbon collect: a collector thread could not be kept alive; exiting", file=sys.stderr)
        return 1
    return 0


def database_registry(settings: Settings, fallback: Registry) -> LiveRegistry:
    """The platform's registry as of the park's today, read again when it changed
    (``ledger.registry_live``); the file ``fallback`` until the database holds one. ``dispose()`` it."""
    from ledger.db import make_engine
    from ledger.registry_live import LiveRegistry

    return LiveRegistry(make_engine(settings.ledger_url, read_only=True), fallback)
