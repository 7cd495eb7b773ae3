"""The collector's registry kept current while it runs: a thread asks a source for the registry every
``interval_s`` and hands a changed one to the replicas (:meth:`collectors.service.Collector.use_registry`).

The collectors may import only ``park/``, so the source is a plain callable the top layer gives
(``parkcarbon/cli/collect.py``: the platform's database, as of the park's today). Why a poll rather
than a notification: the platform's workers and the CLI change the registry in their own processes and
transactions, and a poll of a few seconds is what a gateway added on the platform waits for before its
readings are known; a reload swaps a registry between batches, so nothing queued is dropped and
nothing restarts.

When the source fails (the database unreachable, a registry that does not validate) the replicas keep
the last good registry: one warning line when the failure starts, one info line when the source
answers again, nothing in between (a database down for an hour must not flood the log).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from park.registry import Registry

log = logging.getLogger("parkcarbon.collector")


class UsesRegistry(Protocol):
    def use_registry(self, registry: Registry) -> None: ...


class RegistryReloader:
    """Polls ``load`` every ``interval_s`` seconds; a registry unequal to the last one goes to every
    replica. ``reloads`` and ``failures`` count, for tests and logs."""

    def __init__(
        self,
        load: Callable[[], Registry],
        current: Registry,
        replicas: Sequence[UsesRegistry],
        interval_s: float,
    ) -> None:
        self._load = load
        self.current = current
        self._replicas = replicas
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="registry-reload", daemon=True)
        self._failing = False
        self.reloads = 0
        self.failures = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.poll()

    def poll(self) -> bool:
        """Ask the source once; True if the replicas got a new registry. Never raises: a failure keeps
        the last good registry (the collector goes on collecting)."""
        try:
            registry = self._load()
        except Exception as exc:  # the source's failures are many (network, SQL, validation): all are "keep going"
            self.failures += 1
            if not self._failing:
                self._failing = True
                log.warning(
                    "registry reload failed (%s: %s); collecting with the last good registry (version %s)",
                    type(exc).__name__,
                    exc,
                    self.current.version,
                )
            return False
        if self._failing:
            self._failing = False
            log.info("registry reload works again")
        if registry == self.current:
            return False
        for replica in self._replicas:
            replica.use_registry(registry)
        self.current = registry
        self.reloads += 1
        log.info(
            "registry reloaded (version %s): %d enterprises, %d gateways, %d meters",
            registry.version,
            len(registry.enterprises),
            len(registry.gateways),
            len(registry.meters),
        )
        return True
