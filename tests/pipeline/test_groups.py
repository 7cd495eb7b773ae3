"""The monthly activity's fan-out: groups of whole enterprises (pure), and on a real InfluxDB, the
park computed group by group equals the park computed as one group, to 1e-9; a group run again
after it was left half written (a worker killed) writes the same points and leaves the other groups'
alone; the reduce step removes enterprises that left the registry and refuses groups that do not
cover the registry."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from park.measurements import ACTIVITY_MONTHLY, DATA_QUALITY, LATE_DATA, MONTH_COVERAGE
from park.month import Month, read_month
from park.registry import DEFAULT_TIMEZONE
from pipeline.checks import WrongInputError
from pipeline.groups import MAX_GROUPS, enterprise_groups
from pipeline.monthly import compute_activity, compute_group, finish_activity, month_groups
from simulators.history import write_registers
from simulators.run import simulate_run

TZ = ZoneInfo(DEFAULT_TIMEZONE)
PERIOD = "2026-03"
WRITTEN = (ACTIVITY_MONTHLY, DATA_QUALITY, MONTH_COVERAGE)


def _park(meters_per_enterprise: list[int]) -> SimpleNamespace:
    """What enterprise_groups reads of a registry: enterprise ids in order, and each meter's enterprise."""
    enterprises = [SimpleNamespace(id=f"E{i:04d}") for i in range(len(meters_per_enterprise))]
    meters = [
        SimpleNamespace(enterprise=e.id)
        for e, n in zip(enterprises, meters_per_enterprise, strict=True)
        for _ in range(n)
    ]
    return SimpleNamespace(enterprises=enterprises, meters=meters)


def _sizes(park: SimpleNamespace, groups: list[list[str]]) -> list[int]:
    count: dict[str, int] = {}
    for meter in park.meters:
        count[meter.enterprise] = count.get(meter.enterprise, 0) + 1
    return [sum(count.get(e, 0) for e in group) for group in groups]


def test_groups_hold_every_enterprise_once_in_order_sized_by_meters():
    park = _park([500, 700, 900, 100, 3000, 0, 400, 1200])
    groups = enterprise_groups(park, 2000)  # type: ignore[arg-type]
    assert [e for g in groups for e in g] == [e.id for e in park.enterprises]
    # Filled in order until the next enterprise would pass 2,000 meters; the 3,000-meter one alone.
    assert groups == [["E0000", "E0001"], ["E0002", "E0003"], ["E0004"], ["E0005", "E0006", "E0007"]]
    assert _sizes(park, groups) == [1200, 1000, 3000, 1600]


def test_a_large_park_maps_far_below_max_map_length():
    park = _park([100] * 500)  # 500 enterprises, 50,000 meters
    groups = enterprise_groups(park, 2000)  # type: ignore[arg-type]
    assert len(groups) == 25 and set(_sizes(park, groups)) == {2000}
    # A group size too small for the park grows until the groups fit in MAX_GROUPS (a quarter of 1024).
    tiny = enterprise_groups(park, 1)  # type: ignore[arg-type]
    assert len(tiny) <= MAX_GROUPS < 1024
    assert [e for g in tiny for e in g] == [e.id for e in park.enterprises]
    few = enterprise_groups(park, 1, max_groups=7)  # type: ignore[arg-type]
    assert 1 < len(few) <= 7 and [e for g in few for e in g] == [e.id for e in park.enterprises]
    with pytest.raises(ValueError, match="at least 1"):
        enterprise_groups(park, 0)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def march(demo_registry):
    """The demo park's March 2026 with the simulator's faults (rollover, reset, gaps, a replacement)."""
    run = simulate_run(
        demo_registry,
        datetime(2026, 2, 27, tzinfo=TZ),
        datetime(2026, 4, 2, 6, tzinfo=TZ),
        pd.Timedelta("1h"),
        5,
        {"rollover": 1, "reset": 1, "gap": 2},
    )
    return run.published


def _points(store, month: Month) -> dict[str, pd.DataFrame]:
    frames = {}
    for measurement in WRITTEN:
        frame = read_month(store, measurement, month)
        frames[measurement.name] = frame.sort_values(sorted(frame.columns)).reset_index(drop=True)
    return frames


def _assert_same(got: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, obj=name, check_exact=False, rtol=0, atol=1e-9)


