"""Daily rollups on a real InfluxDB: the month summed from ``meter_daily`` equals the month from raw
readings (the rule of :func:`scoring.registers.meter_window` over the month) to 1e-9 per meter
register, on the simulator's faulted March (rollover, reset, meter replacement, gaps across midnight
and across the month's end, late readings) and on the UCI steel plant's 2018 replay; and late
readings re-roll exactly the days whose figures they change."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from park.lineprotocol import Point
from park.measurements import METER_DAILY
from park.month import Month
from park.registry import DEFAULT_TIMEZONE, Registry, parse_registry
from park.store import InfluxStore
from pipeline.daily import compute_day_rollup, days_in, read_rollups, reroll_late_days, rollup_days
from pipeline.monthly import meter_consumption, month_consumption_counted, read_registers
from scoring.registers import WindowConsumption, meter_window
from simulators.history import write_registers
from simulators.run import simulate_run
from simulators.truth import registry_with_events
from tests.e2e.test_steel_through_mqtt import REGISTRY as STEEL_REGISTRY

pytestmark = pytest.mark.services

TZ = ZoneInfo(DEFAULT_TIMEZONE)
FAULTS = {"rollover": 1, "replacement": 1, "reset": 1, "gap": 3}
NOW = datetime(2026, 11, 29, tzinfo=TZ)


def from_raw(store: InfluxStore, registry: Registry, month: Month) -> dict[tuple[str, str], WindowConsumption]:
    """The month as the monthly step computed it before rollups: every raw reading of the month and
    the readings around it, one window per register."""
    series = read_registers(store, month)
    empty = (np.array([], dtype=np.int64), np.array([], dtype=float))
    return {
        (m.id, r.value): meter_window(m, *series.get((m.id, r.value), empty), month.start_ns, month.end_ns)
        for m in registry.meters
        for r in m.registers
    }


def assert_same_month(got, expected) -> None:
    assert got.keys() == expected.keys()
    worst = max(abs(got[k].quantity - expected[k].quantity) for k in expected)
    assert worst <= 1e-9, worst
    for key in expected:
        assert asdict(got[key]) | {"quantity": 0} == asdict(expected[key]) | {"quantity": 0}, key


def roll_up(settings, days) -> None:
    for day in days:
        compute_day_rollup(settings, day.isoformat(), now=NOW)


@pytest.fixture(scope="module")
def faulted(demo_registry):
    """March 2026 ± 2 days with the simulator's faults (seed 11), plus gaps placed across a midnight and
    across the month's end, and one gateway's readings of 9-10 March held back (late)."""
    run = simulate_run(
        demo_registry,
        datetime(2026, 2, 27, tzinfo=TZ),
        datetime(2026, 4, 2, 6, tzinfo=TZ),
        pd.Timedelta("15min"),
        11,
        FAULTS,
    )
    registry = registry_with_events(run.park.registry, run.registry_events)
    published = run.published.copy()
    local = published.index.tz_convert(TZ)
    columns = list(published.columns)
    published.loc[(local > "2026-03-14 22:50") & (local < "2026-03-15 03:10"), columns[3]] = np.nan
    published.loc[(local > "2026-03-31 21:40") & (local < "2026-04-01 04:20"), columns[5]] = np.nan
    published.loc[(local > "2026-03-20 23:00") & (local < "2026-03-23 01:00"), columns[7]] = np.nan  # two days silent
    late_gateway = registry.meters[10].gateway
    late_columns = [c for c in columns if registry.meter_by_id[c[0]].gateway == late_gateway]
    held = (local >= "2026-03-09 20:07") & (local < "2026-03-10 02:00")
    late = published.loc[held, late_columns].copy()
    published.loc[held, late_columns] = np.nan
    return registry, published, late, run


def test_faulted_month_from_rollups_equals_raw(settings, store, tmp_path, faulted):
    import yaml

    registry, published, late, _run = faulted
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(registry.model_dump(mode="json"), allow_unicode=True))
    settings = settings.model_copy(update={"registry": path})
    month = Month.of("2026-03", DEFAULT_TIMEZONE)
    assert write_registers(store, registry, published) > 0
    assert any(m.replacements for m in registry.meters)

    # Without a single rollup the monthly step reads raw: the same as the old whole-month rule.
    raw_only, rolled = month_consumption_counted(registry, store, month)
    assert rolled == 0
    assert_same_month(raw_only, from_raw(store, registry, month))

    # Every day rolled up, one by one as the daily DAG does; the month is then summed from them.
    roll_up(settings, days_in(month))
    stored = store.query(f'SELECT COUNT("quantity") FROM {METER_DAILY.q}')["count"].iloc[0]
    assert stored == 31 * sum(len(m.registers) for m in registry.meters)
    from_days, rolled = month_consumption_counted(registry, store, month)
    assert rolled == stored
    assert from_days == raw_only  # bit for bit
    quality = dict(from_days)
    assert sum(w.rollovers for w in quality.values()) >= 1 and sum(w.resets for w in quality.values()) >= 1
    assert sum(w.replacements for w in quality.values()) == 1
    assert sum(w.apportioned for w in quality.values()) > 0  # the gap across the month's end

    # Late readings: 9-10 March of one gateway arrive. Which days do they change? Recompute every
    # rolled-up day from raw and compare with what is stored, independently of the re-roll's search.
    assert write_registers(store, registry, late) == int(late.notna().to_numpy().sum())
    meters = registry.meters
    before = read_rollups(store, registry, month.start, month.end, meters)
    after = rollup_days(registry, store, days_in(month), meters)
    changed = {(k, d) for k in after for d in after[k] if after[k][d] != before[k][d]}
    assert {d for _, d in changed} >= {date(2026, 3, 9), date(2026, 3, 10)}
    late_meters = {c[0] for c in late.columns}
    assert {k[0] for k, _ in changed} == late_meters
    rerolled = reroll_late_days(settings, date(2026, 4, 1))
    expected_days: dict[str, int] = {}
    for _, day in changed:
        expected_days[day.isoformat()] = expected_days.get(day.isoformat(), 0) + 1
    assert rerolled == expected_days
    assert reroll_late_days(settings, date(2026, 4, 1)) == {}  # nothing left to do

    # The month from the re-rolled days equals the month from raw readings, late ones included.
    assert_same_month(meter_consumption(registry, store, month), from_raw(store, registry, month))

    # Days not rolled up (the daily DAG installed late, or a day missed) are read raw: same figures.
    store.execute(
        f"DELETE FROM {METER_DAILY.q} WHERE time >= {month.start_ns} AND time < {month.start_ns + 10 * 86_400 * 10**9}"
    )
    store.execute(f"DELETE FROM {METER_DAILY.q} WHERE time = {int(pd.Timestamp('2026-03-31', tz=TZ).value)}")
    partial, rolled = month_consumption_counted(registry, store, month)
    assert rolled == 20 * sum(len(m.registers) for m in registry.meters)
    assert partial == meter_consumption(registry, store, month)
    assert_same_month(partial, from_raw(store, registry, month))


def test_steel_2018_from_rollups_equals_raw_and_the_file(settings, store, tmp_path, steel):
    """The UCI steel plant's 2018 through daily rollups: each month equals the month from raw readings
    to 1e-9 kWh and the file's Usage_kWh to 1e-6 (the register wraps once in the year)."""
    import yaml

    registry = parse_registry(STEEL_REGISTRY)
    path = tmp_path / "steel.yaml"
    path.write_text(yaml.safe_dump(STEEL_REGISTRY))
    settings = settings.model_copy(update={"registry": path})
    run = simulate_run(
        registry,
        datetime(2018, 1, 1, tzinfo=TZ),
        datetime(2019, 1, 1, tzinfo=TZ),
        pd.Timedelta("15min"),
        3,
        {},
        {"STEEL-M-GRID": steel},
    )
    assert write_registers(store, registry, run.published) == 35_041
    expected = steel.groupby((steel["end"] - pd.Timedelta(minutes=15)).dt.strftime("%Y-%m"))["energy_kwh"].sum()
    rollovers = 0
    for period in expected.index:
        month = Month.of(period, DEFAULT_TIMEZONE)
        roll_up(settings, days_in(month))
        got, rolled = month_consumption_counted(registry, store, month)
        assert rolled == len(days_in(month))
        assert_same_month(got, from_raw(store, registry, month))
        quantity = got[("STEEL-M-GRID", "active_energy_import")].quantity
        assert abs(quantity - expected[period]) <= 1e-6
        rollovers += got[("STEEL-M-GRID", "active_energy_import")].rollovers
    assert rollovers == 1


