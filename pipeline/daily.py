"""Daily rollups: each meter register's consumption of one local day with its data-quality flags
(``METER_DAILY``), rolled up by the daily quality DAG, and the month summed from its days.

- A day (local midnight to midnight in the registry's park time zone, readings in (start, end]) is
  computed by :func:`scoring.registers.meter_days` with its month as the period, from the day's raw
  readings and a small margin around it (``NEAR``); a register without a reading in that margin
  gets the last reading before the day (first after it) looked up as far as the monthly step looks
  (``MARGIN`` around the month). So a day rolled up alone is bit for bit the day its month computes.
- The month (:func:`month_consumption`) sums its days: those in ``METER_DAILY`` computed under the
  meter's current rules (``rules_sha256``), the others from raw readings, read for those days only.
  Without any rollup the month is read raw and gives the same figures, bit for bit.
- Late readings (:func:`reroll_late_days`): a rolled-up day whose stored reading count differs from
  the readings stored now is touched; every rolled-up day whose figures depend on its readings (the
  days between the reading before it and the reading after it) is recomputed, and exactly those
  whose figures changed are written again.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from park.lineprotocol import Point, to_ns
from park.measurements import METER_DAILY, METER_REGISTER
from park.month import Month, rfc3339
from park.registry import Meter, Registry
from park.settings import Settings
from park.store import InfluxStore, quote_ident, quote_literal
from pipeline.checks import WrongInputError
from pipeline.registry_source import registries_of_periods, registry_of_day
from scoring.registers import (
    RegisterSpec,
    WindowConsumption,
    combine_days,
    meter_days,
    registers_by_day,
    rules_sha256,
)

MARGIN = timedelta(days=35)  # how far before and after the month to look for the bracketing readings
NEAR = timedelta(hours=1)  # raw readings read around a day or a run of days
CHUNK_METERS = 200  # meters read from InfluxDB per query: bounds memory whatever the park's size
READS_IN_FLIGHT = 2  # raw reads asked at once while a chunk is computed (see rollup_chunks)
CHUNK_SUSPECTS = 50  # meters per per-day count request when looking for late readings

Key = tuple[str, str]  # (meter, register)
Series = dict[Key, tuple[np.ndarray, np.ndarray]]
Days = dict[Key, dict[date, WindowConsumption]]
COUNT_FIELDS = (
    "readings",
    "expected",
    "gaps",
    "estimated_intervals",
    "rollovers",
    "resets",
    "spikes",
    "apportioned",
    "replacements",
)


def meter_filter(meter_ids: Sequence[str]) -> str:
    """An InfluxQL condition selecting the series of these meters (tag equality uses the index)."""
    return "(" + " OR ".join(f'"meter" = {quote_literal(m)}' for m in meter_ids) + ")"


def day_start(day: date, timezone: str) -> datetime:
    """Local midnight at the start of ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone))


def day_end(day: date, timezone: str) -> datetime:
    return day_start(day + timedelta(days=1), timezone)


def month_of(day: date, timezone: str) -> Month:
    return Month.of(f"{day.year:04d}-{day.month:02d}", timezone)


def days_in(month: Month) -> list[date]:
    first = month.start.date()
    return [first + timedelta(days=i) for i in range((month.end.date() - first).days)]