@pytest.mark.services
def test_groups_equal_one_group_and_a_group_rerun_writes_the_same(settings, store, demo_registry, march):
    month = Month.of(PERIOD, DEFAULT_TIMEZONE)
    assert write_registers(store, demo_registry, march) > 0
    whole = compute_activity(settings, PERIOD)
    one_group = _points(store, month)
    assert len(one_group["month_coverage"]) == len(demo_registry.enterprises)
    assert len(one_group["activity_monthly"]) > len(demo_registry.enterprises)

    # The same month in groups of about 3 meters: several groups, each written on its own.
    small = settings.model_copy(update={"monthly": settings.monthly.model_copy(update={"group_meters": 3})})
    groups = month_groups(small, PERIOD)
    assert len(groups) >= 4
    for measurement in WRITTEN:
        store.replace_at(measurement, month.start_ns, [])
    summaries = [compute_group(small, PERIOD, group) for group in groups]
    summary = finish_activity(small, PERIOD, summaries)
    _assert_same(_points(store, month), one_group)
    same_keys = set(whole) - {"groups"}
    assert {k: summary[k] for k in same_keys} == {k: whole[k] for k in same_keys}
    assert summary["groups"] == len(groups)

    # A worker killed halfway through group 1: its activity rewritten with wrong figures and its
    # quality points gone. Its retry writes exactly the points of the untouched run; the other
    # groups' points are not touched by it.
    half = set(groups[1])
    store.write(
        ACTIVITY_MONTHLY.point(
            {"enterprise": e, "workshop": "", "source": "electricity", "origin": "metered"},
            {"quantity": -1.0},
            month.start_ns,
        )
        for e in half
    )
    store.execute(f"DELETE FROM {DATA_QUALITY.q} WHERE time = {month.start_ns} AND \"enterprise\" = '{groups[1][0]}'")
    damaged = _points(store, month)
    assert len(damaged["data_quality"]) < len(one_group["data_quality"])
    assert (damaged["activity_monthly"]["quantity"] == -1.0).any()
    other = set(groups[0])
    before_other = {n: f[f["enterprise"].isin(other)].reset_index(drop=True) for n, f in _points(store, month).items()}
    assert compute_group(small, PERIOD, groups[1]) == summaries[1]
    after = _points(store, month)
    _assert_same(after, one_group)
    _assert_same({n: f[f["enterprise"].isin(other)].reset_index(drop=True) for n, f in after.items()}, before_other)


@pytest.mark.services
def test_the_reduce_removes_departed_enterprises_and_refuses_incomplete_groups(settings, store, demo_registry, march):
    month = Month.of(PERIOD, DEFAULT_TIMEZONE)
    write_registers(store, demo_registry, march)
    small = settings.model_copy(update={"monthly": settings.monthly.model_copy(update={"group_meters": 3})})
    groups = month_groups(small, PERIOD)
    summaries = [compute_group(small, PERIOD, group) for group in groups]
    expected = _points(store, month)
    # An enterprise that left the registry since an earlier run still has that run's points.
    store.write(
        [
            ACTIVITY_MONTHLY.point(
                {"enterprise": "GONE", "workshop": "", "source": "electricity", "origin": "metered"},
                {"quantity": 5.0},
                month.start_ns,
            ),
            MONTH_COVERAGE.point({"enterprise": "GONE"}, {"status": "data", "meters": 1.0}, month.start_ns),
            LATE_DATA.point(
                {"enterprise": "E01", "meter": "M", "register": "r"}, {"late_readings": 3.0}, month.start_ns
            ),
        ]
    )

    # A group missing (its task never finished) or a group listed twice: a clear error, nothing removed.
    missing = groups[2]
    with pytest.raises(WrongInputError, match=rf"missing \[{missing[0]!r}"):
        finish_activity(small, PERIOD, summaries[:2] + summaries[3:])
    with pytest.raises(WrongInputError, match=r"twice \["):
        finish_activity(small, PERIOD, [*summaries, summaries[0]])
    with pytest.raises(WrongInputError, match=r"not in the registry \['GONE'\]"):
        finish_activity(small, PERIOD, [*summaries, {"enterprises": ["GONE"]}])
    assert "GONE" in set(read_month(store, MONTH_COVERAGE, month)["enterprise"])

    finish_activity(small, PERIOD, summaries)
    _assert_same(_points(store, month), expected)
    assert read_month(store, LATE_DATA, month).empty
    # A group that names an enterprise the registry lacks fails before touching InfluxDB.
    with pytest.raises(WrongInputError, match="not in the registry"):
        compute_group(small, PERIOD, ["GONE"])
