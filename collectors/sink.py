"""The sink: drains the spool into InfluxDB in its own thread, in order, and commits the spool
position only once InfluxDB has the batch.

- A batch is written in requests of at most :data:`MAX_REQUEST_BYTES` (a spool record as large as
  one message's worth of bad input is split), well under InfluxDB 1.x's default request limit
  (``max-body-size``, 25 MB);
- before it is written, the conflict guard (``collectors.conflicts``) takes out readings that would
  rewrite a stored value and quarantines them;
- a retryable failure (InfluxDB down, a 5xx), wherever it happens — a write, a look-up, the
  quarantine of refused lines — is retried with backoff, 0.5 s doubling to 30 s, from where the
  batch had got to; InfluxDB failing never ends the thread;
- a request InfluxDB will never take as it is (a 4xx, a 413 included) is split in halves until the
  refused lines are found, so one bad point cannot hold the rest back and costs a few requests, not
  one per line; the refused lines are quarantined with their raw line protocol;
- at stop, it keeps draining until the deadline; what InfluxDB has not taken by then stays spooled
  for the next start (a batch it had partly taken is written again: readings overwrite themselves).

Every attempt's outcome is reported to the owner (the collector keeps the statistics); an
unexpected exception ends the thread, and the collector's supervisor restarts it at the committed
position.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from collectors.conflicts import READING_LINE, Checked, ConflictGuard
from collectors.model import Reason, Rejection
from collectors.points import UniqueClock, quarantine_point
from collectors.spool import Spool
from park.lineprotocol import Point
from park.store import InfluxError, InfluxStore

log = logging.getLogger("parkcarbon.collector")

READ_BYTES = 2_000_000  # spool bytes read per batch (a record larger than this is read whole)
MAX_REQUEST_BYTES = 4_000_000  # line protocol per write request


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt to write a batch of spool records came to: a failed write, or (no error) a
    batch InfluxDB has, refused lines quarantined, with the spool position moved past it."""

    error: InfluxError | None = None  # retried if retryable, else the batch is split to find the refused lines
    readings: int = 0  # reading lines of the committed batch that InfluxDB accepted
    received_ns: int = 0  # receive time of the committed batch's last record
    quarantined: tuple[tuple[str, int], ...] = ()  # quarantine rows the sink made, per reason (conflicts, refused)
    dropped: int = 0  # conflicts over their gateway's quarantine budget: counted, not written


class _DeadlineError(Exception):
    """Stopping, and InfluxDB did not come back before the deadline."""


@dataclass
class _Progress:
    """How far the current batch got, kept across retries."""

    pending: deque[list[str]]  # requests still to write, each a list of lines
    readings: int = 0
    refused: list[Point] = field(default_factory=list)  # quarantine points of refused lines, still to write
    quarantined: Counter[str] = field(default_factory=Counter)
    reported_refusal: bool = False


