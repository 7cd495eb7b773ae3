"""The registry as of the park's today, from the platform's database, for the processes that run
continuously (the platform's workers, the collector): read again only when the registry changed.

Every change of ``registry_versions`` either inserts a version (the largest id grows) or closes one
(the versions in force are fewer), and a day's end changes what is in force; so (today, largest id,
versions not closed) changes whenever the registry as of today may have. That stamp is one small
aggregate query, cheap enough for every request: a change made on the platform (in any worker, or by
``parkcarbon registry``) is seen by the next request, with no cache to wait out and no notification
to lose. The whole registry is materialised (and validated) only when the stamp moves.

Until the database holds a registry (``parkcarbon registry import`` fills it) the ``fallback`` (the
registry file) is the registry, so a park switching to the database keeps running before its import.
"Today" is in the park's timezone, that of the registry last read.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from ledger.registry_store import registry_as_of, registry_versions
from park.registry import Registry

Stamp = tuple[date, int, int]


class LiveRegistry:
    """The database's registry as of the park's today, cached until it changes; ``fallback`` while the
    database has none.

    Thread-safe: a worker's requests run in threads, and a reload is made once."""

    def __init__(self, engine: Engine, fallback: Registry) -> None:
        self._engine = engine
        self._fallback = fallback
        self._zone = ZoneInfo(fallback.park.timezone)
        self._lock = threading.Lock()
        self._stamp: Stamp | None = None
        self._registry: Registry | None = None
        self.loads = 0  # registries materialised, for tests

    def dispose(self) -> None:
        """Close the engine's connections (for an owner that made the engine for this alone)."""
        self._engine.dispose()

    def today(self) -> date:
        return datetime.now(UTC).astimezone(self._zone).date()

    def current(self) -> Registry:
        """The registry as of today; raises what the database or the registry's checks raise (the caller
        decides whether to keep an older one)."""
        today = self.today()
        with self._engine.connect() as conn:
            largest, total, closed = conn.execute(
                select(
                    func.coalesce(func.max(registry_versions.c.id), 0),
                    func.count(),
                    func.count(registry_versions.c.valid_to),  # counts the closed versions (valid_to not NULL)
                ).select_from(registry_versions)
            ).one()
            if total == 0:
                return self._fallback
            stamp = (today, int(largest), int(total) - int(closed))
            with self._lock:  # the stamp is read unlocked; one thread materialises, the others wait for it
                if stamp != self._stamp or self._registry is None:
                    self._registry = registry_as_of(conn, today)
                    self._zone = ZoneInfo(self._registry.park.timezone)
                    self._stamp = stamp
                    self.loads += 1
                return self._registry
