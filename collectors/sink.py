"""The sink: drains the spool into InfluxDB in its own thread, in order, and commits the spool
position only once InfluxDB has the batch.

- A retryable failure (InfluxDB down, a 5xx) is retried with backoff, 0.5 s doubling to 30 s;
- a batch InfluxDB will never take as it is (a 4xx) is written line by line, so one bad point cannot
  hold the rest back, and the refused lines are quarantined with their raw line protocol;
- at stop, it keeps draining until the deadline; what InfluxDB has not taken by then stays spooled
  for the next start.

Every attempt's outcome is reported to the owner (the collector keeps the statistics).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from collectors.model import Reason, Rejection
from collectors.points import UniqueClock, quarantine_point
from collectors.spool import Spool
from park.measurements import METER_REGISTER
from park.store import InfluxError, InfluxStore

log = logging.getLogger("parkcarbon.collector")

_READING_LINE = METER_REGISTER.name + ","  # a reading's line starts with its measurement and its first tag


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt to write a batch of spool records came to: a failed write, or (no error) a
    batch InfluxDB has, refused lines quarantined, with the spool position moved past it."""

    error: InfluxError | None = None  # retried if retryable, else the batch goes line by line
    readings: int = 0  # reading lines of the committed batch
    received_ns: int = 0  # receive time of the committed batch's last record


class Sink:
    def __init__(
        self, spool: Spool, store: InfluxStore, clock: UniqueClock, name: str, report: Callable[[Outcome], None]
    ) -> None:
        self._spool = spool
        self._store = store
        self._clock = clock
        self._name = name
        self._report = report
        self._stopping = threading.Event()
        self._deadline = 0.0
        self._thread = threading.Thread(target=self._drain, name=f"{name}-drainer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Drain what is spooled for up to ``timeout_s`` more, then return."""
        self._deadline = time.monotonic() + timeout_s
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s + 5)

    def _drain(self) -> None:
        position = self._spool.committed
        delay = 0.5
        while True:
            records = self._spool.read(position, max_bytes=2_000_000)
            if not records:
                if self._stopping.is_set():
                    return
                self._spool.wait(position, 0.5)
                continue
            text = "\n".join(r.text for r in records)
            try:
                self._store.write_lines(text)
            except InfluxError as exc:
                self._report(Outcome(exc))
                if exc.retryable:
                    if self._stopping.is_set() and time.monotonic() > self._deadline:
                        log.warning(
                            "collector %s: InfluxDB unavailable at stop; %d bytes stay spooled",
                            self._name,
                            self._spool.depth_bytes(),
                        )
                        return
                    log.warning("collector %s: InfluxDB write failed (%s); retrying in %.1f s", self._name, exc, delay)
                    time.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                self._write_line_by_line(text, exc)
            delay = 0.5
            position = records[-1].end
            self._spool.commit(position)
            readings = sum(line.startswith(_READING_LINE) for line in text.split("\n"))
            self._report(Outcome(readings=readings, received_ns=records[-1].received_ns))

    def _write_line_by_line(self, text: str, first_error: InfluxError) -> None:
        """Write ``text`` line by line and quarantine the lines InfluxDB refuses (raw line protocol kept)."""
        log.error("collector %s: InfluxDB refused a batch (%s); writing line by line", self._name, first_error)
        for line in text.split("\n"):
            try:
                self._store.write_lines(line)
            except InfluxError as exc:
                rejection = Rejection(Reason.SCHEMA, f"InfluxDB refused the point: {exc}")
                self._store.write([quarantine_point(rejection, "(spool)", line.encode(), self._clock.now_ns())])
