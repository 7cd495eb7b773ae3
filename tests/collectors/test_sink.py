"""The sink on a real spool and a stand-in for InfluxDB: commit only what was written, retry outages,
write a refused batch line by line and quarantine the refused lines, and leave the rest spooled at stop."""

from __future__ import annotations

import threading
import time

import pytest

from collectors.points import UniqueClock
from collectors.sink import Outcome, Sink
from collectors.spool import Spool
from park.lineprotocol import Point
from park.measurements import QUARANTINE
from park.store import InfluxError

READING = "meter_register,enterprise=E01,meter=M,register=r value=1.0 1"
OTHER = "meter_register,enterprise=E01,meter=M,register=r value=2.0 2"
BAD = "meter_register,enterprise=E01 value=oops 3"


class FakeInflux:
    """Takes line protocol like InfluxDB: ``down`` refuses everything as unreachable, a line in
    ``refuse`` makes a request fail with 400."""

    def __init__(self, down: bool = False, refuse: tuple[str, ...] = ()) -> None:
        self.down = down
        self.refuse = refuse
        self.lines: list[str] = []
        self.points: list[Point] = []

    def write_lines(self, body: str) -> None:
        if self.down:
            raise InfluxError("not reachable")
        if any(line in self.refuse for line in body.split("\n")):
            raise InfluxError("400: unable to parse", 400)
        self.lines += body.split("\n")

    def write(self, points: list[Point]) -> int:
        if self.down:
            raise InfluxError("not reachable")
        self.points += points
        return len(points)


class Reports:
    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []
        self._changed = threading.Condition()

    def __call__(self, outcome: Outcome) -> None:
        with self._changed:
            self.outcomes.append(outcome)
            self._changed.notify_all()

    def wait_for(self, predicate, timeout_s: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self.outcomes), timeout_s)


def committed(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.error is None]


@pytest.fixture
def spools(tmp_path):
    """Opens spools in the test's directory and closes them after it."""
    opened: list[Spool] = []

    def open_spool() -> Spool:
        opened.append(Spool(tmp_path / "spool"))
        return opened[-1]

    yield open_spool
    for spool in opened:
        spool.close()


def sink_on(spools, store: FakeInflux) -> tuple[Spool, Sink, Reports]:
    spool = spools()
    reports = Reports()
    return spool, Sink(spool, store, UniqueClock(), "test", reports), reports


def test_written_batch_is_committed_and_reported(spools):
    store = FakeInflux()
    spool, sink, reports = sink_on(spools, store)
    end = spool.append(READING + '\nquarantine,reason=x detail="d" 5', received_ns=7)
    sink.start()
    try:
        assert reports.wait_for(lambda o: committed(o))
    finally:
        sink.stop(1.0)
    assert store.lines == [READING, 'quarantine,reason=x detail="d" 5']
    assert reports.outcomes == [Outcome(readings=1, received_ns=7)]  # one reading line of the two
    assert spool.committed == end


def test_outage_is_retried_until_influxdb_returns(spools):
    store = FakeInflux(down=True)
    spool, sink, reports = sink_on(spools, store)
    end = spool.append(READING, received_ns=1)
    sink.start()
    try:
        assert reports.wait_for(lambda o: len(o) >= 1)
        assert spool.committed != end  # nothing is committed while InfluxDB is away
        store.down = False
        assert reports.wait_for(lambda o: committed(o), 5.0)
    finally:
        sink.stop(1.0)
    failures = [o for o in reports.outcomes if o.error is not None]
    assert failures and all(o.error.retryable for o in failures)
    assert store.lines == [READING] and spool.committed == end


def test_refused_batch_goes_line_by_line_and_refused_lines_are_quarantined(spools):
    store = FakeInflux(refuse=(BAD,))
    spool, sink, reports = sink_on(spools, store)
    end = spool.append("\n".join([READING, BAD, OTHER]), received_ns=1)
    sink.start()
    try:
        assert reports.wait_for(lambda o: committed(o))
    finally:
        sink.stop(1.0)
    assert store.lines == [READING, OTHER]  # the bad line does not hold back the ones after it
    (point,) = store.points
    assert point.measurement == QUARANTINE.name
    assert point.tags["reason"] == "schema" and point.fields["payload"] == BAD and point.fields["topic"] == "(spool)"
    assert [o.error.status for o in reports.outcomes if o.error is not None] == [400]
    # Two reading lines accepted (the refused one is quarantined, not counted as written), and the
    # quarantine row the sink made, per reason.
    assert committed(reports.outcomes) == [Outcome(readings=2, received_ns=1, quarantined=(("schema", 1),))]
    assert spool.committed == end


