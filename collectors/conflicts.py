"""No silent rewrite of history: a reading for a meter register and time that InfluxDB already holds
with another value is quarantined as ``conflict``, and the stored value stays.

InfluxDB overwrites a point with the same series and time, which is what makes redelivery and
replay harmless; it would let a gateway (faulty or hostile) replace a stored 300 by 3 as well, up to
the age limit, without a trace. The sink asks this guard before each write:

- A redelivery of the same value stays an idempotent overwrite (it is written again and counted
  as written); the registry's multiplier applied again may change ``value``: only the register as
  the meter sent it (``raw_value``) is compared.
- Cheap: only a reading at or before the latest time already stored for its series can conflict.
  The guard keeps that latest time per series in memory: taken lazily from InfluxDB with ``LAST``
  the first time a series is seen (one request for all new series of a batch), then moved on by
  what the sink writes. Only the readings at or before it are looked up, one request per batch
  (per series, a time range around them). Steady in-order ingestion makes no queries at all.
- Within a batch the first of two readings of one series and time is the one kept.
- With replicas sharing the subscriptions, another replica writes the same series: the guard then
  takes the latest time again when it is older than ``refresh_after_s``; a conflicting rewrite of a
  reading that another replica stored within that window can still pass.
- Only reading lines whose tags carry no escape are checked (registry ids cannot have one).
- The look-ups need the collector's InfluxDB account to read the database (InfluxDB 1.x grants
  READ, WRITE or ALL per database). If InfluxDB refuses them, the guard logs an error, lets batches
  through unchecked, and asks again :data:`ASK_AGAIN_S` later: ingestion never waits on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from collectors.budget import UNKNOWN_GATEWAY, QuarantineBudget
from collectors.model import Reason, Rejection
from collectors.points import UniqueClock, quarantine_point
from park.lineprotocol import encode
from park.measurements import METER_REGISTER
from park.registry import Registry
from park.store import InfluxError, quote_ident, quote_literal

log = logging.getLogger("parkcarbon.collector")

READING_LINE = METER_REGISTER.name + ","  # a reading's line starts with its measurement and its first tag
NO_POINT = -1  # the latest time of a series InfluxDB has no point of
STATEMENTS_PER_REQUEST = 200
ASK_AGAIN_S = 300.0  # after InfluxDB refused a look-up (no read privilege, say)
CLUSTER_NS = 86_400 * 10**9  # looked-up times further apart than a day are looked up in separate ranges


class Querier(Protocol):
    def execute(self, statement: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]: ...


@dataclass
class Checked:
    """A batch as it is to be written, and what the guard learns once it is."""

    lines: list[str]  # the batch less its conflicting readings, with their quarantine lines appended
    conflicts: int = 0  # quarantine rows for conflicts among ``lines``
    dropped: int = 0  # conflicts over their gateway's quarantine budget: counted, not written
    latest: dict[str, int] = field(default_factory=dict)  # series → latest time once ``lines`` are written


class ConflictGuard:
    def __init__(
        self,
        store: Querier,
        registry: Registry,
        clock: UniqueClock,
        budget: QuarantineBudget | None = None,
        refresh_after_s: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._registry = registry
        self._clock = clock
        self._budget = budget
        self._refresh_after_s = refresh_after_s
        self._monotonic = monotonic
        self._latest: dict[str, tuple[int, float]] = {}  # series → (latest time stored, when taken from InfluxDB)
        self._refused_until = 0.0
        self.queries = 0  # requests made, for tests and logs
        self.unchecked = 0  # batches let through because InfluxDB refused the look-ups

    def use_registry(self, registry: Registry) -> None:
        """Tag later conflicts' quarantine rows with ``registry`` (the collector's reloaded one)."""
        self._registry = registry

    def check(self, lines: list[str]) -> Checked:
        """The batch with conflicting readings replaced by quarantine lines; raises InfluxError if
        InfluxDB cannot be reached (the sink retries). A look-up InfluxDB refuses lets the batch
        through unchecked (logged; asked again later)."""
        if self._monotonic() < self._refused_until:
            self.unchecked += 1
            return Checked(lines)
        try:
            return self._check(lines)
        except InfluxError as exc:
            if exc.retryable:
                raise
            self._refused_until = self._monotonic() + ASK_AGAIN_S
            self.unchecked += 1
            log.error(
                "collector: InfluxDB refused the conflict look-up (%s); readings are written unchecked for"
                " conflicts for %.0f s. The collector's InfluxDB account must be allowed to read the database"
                " (GRANT ALL), or a rewrite of stored history cannot be detected",
                exc,
                ASK_AGAIN_S,
            )
            return Checked(lines)

    def _check(self, lines: list[str]) -> Checked:
        now = self._monotonic()
        refresh = self._refresh_after_s
        known = self._latest
        readings: list[tuple[int, str, int]] = []  # (line index, series, time)
        unknown: set[str] = set()
        for index, line in enumerate(lines):
            if not line.startswith(READING_LINE):
                continue
            series = line[: line.find(" ")]
            try:
                at = int(line[line.rindex(" ") + 1 :])
            except ValueError:
                continue
            if "\\" in series:
                continue
            readings.append((index, series, at))
            entry = known.get(series)
            if entry is None or (refresh is not None and now - entry[1] > refresh):
                unknown.add(series)
        if not readings:
            return Checked(lines)
        taken = self._last_times(sorted(unknown))
        for series, at in taken.items():  # what InfluxDB said counts as checked now
            self._latest[series] = (max(at, known.get(series, (NO_POINT, 0.0))[0]), now)
        # A reading newer than everything before it in its series (stored or in this batch) cannot
        # conflict: in-order ingestion stops here. The others are suspects; those not newer than
        # what InfluxDB holds are looked up.
        latest: dict[str, int] = {}
        base: dict[str, int] = {}
        suspects: set[tuple[str, int]] = set()
        wanted: dict[str, list[int]] = {}
        for _, series, at in readings:
            top = latest.get(series)
            if top is None:
                top = base[series] = known[series][0]
                latest[series] = top
            if at > top:
                latest[series] = at
                continue
            suspects.add((series, at))
            if at <= base[series]:
                wanted.setdefault(series, []).append(at)
        if not suspects:
            return Checked(lines, latest=latest)
        have: dict[tuple[str, int], float] = self._stored(wanted)
        drop: set[int] = set()
        rows: list[str] = []
        dropped = 0
        for index, series, at in readings:
            if (series, at) not in suspects:
                continue
            raw = _raw_value(lines[index])
            if raw is None:
                continue
            stored = have.setdefault((series, at), raw)  # the first in the batch, if InfluxDB has none
            if stored != raw:
                drop.add(index)
                row = self._conflict_row(lines[index], series, at, stored, raw)
                if row is None:
                    dropped += 1
                else:
                    rows.append(row)
        if not drop:
            return Checked(lines, latest=latest)
        kept = [line for index, line in enumerate(lines) if index not in drop]
        return Checked(kept + rows, conflicts=len(rows), dropped=dropped, latest=latest)

    def accept(self, checked: Checked) -> None:
        """The batch is in InfluxDB: its series' latest times move on."""
        now = self._monotonic()
        for series, at in checked.latest.items():
            known, taken_at = self._latest.get(series, (NO_POINT, now))
            self._latest[series] = (max(at, known), taken_at)

    # -- InfluxDB -------------------------------------------------------------------------------------

    def _last_times(self, series: list[str]) -> dict[str, int]:
        """The time of each series' last point in InfluxDB (NO_POINT if none)."""
        statements = [f'SELECT LAST("raw_value") FROM {METER_REGISTER.q} WHERE {_where(s)}' for s in series]
        found = dict.fromkeys(series, NO_POINT)
        for name, values in zip(series, self._run(statements), strict=True):
            if values:
                found[name] = int(values[0][0])
        return found

    def _stored(self, wanted: dict[str, list[int]]) -> dict[tuple[str, int], float]:
        """raw_value of the points InfluxDB has at the wanted times, per (series, time)."""
        statements: list[str] = []
        ranges: list[tuple[str, set[int]]] = []
        for series, times in wanted.items():
            ordered = sorted(set(times))
            start = 0
            for i in range(1, len(ordered) + 1):
                if i == len(ordered) or ordered[i] - ordered[i - 1] > CLUSTER_NS:
                    low, high = ordered[start], ordered[i - 1]
                    statements.append(
                        f'SELECT "raw_value" FROM {METER_REGISTER.q} WHERE {_where(series)}'
                        f" AND time >= {low} AND time <= {high}"
                    )
                    ranges.append((series, set(ordered[start:i])))
                    start = i
        stored: dict[tuple[str, int], float] = {}
        for (series, looked_up), values in zip(ranges, self._run(statements), strict=True):
            for at, raw in values:
                if int(at) in looked_up and raw is not None:
                    stored[(series, int(at))] = float(raw)  # JSON has 300 for 300.0
        return stored

    def _run(self, statements: list[str]) -> list[list[list[Any]]]:
        """Each statement's rows (time first), asked in requests of many statements each."""
        rows: list[list[list[Any]]] = []
        for start in range(0, len(statements), STATEMENTS_PER_REQUEST):
            part = statements[start : start + STATEMENTS_PER_REQUEST]
            self.queries += 1
            results = self._store.execute(";".join(part))
            by_id = {r.get("statement_id", i): r for i, r in enumerate(results)}
            for i in range(len(part)):
                series = by_id.get(i, {}).get("series") or [{}]
                rows.append(series[0].get("values") or [])
        return rows

    # -- quarantine -----------------------------------------------------------------------------------

    def _conflict_row(self, line: str, series: str, at: int, stored: float, raw: float) -> str | None:
        """The conflict's quarantine line (the registry's tags), or None if its gateway is over budget."""
        tags = _tags(series)
        meter = self._registry.meter_by_id.get(tags.get("meter", ""))
        enterprise, gateway = (meter.enterprise, meter.gateway) if meter is not None else ("", "")
        if self._budget is not None and not self._budget.take(gateway or UNKNOWN_GATEWAY, 1):
            return None
        when = datetime.fromtimestamp(at // 10**9, UTC).isoformat()
        detail = (
            f"meter {tags.get('meter')!r} register {tags.get('register')!r} at {when}: InfluxDB has raw_value"
            f" {stored!r}, this reading says {raw!r}; the stored value is kept"
        )
        rejection = Rejection(Reason.CONFLICT, detail, enterprise, gateway, tags.get("meter", ""))
        point = quarantine_point(
            rejection, "(spool)", line.encode(), self._clock.now_ns(), enterprise=enterprise, gateway=gateway
        )
        return encode(point)


def _tags(series: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in series.split(",")[1:] if "=" in part)


def _where(series: str) -> str:
    """The InfluxQL condition that selects exactly this reading series (a tag it lacks is empty)."""
    tags = _tags(series)
    return " AND ".join(f"{quote_ident(tag)} = {quote_literal(tags.get(tag, ''))}" for tag in METER_REGISTER.tags)


def _raw_value(line: str) -> float | None:
    """The ``raw_value`` field of a reading line, or None if it has none."""
    space = line.find(" ")
    end_of_fields = line.rindex(" ")
    start = line.find(",raw_value=", space, end_of_fields)
    if start < 0:
        start = line.find(" raw_value=", space, end_of_fields)
    if start < 0:
        return None
    start += len(",raw_value=")
    end = line.find(",", start, end_of_fields)
    try:
        return float(line[start : end if end >= 0 else end_of_fields])
    except ValueError:
        return None