def _runs(days: Iterable[date]) -> list[list[date]]:
    """Sorted days cut into runs of consecutive days."""
    runs: list[list[date]] = []
    for day in sorted(set(days)):
        if runs and (day - runs[-1][-1]).days == 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def _series(frames: Sequence[pd.DataFrame]) -> Series:
    """Each register's readings in time order, the first of any with the same time. Sorted as integer
    codes of the tags (no sort of strings, no groupby: a day's chunk has 20,000 rows per 200 meters)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return {}
    data = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    meter_codes, meter_ids = pd.factorize(data["meter"], use_na_sentinel=False)
    register_codes, registers = pd.factorize(data["register"], use_na_sentinel=False)
    keys = meter_codes.astype(np.int64) * len(registers) + register_codes
    times = data["time"].dt.as_unit("ns").astype("int64").to_numpy()  # ns since the epoch
    values = data["raw_value"].to_numpy(dtype=float)
    order = np.lexsort((times, keys))  # stable: equal times keep their order
    keys, times, values = keys[order], times[order], values[order]
    first = np.ones(len(keys), dtype=bool)
    first[1:] = (keys[1:] != keys[:-1]) | (times[1:] != times[:-1])
    keys, times, values = keys[first], times[first], values[first]
    starts = np.flatnonzero(np.diff(keys)) + 1
    return {
        (str(meter_ids[key // len(registers)]), str(registers[key % len(registers)])): (t, v)
        for key, t, v in zip(
            keys[np.concatenate([[0], starts])].tolist(), np.split(times, starts), np.split(values, starts), strict=True
        )
    }


def read_span(store: InfluxStore, start: datetime, end: datetime, month: Month, meters: Sequence[Meter]) -> Series:
    """The meters' readings in [start − NEAR, end + NEAR]; for a register without a reading at or
    before ``start`` (after ``end``) there, the last before it (first after it) as far as ``MARGIN``
    around ``month``, which is where the monthly step looks."""
    only = meter_filter([m.id for m in meters])
    low, high = start - NEAR, end + NEAR
    series = _series(
        [
            store.query_csv(
                f"SELECT \"raw_value\" FROM {METER_REGISTER.q} WHERE time >= '{rfc3339(low)}' "
                f'AND time <= \'{rfc3339(high)}\' AND {only} GROUP BY "meter", "register"',
                group_by=("meter", "register"),
            )
        ]
    )
    start_ns, end_ns = to_ns(start), to_ns(end)
    keys = [(m.id, r.value) for m in meters for r in m.registers]
    before = sorted({k[0] for k in keys if k not in series or series[k][0][0] > start_ns})
    after = sorted({k[0] for k in keys if k not in series or series[k][0][-1] <= end_ns})
    statements = []
    if before:
        statements.append(
            f'SELECT LAST("raw_value") AS "raw_value" FROM {METER_REGISTER.q} WHERE time < \'{rfc3339(low)}\' '
            f'AND time >= \'{rfc3339(month.start - MARGIN)}\' AND {meter_filter(before)} GROUP BY "meter", "register"'
        )
    if after:
        statements.append(
            f'SELECT FIRST("raw_value") AS "raw_value" FROM {METER_REGISTER.q} WHERE time > \'{rfc3339(high)}\' '
            f'AND time <= \'{rfc3339(month.end + MARGIN)}\' AND {meter_filter(after)} GROUP BY "meter", "register"'
        )
    if not statements:
        return series
    extra = _series(store.query_many(statements))
    for key, (times, values) in extra.items():
        if key in series:
            t, v = series[key]
            times, values = np.concatenate([times, t]), np.concatenate([values, v])
            order = np.argsort(times, kind="stable")
            times, values = times[order], values[order]
        series[key] = (times, values)
    return series


def rollup_days(
    registry: Registry,
    store: InfluxStore,
    days: Iterable[date],
    meters: Sequence[Meter],
    chunk_meters: int = CHUNK_METERS,
) -> Days:
    """Each of ``meters``' registers on each of ``days``, computed from raw readings (:func:`rollup_chunks`)."""
    result: Days = defaultdict(dict)
    for part in rollup_chunks(registry, store, days, meters, chunk_meters):
        for key, by_day in part.items():
            result[key].update(by_day)
    return result