def test_stop_leaves_what_influxdb_did_not_take_in_the_spool(spools):
    store = FakeInflux(down=True)
    spool, sink, reports = sink_on(spools, store)
    spool.append(READING, received_ns=1)
    sink.start()
    assert reports.wait_for(lambda o: len(o) >= 1)
    started = time.monotonic()
    sink.stop(0.1)
    assert time.monotonic() - started < 5  # gives up after the deadline and the backoff it is in
    assert not committed(reports.outcomes)
    assert spool.depth_bytes() > 0
    reopened = spools()  # the next start drains it
    assert [r.text for r in reopened.read(reopened.committed, 1_000_000)] == [READING]


class FlakyInflux(FakeInflux):
    """Refuses ``refuse`` lines with 400 and, right after the first refusal, is unreachable for
    ``outage`` requests: InfluxDB failing while the sink looks for the refused lines."""

    def __init__(self, refuse: tuple[str, ...], outage: int, limit: int = 0) -> None:
        super().__init__(refuse=refuse)
        self.outage = outage
        self.refused_once = False
        self.limit = limit  # bodies larger than this are refused with 413 (0: no limit)
        self.bodies: list[str] = []

    def _fail_if_down(self) -> None:
        if self.refused_once and self.outage > 0:
            self.outage -= 1
            raise InfluxError("not reachable")

    def write_lines(self, body: str) -> None:
        self._fail_if_down()
        self.bodies.append(body)
        if self.limit and len(body.encode()) > self.limit:
            raise InfluxError("413: Request Entity Too Large", 413)
        try:
            super().write_lines(body)
        except InfluxError:
            self.refused_once = True
            raise

    def write(self, points: list[Point]) -> int:
        self._fail_if_down()
        return super().write(points)


def test_influxdb_failing_while_refused_lines_are_sought_does_not_end_the_thread(spools):
    """The fallback wrote the refused line's quarantine point without a retry: InfluxDB down at that
    moment raised out of the drainer thread, and the batch stayed spooled until a restart."""
    store = FlakyInflux(refuse=(BAD,), outage=3)
    spool, sink, reports = sink_on(spools, store)
    end = spool.append("\n".join([READING, BAD, OTHER]), received_ns=1)
    sink.start()
    try:
        assert reports.wait_for(lambda o: committed(o), 15.0)
        assert sink.alive
    finally:
        sink.stop(1.0)
    assert sorted(store.lines) == sorted([READING, OTHER])
    (point,) = store.points  # the refused line's quarantine point, once
    assert point.fields["payload"] == BAD
    errors = [o.error for o in reports.outcomes if o.error is not None]
    assert [e.status for e in errors if not e.retryable] == [400] and sum(e.retryable for e in errors) == 3
    assert committed(reports.outcomes) == [Outcome(readings=2, received_ns=1, quarantined=(("schema", 1),))]
    assert spool.committed == end


def test_a_record_larger_than_a_request_is_split(spools, tmp_path):
    """One message's worth of quarantine rows was one spool record, written in one request however
    large: InfluxDB answered 413 and the sink fell back to a request per line. Now requests stay under
    the limit, and a 413 splits the request instead."""
    lines = [f"meter_register,enterprise=E01,meter=M,register=r value={i}.0 {i}" for i in range(3_000)]
    text = "\n".join(lines)
    store = FlakyInflux(refuse=(), outage=0, limit=20_000)
    spool = spools()
    reports = Reports()
    sink = Sink(spool, store, UniqueClock(), "test", reports, max_request_bytes=20_000)
    spool.append(text, received_ns=1)
    sink.start()
    try:
        assert reports.wait_for(lambda o: committed(o))
    finally:
        sink.stop(1.0)
    assert store.lines == lines
    assert all(len(body) <= 20_000 for body in store.bodies)
    assert len(text) // 20_000 <= len(store.bodies) <= len(text) // 20_000 + 2  # no request was refused
    assert committed(reports.outcomes) == [Outcome(readings=3_000, received_ns=1)]


def test_a_413_is_split_in_halves_not_written_line_by_line(spools):
    """A server whose request limit is below the sink's: the request is halved until it fits (a few
    dozen requests for 3,000 lines), never one request per line."""
    lines = [f"meter_register,enterprise=E01,meter=M,register=r value={i}.0 {i}" for i in range(3_000)]
    store = FlakyInflux(refuse=(), outage=0, limit=30_000)
    spool, sink, reports = sink_on(spools, store)
    spool.append("\n".join(lines), received_ns=1)
    sink.start()
    try:
        assert reports.wait_for(lambda o: committed(o))
    finally:
        sink.stop(1.0)
    assert store.lines == lines and store.points == []  # nothing was refused for good
    assert len(store.bodies) < 60
    assert committed(reports.outcomes) == [Outcome(readings=3_000, received_ns=1)]
