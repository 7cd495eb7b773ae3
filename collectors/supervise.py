"""Keeps a collector's worker threads alive: a thread that dies is restarted and counted, and a
thread that keeps dying makes the collector unhealthy.

Each message is isolated (``collectors.handler``) and InfluxDB failures are retried by the sink, so
a thread dies only of what neither foresaw: a bug, a full disk, a corrupt spool. Before this, the
receiver died silently and the process stayed up acknowledging nothing. Now the supervisor restarts
it after a backoff (0.5 s doubling to 8 s). More than :data:`MAX_RESTARTS` deaths of one thread
within :data:`WINDOW_S` mean it cannot be kept alive: the supervisor stops restarting it and
reports the collector unhealthy, and ``parkcarbon collect`` exits non-zero, so that whatever runs
it (systemd, Docker) restarts the process and alerts; spooled data is kept, unacknowledged
messages are redelivered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("parkcarbon.collector")

MAX_RESTARTS = 5
WINDOW_S = 60.0
CHECK_S = 0.2


@dataclass
class _Watched:
    name: str
    alive: Callable[[], bool]
    restart: Callable[[], None]
    deaths: deque[float] = field(default_factory=deque)
    next_restart: float = 0.0
    given_up: bool = False


class Supervisor:
    def __init__(
        self,
        name: str,
        on_restart: Callable[[str], None] = lambda _name: None,
        max_restarts: int = MAX_RESTARTS,
        window_s: float = WINDOW_S,
        check_s: float = CHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._on_restart = on_restart
        self._max_restarts = max_restarts
        self._window_s = window_s
        self._check_s = check_s
        self._clock = clock
        self._watched: list[_Watched] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-supervisor", daemon=True)
        self.restarts = 0

    def watch(self, name: str, alive: Callable[[], bool], restart: Callable[[], None]) -> None:
        self._watched.append(_Watched(name, alive, restart))

    @property
    def healthy(self) -> bool:
        """False once a watched thread could not be kept alive."""
        return not any(w.given_up for w in self._watched)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (before the watched threads are stopped on purpose)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._check_s):
            for watched in self._watched:
                try:
                    self.check(watched)
                except Exception:  # the supervisor itself must not die of what it watches
                    log.exception("collector %s: supervising %s failed", self.name, watched.name)

    def check(self, watched: _Watched) -> None:
        if watched.given_up or self._stop.is_set() or watched.alive():
            return
        now = self._clock()
        if watched.next_restart == 0.0:  # a death not seen before
            while watched.deaths and now - watched.deaths[0] > self._window_s:
                watched.deaths.popleft()
            watched.deaths.append(now)
            if len(watched.deaths) > self._max_restarts:
                watched.given_up = True
                log.error(
                    "collector %s: the %s thread died %d times within %.0f s; giving up, the collector is unhealthy",
                    self.name,
                    watched.name,
                    len(watched.deaths),
                    self._window_s,
                )
                return
            watched.next_restart = now + min(0.5 * 2 ** (len(watched.deaths) - 1), 8.0)
            log.error("collector %s: the %s thread died; restarting it", self.name, watched.name)
        if now < watched.next_restart:
            return
        watched.next_restart = 0.0
        watched.restart()
        self.restarts += 1
        self._on_restart(watched.name)
