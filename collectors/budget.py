"""How many quarantine rows bad input may make: per message, and per gateway over time.

Without bounds a gateway controls how much the collector writes: one 0.8 MB message of 100,000 tiny
bad readings made 100,000 quarantine rows (about 25 MB of line protocol), InfluxDB refused the
request as too large and the sink wrote line by line for minutes while no reading was stored.

- **Per message** at most :data:`MAX_ROWS_PER_MESSAGE` rows of their own; the rest of the
  message's rejections become one ``summarised`` row whose detail counts them per reason. A gateway
  whose configuration is wrong for every meter (a wrong unit, say) still gets one row per reading
  for the messages it really sends (tens of readings each).
- **Per gateway** a token bucket of :data:`GATEWAY_BURST` rows, refilled at
  :data:`GATEWAY_ROWS_PER_S`: rows beyond it are counted (``collector_stats.quarantine_dropped``)
  and not written. The key is the registry gateway, or one shared key for every topic whose gateway
  is not in the registry, so the number of buckets is bounded by the registry too. A misconfigured
  gateway of 50 meters makes about 0.2 rows/s; 20 rows/s is 100 times that, and the burst takes a
  store-and-forward flush of 10 hours of it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

from collectors.model import Reason, Rejection

MAX_ROWS_PER_MESSAGE = 100
GATEWAY_ROWS_PER_S = 20.0
GATEWAY_BURST = 2_000
UNKNOWN_GATEWAY = ""  # the one bucket of every gateway the registry does not know


def bound_rows(
    rejections: list[Rejection], limit: int = MAX_ROWS_PER_MESSAGE, enterprise: str = "", gateway: str = ""
) -> list[Rejection]:
    """The message's rejections that get a row of their own, and one ``summarised`` row (of the
    message's gateway) for the rest."""
    if len(rejections) <= limit:
        return rejections
    rest = Counter(r.reason.value for r in rejections[limit:])
    counts = ", ".join(f"{reason} {count}" for reason, count in rest.most_common())
    detail = f"{len(rejections) - limit} more rejections in this message, not stored one by one: {counts}"
    return [*rejections[:limit], Rejection(Reason.SUMMARISED, detail, enterprise, gateway)]


class QuarantineBudget:
    """A token bucket per gateway, shared by the threads that quarantine (receiver and sink)."""

    def __init__(
        self,
        rows_per_s: float = GATEWAY_ROWS_PER_S,
        burst: int = GATEWAY_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rows_per_s = rows_per_s
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # gateway → (tokens, when counted)

    def take(self, gateway: str, rows: int) -> int:
        """How many of ``rows`` the gateway may write now (the rest are to be dropped)."""
        with self._lock:
            now = self._clock()
            tokens, since = self._buckets.get(gateway, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - since) * self.rows_per_s)
            granted = min(rows, int(tokens))
            self._buckets[gateway] = (tokens - granted, now)
            return granted