def rollup_chunks(
    registry: Registry,
    store: InfluxStore,
    days: Iterable[date],
    meters: Sequence[Meter],
    chunk_meters: int = CHUNK_METERS,
) -> Iterator[Days]:
    """Each of ``meters``' registers on each of ``days``, computed from raw readings, yielded per run
    of consecutive days of one month and chunk of meters (one read each) as soon as it is computed.

    The next ``READS_IN_FLIGHT`` chunks are read (InfluxDB answering, the answer parsed) in as many
    threads while this one is computed, so InfluxDB answers one read while the last answer is parsed
    and the computation keeps the rest of the machine busy, instead of each taking turns: at 20,000
    meters a day took 7.0 s with one read ahead and 5.6 s with two (bench/monthly.py, 2026-11-29).
    At most ``READS_IN_FLIGHT + 1`` chunks are held at once. The reads share ``store`` (an httpx
    client is safe to share between threads)."""
    tz = registry.park.timezone
    by_month: dict[str, list[date]] = defaultdict(list)
    for day in days:
        by_month[month_of(day, tz).period].append(day)
    reads = []  # (month, run, chunk) in the order they are computed
    for period, month_days in sorted(by_month.items()):
        month = Month.of(period, tz)
        for run in _runs(month_days):
            for first in range(0, len(meters), chunk_meters):
                reads.append((month, run, meters[first : first + chunk_meters]))
    if not reads:
        return

    def read(index: int) -> Series:
        month, run, chunk = reads[index]
        return read_span(store, day_start(run[0], tz), day_end(run[-1], tz), month, chunk)

    with ThreadPoolExecutor(max_workers=READS_IN_FLIGHT, thread_name_prefix="rollup-read") as reader:
        pending = deque(reader.submit(read, i) for i in range(min(READS_IN_FLIGHT, len(reads))))
        for index, (month, run, chunk) in enumerate(reads):
            series = pending.popleft().result()
            if index + READS_IN_FLIGHT < len(reads):
                pending.append(reader.submit(read, index + READS_IN_FLIGHT))
            bounds = [to_ns(day_start(d, tz)) for d in run] + [to_ns(day_end(run[-1], tz))]
            yield _chunk_days(chunk, series, run, bounds, month)


def _chunk_days(chunk: Sequence[Meter], series: Series, run: Sequence[date], bounds: list[int], month: Month) -> Days:
    """The days of ``run`` of every register of ``chunk``: meters without replacements in one pass
    (:func:`registers_by_day`, 10x faster than one register at a time), the rare replaced ones alone."""
    empty = (np.array([], dtype=np.int64), np.array([], dtype=float))
    plain = [(m, r.value) for m in chunk if not m.replacements for r in m.registers]
    specs = [
        RegisterSpec(m.multiplier, m.rollover_at, m.interval_minutes * 60 * 10**9, m.max_per_hour) for m, _ in plain
    ]
    batch = registers_by_day(
        [series.get((m.id, r), empty) for m, r in plain], specs, bounds, month.start_ns, month.end_ns
    )
    computed = {(m.id, r): windows for (m, r), windows in zip(plain, batch, strict=True)}
    result: Days = defaultdict(dict)
    for meter in chunk:
        for register in meter.registers:
            key = (meter.id, register.value)
            windows = computed.get(key)
            if windows is None:
                times, raw = series.get(key, empty)
                windows = meter_days(meter, times, raw, bounds, month.start_ns, month.end_ns)
            for day, window in zip(run, windows, strict=True):
                result[key][day] = window
    return result


def daily_points(registry: Registry, days: Days, day: date) -> list[Point]:
    """``METER_DAILY`` points of ``day`` for the registers in ``days``."""
    at_ns = to_ns(day_start(day, registry.park.timezone))
    points = []
    for (meter_id, register), windows in sorted(days.items()):
        window = windows.get(day)
        meter = registry.meter_by_id.get(meter_id)
        if window is None or meter is None:
            continue
        fields: dict[str, float | bool | str] = {name: float(getattr(window, name)) for name in COUNT_FIELDS}
        fields |= {
            "quantity": window.quantity,
            "unit": meter.unit,
            "has_start": window.has_start,
            "rules_sha256": rules_sha256(meter),
        }
        tags = {"enterprise": meter.enterprise, "meter": meter_id, "register": register}
        points.append(METER_DAILY.point(tags, fields, at_ns))
    return points