class Sink:
    def __init__(
        self,
        spool: Spool,
        store: InfluxStore,
        clock: UniqueClock,
        name: str,
        report: Callable[[Outcome], None],
        guard: ConflictGuard | None = None,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self._spool = spool
        self._store = store
        self._clock = clock
        self._name = name
        self._report = report
        self._guard = guard
        self._max_request_bytes = max_request_bytes
        self._stopping = threading.Event()
        self._deadline = 0.0
        self._thread = self._new_thread()

    def _new_thread(self) -> threading.Thread:
        return threading.Thread(target=self._run, name=f"{self._name}-drainer", daemon=True)

    def _run(self) -> None:
        """The drainer thread: drain until stopped, or until something unforeseen fails (the owner's
        supervisor sees the thread end and starts another at the committed position)."""
        try:
            self._drain()
        except Exception:
            log.exception("collector %s: the drainer failed", self._name)

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def restart(self) -> None:
        """Start a new drainer thread at the committed position (after the last one died)."""
        if not self._thread.is_alive() and not self._stopping.is_set():
            self._thread = self._new_thread()
            self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Drain what is spooled for up to ``timeout_s`` more, then return."""
        self._deadline = time.monotonic() + timeout_s
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s + 5)

    def _drain(self) -> None:
        position = self._spool.committed
        while True:
            records = self._spool.read(position, max_bytes=READ_BYTES)
            if not records:
                if self._stopping.is_set():
                    return
                self._spool.wait(position, 0.5)
                continue
            text = "\n".join(r.text for r in records)
            try:
                outcome = self._write_batch(text, records[-1].received_ns)
            except _DeadlineError:
                log.warning(
                    "collector %s: InfluxDB unavailable at stop; %d bytes stay spooled",
                    self._name,
                    self._spool.depth_bytes(),
                )
                return
            position = records[-1].end
            self._spool.commit(position)
            self._report(outcome)

    def _write_batch(self, text: str, received_ns: int) -> Outcome:
        """Write one batch, retrying what fails retryably, until InfluxDB has all of it."""
        lines = text.split("\n")
        checked: Checked | None = None if self._guard is not None else Checked(lines)
        progress: _Progress | None = None
        delay = 0.5
        while True:
            try:
                if checked is None and self._guard is not None:
                    checked = self._guard.check(lines)  # raises only what is worth a retry
                assert checked is not None
                if progress is None:
                    progress = _Progress(deque(self._requests(checked.lines, len(text))))
                self._write(progress)
                break
            except InfluxError as exc:
                self._report(Outcome(exc))
                self._backoff(delay, exc)
                delay = min(delay * 2, 30.0)
        if self._guard is not None:
            self._guard.accept(checked)
        if checked.conflicts:
            progress.quarantined[Reason.CONFLICT.value] += checked.conflicts
        return Outcome(
            readings=progress.readings,
            received_ns=received_ns,
            quarantined=tuple(sorted(progress.quarantined.items())),
            dropped=checked.dropped,
        )

    def _requests(self, lines: list[str], size: int) -> list[list[str]]:
        """``lines`` in requests of at most about ``max_request_bytes`` (one line may be larger alone)."""
        if size <= self._max_request_bytes:
            return [lines]
        requests: list[list[str]] = [[]]
        used = 0
        for line in lines:
            length = len(line) if line.isascii() else len(line.encode("utf-8", "backslashreplace"))
            if requests[-1] and used + length > self._max_request_bytes:
                requests.append([])
                used = 0
            requests[-1].append(line)
            used += length + 1
        return requests

    def _write(self, progress: _Progress) -> None:
        """Write the pending requests in order; raises InfluxError on a retryable failure, with
        ``progress`` showing what is left."""
        while progress.pending:
            request = progress.pending[0]
            try:
                self._store.write_lines("\n".join(request))
            except InfluxError as exc:
                if exc.retryable:
                    raise
                progress.pending.popleft()
                self._refused(request, exc, progress)
                continue
            progress.pending.popleft()
            progress.readings += sum(line.startswith(READING_LINE) for line in request)
        if progress.refused:
            try:
                self._store.write(progress.refused)
            except InfluxError as exc:
                if exc.retryable:
                    raise
                log.error("collector %s: InfluxDB refused the quarantine of refused lines: %s", self._name, exc)
            progress.refused = []

    def _refused(self, request: list[str], exc: InfluxError, progress: _Progress) -> None:
        """InfluxDB will not take ``request`` as it is: split it, or quarantine its one line."""
        if not progress.reported_refusal:
            progress.reported_refusal = True
            self._report(Outcome(exc))
            log.error("collector %s: InfluxDB refused a batch (%s); finding the refused lines", self._name, exc)
        if len(request) > 1:
            half = len(request) // 2
            progress.pending.appendleft(request[half:])
            progress.pending.appendleft(request[:half])
            return
        rejection = Rejection(Reason.SCHEMA, f"InfluxDB refused the point: {exc}")
        progress.refused.append(quarantine_point(rejection, "(spool)", request[0].encode(), self._clock.now_ns()))
        progress.quarantined[Reason.SCHEMA.value] += 1

    def _backoff(self, delay: float, exc: InfluxError) -> None:
        """Wait ``delay`` before the next attempt; raise _DeadlineError if stopping and past the deadline."""
        if self._stopping.is_set():
            remaining = self._deadline - time.monotonic()
            if remaining <= 0:
                raise _DeadlineError
            time.sleep(min(delay, remaining))
            return
        log.warning("collector %s: InfluxDB write failed (%s); retrying in %.1f s", self._name, exc, delay)
        self._stopping.wait(delay)
