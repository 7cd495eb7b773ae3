"""A small time-bounded cache of results read from InfluxDB, shared by a worker's requests.

Results change only when a DAG writes them (once a month, or when a month is re-run), but each
enterprise page asks InfluxDB six questions and shapes the answers with pandas: about 30 ms of CPU.
The cache keeps a page's results for ``ttl_s`` seconds, so a re-run month shows on the platform at most
that long after the DAG wrote it. It sits below the tenant scope: a key is looked up only after the
scope has resolved the enterprise in it, so the cache cannot hand one enterprise's results to another.
Ledger holdings and statements are money and are never cached.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

from cachetools import TTLCache

K = TypeVar("K")
V = TypeVar("V")


class ResultsCache(Generic[K, V]):
    """Thread-safe: uvicorn runs the platform's routes in a pool of threads."""

    def __init__(self, ttl_s: float, max_entries: int = 4096) -> None:
        self.ttl_s = ttl_s
        self._entries: TTLCache[K, V] | None = TTLCache(max_entries, ttl_s) if ttl_s > 0 else None
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        if self._entries is None:
            return None
        with self._lock:
            return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        if self._entries is None:
            return
        with self._lock:
            self._entries[key] = value

    def clear(self) -> None:
        if self._entries is not None:
            with self._lock:
                self._entries.clear()