def compute_day_rollup(settings: Settings, day: str, now: datetime | None = None) -> dict[str, object]:
    """Roll up every registry meter register's ``day`` (YYYY-MM-DD, local) into ``METER_DAILY``,
    replacing that day's points. A day that has not ended is refused."""
    when = date.fromisoformat(day)
    registry = registry_of_day(settings, when)  # with the database: the registry of the day's month
    tz = registry.park.timezone
    if day_end(when, tz) > (now or datetime.now(UTC)):
        raise WrongInputError(f"{day} has not ended yet: a day is rolled up once it is over")
    at_ns = to_ns(day_start(when, tz))
    totals = {"registers": 0, "readings": 0, "gaps": 0, "resets": 0, "stale_removed": 0}
    # Every register's point of the day is written over the one stored (same series and time: InfluxDB
    # replaces its fields, and a point always has all of them), chunk by chunk as each is computed, so
    # memory stays one chunk's and the writes overlap the reads. The stored points the registry no
    # longer makes (a meter or register gone, a meter moved to another enterprise) are deleted
    # meanwhile. Not a DELETE of the whole day first: at 20,000 meters that DELETE and writing into
    # the deleted range cost InfluxDB 1.4 s of CPU per day more (bench/monthly.py, 2026-11-29). A run
    # that fails half-way leaves each register's point either new or as a previous rollup made it
    # from the readings then stored, as after any late reading: the daily quality DAG re-rolls a day
    # whose reading count changed, and the retry writes the whole day again.
    with (
        InfluxStore(settings.influx) as store,
        InfluxStore(settings.influx) as writer,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollup-stale") as cleaner,
    ):
        store.create_database()
        stale = cleaner.submit(remove_stale_days, writer, registry, at_ns)
        for part in rollup_chunks(registry, store, [when], registry.meters):
            points = daily_points(registry, part, when)
            writer.write(points)
            totals["registers"] += len(points)
            for name in ("readings", "gaps", "resets"):
                totals[name] += int(sum(float(p.fields[name]) for p in points))
        totals["stale_removed"] = stale.result()
    return {"day": day, **totals}


def remove_stale_days(store: InfluxStore, registry: Registry, at_ns: int, batch: int = 100) -> int:
    """Delete the ``METER_DAILY`` series stamped ``at_ns`` whose tags are not those :func:`daily_points`
    gives a register of ``registry`` (enterprise, meter, register and nothing else); return how many."""
    made = {(m.enterprise, m.id, r.value) for m in registry.meters for r in m.registers}
    frame = store.query(f'SELECT "readings" FROM {METER_DAILY.q} WHERE time = {at_ns} GROUP BY *')
    tags = [c for c in frame.columns if c not in ("time", "readings")]
    stale: list[dict[str, str]] = []
    for row in frame[tags].itertuples(index=False):
        series = {tag: value for tag, value in zip(tags, row, strict=True) if isinstance(value, str) and value}
        if set(series) != {"enterprise", "meter", "register"} or (
            (series["enterprise"], series["meter"], series["register"]) not in made
        ):
            stale.append(series)
    for first in range(0, len(stale), batch):
        # A tag the series lacks is matched by = '' (InfluxQL), so only that series is deleted.
        match = " OR ".join(
            "(" + " AND ".join(f"{quote_ident(t)} = {quote_literal(s.get(t, ''))}" for t in tags) + ")"
            for s in stale[first : first + batch]
        )
        store.execute(f"DELETE FROM {METER_DAILY.q} WHERE time = {at_ns} AND ({match})")
    return len(stale)