def test_a_day_not_over_is_refused(settings):
    from pipeline.checks import WrongInputError

    today = datetime.now(TZ).date()
    with pytest.raises(WrongInputError, match="has not ended yet"):
        compute_day_rollup(settings, today.isoformat())


def test_rolling_a_day_again_replaces_exactly_its_points(settings, store, tmp_path, demo_registry):
    """A day rolled up again after the registry changed: every register's point is the new one, the
    points the registry no longer makes (a meter removed, a meter moved to another enterprise, series
    with odd tags written by hand) are deleted, whatever their tag values, and other days stay."""
    import yaml

    run = simulate_run(
        demo_registry,
        datetime(2026, 3, 9, 22, tzinfo=TZ),
        datetime(2026, 3, 12, 2, tzinfo=TZ),
        pd.Timedelta("15min"),
        5,
        {},
    )
    assert write_registers(store, demo_registry, run.published) > 0
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(demo_registry.model_dump(mode="json"), allow_unicode=True))
    settings = settings.model_copy(update={"registry": path})
    roll_up(settings, [date(2026, 3, 10), date(2026, 3, 11)])
    day_ns = int(pd.Timestamp("2026-03-10", tz=TZ).value)
    odd = [
        {"enterprise": "E0'1", "meter": 'M "x" \\ y', "register": "active_energy_import"},
        {"enterprise": "E01", "meter": "M,=1 a", "register": "r=1"},
        {"enterprise": "E01", "meter": "E01-M-GRID", "register": "active_energy_import", "source": "old"},
    ]
    store.write([Point(METER_DAILY.name, tags, {"quantity": 1.0, "readings": 1.0}, day_ns) for tags in odd])

    data = demo_registry.model_dump(mode="json")
    data["meters"] = [m for m in data["meters"] if m["id"] != "E01-S-PKG"]
    moved = next(m for m in data["meters"] if m["id"] == "E01-S-UT")
    moved.update(enterprise="E02", gateway="gw-e02-1", workshop="E02-WS-ARR")
    changed = parse_registry(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True))

    summary = compute_day_rollup(settings, "2026-03-10", now=NOW)
    assert summary["stale_removed"] == 2 + len(odd)  # E01-S-PKG, E01-S-UT under E01, the odd three

    def stored(at_ns: int) -> set[tuple[str, ...]]:
        frame = store.query(f'SELECT "quantity" FROM {METER_DAILY.q} WHERE time = {at_ns} GROUP BY *')
        tags = sorted(c for c in frame.columns if c not in ("time", "quantity"))
        return {tuple(f"{t}={row[t]}" for t in tags if isinstance(row[t], str)) for _, row in frame.iterrows()}

    made = {
        (f"enterprise={m.enterprise}", f"meter={m.id}", f"register={r.value}")
        for m in changed.meters
        for r in m.registers
    }
    assert stored(day_ns) == made
    before = {
        (f"enterprise={m.enterprise}", f"meter={m.id}", f"register={r.value}")
        for m in demo_registry.meters
        for r in m.registers
    }
    assert stored(int(pd.Timestamp("2026-03-11", tz=TZ).value)) == before  # the next day untouched
    day = date(2026, 3, 10)
    start, end = datetime(2026, 3, 10, tzinfo=TZ), datetime(2026, 3, 11, tzinfo=TZ)
    fresh = rollup_days(changed, store, [day], changed.meters)
    assert read_rollups(store, changed, start, end, changed.meters) == {k: {day: v[day]} for k, v in fresh.items()}