def read_rollups(
    store: InfluxStore, registry: Registry, start: datetime, end: datetime, meters: Sequence[Meter]
) -> Days:
    """The stored ``METER_DAILY`` days in [start, end) of ``meters`` made under their current rules.

    Only the fields a day needs, grouped by meter and register (the tags once per series, not per
    row), and the rows turned into days column by column: the monthly step reads a month of 50,000
    meters' days this way (bench/monthly.py)."""
    fields = ", ".join(quote_ident(name) for name in ("quantity", "has_start", "rules_sha256", *COUNT_FIELDS))
    frame = store.query_csv(
        f"SELECT {fields} FROM {METER_DAILY.q} WHERE time >= {to_ns(start)} AND time < {to_ns(end)} "
        f'AND {meter_filter([m.id for m in meters])} GROUP BY "meter", "register"',
        group_by=("meter", "register"),
        text=("has_start", "rules_sha256"),
    )
    found: Days = defaultdict(dict)
    if frame.empty or "rules_sha256" not in frame:
        return found
    rules = {m.id: rules_sha256(m) for m in meters}
    meter_ids = [str(m) for m in frame["meter"].tolist()]
    registers = [str(r) for r in frame["register"].tolist()]
    current = [rules.get(m) == r for m, r in zip(meter_ids, frame["rules_sha256"].tolist(), strict=True)]
    days = frame["time"].dt.tz_convert(ZoneInfo(registry.park.timezone)).dt.date.tolist()
    columns = {name: frame[name].tolist() for name in ("quantity", "has_start", *COUNT_FIELDS)}
    for index in (i for i, ok in enumerate(current) if ok):
        counts = {name: int(columns[name][index]) for name in COUNT_FIELDS}
        window = WindowConsumption(
            quantity=float(columns["quantity"][index]), has_start=columns["has_start"][index] == "true", **counts
        )
        found[(meter_ids[index], registers[index])][days[index]] = window
    return found


def month_consumption(
    registry: Registry, store: InfluxStore, month: Month, meters: Sequence[Meter]
) -> tuple[dict[Key, WindowConsumption], int]:
    """Each of ``meters``' registers in ``month``, summed from its days: rolled-up days from
    ``METER_DAILY``, the others computed from raw readings read for those days only. Returns the
    month per register and how many register-days came from rollups."""
    every_day = days_in(month)
    stored = read_rollups(store, registry, month.start, month.end, meters)
    keys = [(m.id, r.value) for m in meters for r in m.registers]
    missing = {k: [d for d in every_day if d not in stored.get(k, {})] for k in keys}
    needed = sorted({d for days in missing.values() for d in days})
    raw_meters = [m for m in meters if any(missing[(m.id, r.value)] for r in m.registers)]
    computed = rollup_days(registry, store, needed, raw_meters) if needed else {}
    result = {}
    for meter in meters:
        interval_ns = meter.interval_minutes * 60 * 10**9
        for register in meter.registers:
            key = (meter.id, register.value)
            own, fresh = stored.get(key, {}), computed.get(key, {})
            days = [own[d] if d in own else fresh[d] for d in every_day]
            result[key] = combine_days(days, month.start_ns, month.end_ns, interval_ns)
    from_rollups = sum(len(d) for k, d in stored.items() if k in missing)
    return result, from_rollups


# -- late readings ----------------------------------------------------------------------------------


def _counts(store: InfluxStore, spans: Sequence[tuple[datetime, datetime]], only: str = "") -> list[dict[Key, int]]:
    """Readings per register in each (start, end] of ``spans``, in one request."""
    where = f" AND {only}" if only else ""
    frames = store.query_many(
        [
            f"SELECT COUNT(\"raw_value\") FROM {METER_REGISTER.q} WHERE time > '{rfc3339(start)}' "
            f'AND time <= \'{rfc3339(end)}\'{where} GROUP BY "meter", "register"'
            for start, end in spans
        ]
    )
    return [
        {}
        if frame.empty
        else {
            (str(m), str(r)): int(c) for m, r, c in zip(frame["meter"], frame["register"], frame["count"], strict=True)
        }
        for frame in frames
    ]


def _rolled_days(store: InfluxStore, month: Month, tz: str) -> list[date]:
    """The days of ``month`` that have ``METER_DAILY`` points (stamped at local midnight)."""
    frame = store.query(
        f'SELECT COUNT("readings") FROM {METER_DAILY.q} WHERE time >= {month.start_ns} AND time < {month.end_ns} '
        "GROUP BY time(1h) fill(none)"
    )
    if frame.empty:
        return []
    hour_ns = 3_600 * 10**9
    buckets = set(frame["time"].dt.as_unit("ns").astype("int64").tolist())
    return [d for d in days_in(month) if to_ns(day_start(d, tz)) // hour_ns * hour_ns in buckets]


def touched_days(registry: Registry, store: InfluxStore, month: Month) -> dict[Key, list[date]]:
    """Per register, the rolled-up days of ``month`` whose stored reading count differs from the
    readings stored now: one count per run of rolled-up days for every register, then per day only
    for the registers whose month differs."""
    tz = registry.park.timezone
    rolled = _rolled_days(store, month, tz)
    if not rolled:
        return {}
    sums = store.query(
        f'SELECT SUM("readings") AS "readings", COUNT("readings") AS "days" FROM {METER_DAILY.q} '
        f'WHERE time >= {month.start_ns} AND time < {month.end_ns} GROUP BY "meter", "register"'
    )
    at_rollup = {
        (str(m), str(r)): (int(s), int(n))
        for m, r, s, n in zip(sums["meter"], sums["register"], sums["readings"], sums["days"], strict=True)
    }
    now: dict[Key, int] = defaultdict(int)
    for counts in _counts(store, [(day_start(run[0], tz), day_end(run[-1], tz)) for run in _runs(rolled)]):
        for key, count in counts.items():
            now[key] += count
    suspects = sorted(
        {k[0] for k, (readings, days) in at_rollup.items() if days != len(rolled) or readings != now.get(k, 0)}
        | {k[0] for k in now if k not in at_rollup and k[0] in registry.meter_by_id}
    )
    touched: dict[Key, list[date]] = defaultdict(list)
    for first in range(0, len(suspects), CHUNK_SUSPECTS):
        chunk = [registry.meter_by_id[m] for m in suspects[first : first + CHUNK_SUSPECTS] if m in registry.meter_by_id]
        if not chunk:
            continue
        stored = read_rollups(store, registry, month.start, month.end, chunk)
        per_day = _counts(
            store, [(day_start(d, tz), day_end(d, tz)) for d in rolled], meter_filter([m.id for m in chunk])
        )
        for day, counts in zip(rolled, per_day, strict=True):
            for meter in chunk:
                for register in meter.registers:
                    key = (meter.id, register.value)
                    window = stored.get(key, {}).get(day)
                    if window is not None and window.readings != counts.get(key, 0):
                        touched[key].append(day)
    return dict(touched)


def reroll_late_days(settings: Settings, today: date | None = None) -> dict[str, int]:
    """Re-roll the days that readings stored after their rollup change, in the months the late-data
    check looks at (``quality.late_data_months``): each touched day and every rolled-up day between
    the reading before it and the reading after it, written again where its figures changed.

    Returns the registers re-rolled per day (YYYY-MM-DD → count).

    With the registry in the database, each month's touched days are re-rolled with the registry of
    that month (``pipeline.registry_source``), as the month itself was rolled up; a neighbouring day
    its readings reach in the month before is re-rolled with the same registry."""
    months = late_data_months(settings, today)
    registries = registries_of_periods(settings, [m.period for m in months])
    with InfluxStore(settings.influx) as store:
        store.create_database()
        if settings.registry_source == "file":
            return _reroll(registries[months[0].period], store, months)
        rerolled: dict[str, int] = defaultdict(int)
        for each in reversed(months):  # oldest first: a later month's pass sees what an earlier one wrote
            for day, registers in _reroll(registries[each.period], store, [each]).items():
                rerolled[day] += registers
        return dict(rerolled)


def late_data_months(settings: Settings, today: date | None = None) -> list[Month]:
    """The months the late-data checks look at: the one containing ``today`` (the park's local date)
    and the ``quality.late_data_months`` − 1 before it, newest first."""
    tz = registry_of_day(settings, today or date.today()).park.timezone
    months = [Month.containing(datetime.combine(today or date.today(), datetime.min.time(), ZoneInfo(tz)), tz)]
    while len(months) < settings.quality.late_data_months:
        months.append(months[-1].previous())
    return months


def _reroll(registry: Registry, store: InfluxStore, months: Sequence[Month]) -> dict[str, int]:
    """:func:`reroll_late_days` for ``months``, all with ``registry``."""
    tz = registry.park.timezone
    rerolled: dict[str, int] = defaultdict(int)
    touched: dict[Key, list[date]] = defaultdict(list)
    for each in months:
        for key, days in touched_days(registry, store, each).items():
            touched[key].extend(days)
    if not touched:
        return {}
    meters = [registry.meter_by_id[m] for m in sorted({k[0] for k in touched})]
    # The readings around each touched day: the rolled-up days they reach are the candidates.
    around = rollup_span_series(registry, store, touched, meters)
    candidates: dict[Key, set[date]] = defaultdict(set)
    for key, touched_of in touched.items():
        times = around.get(key, (np.array([], dtype=np.int64), None))[0]
        for day in touched_of:
            start_ns, end_ns = to_ns(day_start(day, tz)), to_ns(day_end(day, tz))
            before = times[times <= start_ns]
            after = times[times > end_ns]
            low = _local_date(int(before[-1]), tz) if len(before) else day
            high = _local_date(int(after[0]) - 1, tz) if len(after) else day
            candidates[key] |= {low + timedelta(days=i) for i in range((high - low).days + 1)}
    all_days = sorted({d for reached in candidates.values() for d in reached})
    fresh = rollup_days(registry, store, all_days, meters)
    stored = read_rollups(store, registry, day_start(all_days[0], tz), day_end(all_days[-1], tz), meters)
    changed: Days = defaultdict(dict)
    for key, reached in candidates.items():
        for day in reached:
            old, new = stored.get(key, {}).get(day), fresh.get(key, {}).get(day)
            if old is not None and new is not None and old != new:
                changed[key][day] = new
    for day in sorted({d for by_day in changed.values() for d in by_day}):
        points = daily_points(registry, {k: v for k, v in changed.items() if day in v}, day)
        store.write(points)
        rerolled[day.isoformat()] = len(points)
    return dict(rerolled)


def _local_date(at_ns: int, timezone: str) -> date:
    """The local day of an instant [ns] (floored to the second: exact at midnight and just before it)."""
    return datetime.fromtimestamp(at_ns // 10**9, ZoneInfo(timezone)).date()


def rollup_span_series(
    registry: Registry, store: InfluxStore, touched: Mapping[Key, Sequence[date]], meters: Sequence[Meter]
) -> Series:
    """The readings of ``meters`` around their touched days: for each month, its touched days' span
    with the reading before and the one after it (as the rollup reads them)."""
    tz = registry.park.timezone
    by_month: dict[str, list[date]] = defaultdict(list)
    for days in touched.values():
        for day in days:
            by_month[month_of(day, tz).period].append(day)
    series: Series = {}
    for period, days in by_month.items():
        month = Month.of(period, tz)
        for first in range(0, len(meters), CHUNK_METERS):
            found = read_span(
                store, day_start(min(days), tz), day_end(max(days), tz), month, meters[first : first + CHUNK_METERS]
            )
            for key, (times, values) in found.items():
                if key in series:
                    times = np.concatenate([series[key][0], times])
                    values = np.concatenate([series[key][1], values])
                    order = np.argsort(times, kind="stable")
                    times, values = times[order], values[order]
                series[key] = (times, values)
    return series
