"""A period booked as the sum of its days equals the period booked at once: the same register rules
(pairs across midnight apportioned by time, gaps bridged, rollovers, resets, spikes, meter
replacements), each pair's flags counted once, quantity to 1e-9 in the meter's unit."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from park.lineprotocol import to_ns
from park.registry import Meter, MeterReplacement
from scoring.registers import (
    RegisterSpec,
    WindowConsumption,
    combine_days,
    consumption_by_day,
    consumption_in_window,
    meter_days,
    meter_window,
)

Q = 900 * 10**9  # 15 minutes [ns]
H = 3_600 * 10**9
DAY = 24 * H
FLAGS = ("readings", "expected", "gaps", "estimated_intervals", "rollovers", "resets", "spikes", "apportioned")
FLAGS_ALL = (*FLAGS, "has_start", "replacements")


def close(got: float, expected: float) -> bool:
    """Within 1e-9 in the meter's unit, or 2 units in the last place where a float cannot hold 1e-9
    (registers of more than 2**22 units in the period: one ulp of 8.4e6 is already 1.9e-9)."""
    return abs(got - expected) <= max(1e-9, 2 * math.ulp(expected))


def _flags(w: WindowConsumption) -> dict[str, object]:
    return {name: getattr(w, name) for name in FLAGS_ALL}


class TestByHand:
    """Figures worked out on paper from the rules in scoring/registers.py's docstring."""

    def test_pair_across_midnight_is_apportioned_by_time(self):
        """Readings 23:30 (100) and 00:30 (160): a gap of 1 h across midnight; 30 of it in each day.
        Day 1 books the 30 min before midnight, day 2 the 30 after, and the gap (with its 3 estimated
        intervals: 4 intervals, the last one read) on day 2, where it ends."""
        spec = RegisterSpec(1.0, None, Q, None)
        times = np.array([DAY - 2 * Q, DAY + 2 * Q])
        d1, d2 = consumption_by_day(times, np.array([100.0, 160.0]), spec, [0, DAY, 2 * DAY], 0, 2 * DAY)
        assert (d1.quantity, d2.quantity) == (30.0, 30.0)
        assert (d1.gaps, d1.estimated_intervals, d2.gaps, d2.estimated_intervals) == (0, 0, 1, 3)
        assert (d1.readings, d2.readings, d1.expected) == (1, 1, 96)
        assert (d1.apportioned, d2.apportioned) == (0, 0)  # split at midnight, not at the period's edge

    def test_gap_across_the_period_end_is_booked_on_the_last_day(self):
        """A pair 23:00 → 01:00 across the period's end: the last day gets 1 h of its 2 h (50 of 100),
        the gap, its 4 estimated intervals inside the period and the apportioned pair."""
        spec = RegisterSpec(2.0, None, Q, None)
        times = np.array([DAY - 4 * Q, DAY + 4 * Q])
        (last,) = consumption_by_day(times, np.array([0.0, 50.0]), spec, [0, DAY], 0, DAY)
        assert last.quantity == 50.0
        assert (last.gaps, last.estimated_intervals, last.apportioned) == (1, 4, 1)

    def test_rollover_and_reset_on_the_day_their_pair_ends(self):
        """999,990 at 23:45 → 10 at 00:15 wraps (20 in all, 10 each day); 500 → 3 later on day 2 is a reset."""
        spec = RegisterSpec(1.0, 1_000_000.0, Q, None)
        times = np.array([DAY - Q, DAY + Q, DAY + 2 * Q, DAY + 3 * Q])
        raw = np.array([999_990.0, 10.0, 500.0, 3.0])
        d1, d2 = consumption_by_day(times, raw, spec, [0, DAY, 2 * DAY], 0, 2 * DAY)
        assert (d1.quantity, d2.quantity) == (10.0, 10.0 + 490.0)
        assert (d1.rollovers, d2.rollovers, d2.resets) == (0, 1, 1)
        assert d2.gaps == 1  # the 30-minute pair across midnight is longer than 1.5 intervals


def _series(draw: st.DrawFn, start_ns: int, end_ns: int, rollover_at: float | None) -> tuple[np.ndarray, np.ndarray]:
    """A 15-minute register from ``start_ns`` to ``end_ns`` with jitter, gaps (long ones too), resets and
    values that wrap at ``rollover_at``."""
    n = (end_ns - start_ns) // Q
    jitter = draw(st.integers(0, Q - 1))
    times = start_ns + np.arange(n) * Q + jitter
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    increments = rng.gamma(0.8, draw(st.sampled_from([0.01, 5.0, 300.0])), size=n)
    raw = draw(st.floats(0, 9_000.0)) + np.cumsum(increments)
    for _ in range(draw(st.integers(0, 2))):  # resets
        k = int(rng.integers(1, n))
        raw[k:] -= raw[k] - rng.uniform(0, 5)
    if rollover_at is not None:
        raw = np.mod(raw, rollover_at)
    keep = np.ones(n, dtype=bool)
    for _ in range(draw(st.integers(0, 6))):  # gaps, some across midnight or the period's edges
        k = int(rng.integers(0, n))
        keep[k : k + int(rng.choice([1, 3, 20, 150, 400]))] = False
    keep &= rng.uniform(size=n) > draw(st.sampled_from([0.0, 0.05, 0.5]))
    return times[keep], np.round(raw[keep], 2)


@st.composite
def periods(draw: st.DrawFn) -> tuple[np.ndarray, int, int]:
    """Day bounds of a period of 1-5 days (23, 24 or 25 h, as in a time zone with summer time)."""
    lengths = draw(st.lists(st.sampled_from([23 * H, 24 * H, 24 * H, 25 * H]), min_size=1, max_size=5))
    start = 1_700_000_000 * 10**9 + draw(st.integers(0, DAY))
    bounds = np.concatenate([[start], start + np.cumsum(lengths)]).astype(np.int64)
    return bounds, int(bounds[0]), int(bounds[-1])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), period=periods(), rollover=st.sampled_from([None, 10_000.0]), cap=st.sampled_from([None, 400.0]))
def test_days_add_up_to_the_period(data, period, rollover, cap):
    """Σ days = the period at once: every flag exactly, the quantity to 1e-9; and one day rolled up
    alone is bit for bit the same day as rolled up with its period."""
    bounds, start, end = period
    margin = data.draw(st.sampled_from([0, Q, 2 * DAY]))
    times, raw = _series(data.draw, start - margin - 3 * Q, end + margin + 3 * Q, rollover)
    spec = RegisterSpec(data.draw(st.sampled_from([1.0, 80.0])), rollover, Q, cap)
    days = consumption_by_day(times, raw, spec, bounds, start, end)
    whole = consumption_in_window(times, raw, spec, start, end)
    month = combine_days(days, start, end, Q)
    assert _flags(month) == _flags(whole)
    assert close(month.quantity, whole.quantity)
    i = data.draw(st.integers(0, len(bounds) - 2))
    (alone,) = consumption_by_day(times, raw, spec, bounds[i : i + 2], start, end)
    assert alone == days[i]
    # A day's own quantity is the window's: what a one-day window of the old rule books.
    assert close(alone.quantity, consumption_in_window(times, raw, spec, bounds[i], bounds[i + 1]).quantity)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), period=periods())
def test_meter_replacements_split_the_days_as_the_month(data, period):
    """A meter changed mid-period (and maybe right at midnight) with a new multiplier: Σ days = the month."""
    bounds, start, end = period
    times, raw = _series(data.draw, start - DAY, end + DAY, 1_000_000.0)
    if len(times) < 4:
        return
    k = data.draw(st.integers(1, len(times) - 2))
    drawn_ns = int(data.draw(st.sampled_from([times[k], bounds[len(bounds) // 2]])))
    at = datetime.fromtimestamp(drawn_ns // 10**9, UTC) + timedelta(microseconds=(drawn_ns % 10**9) // 1000)
    at_ns = to_ns(at)  # the registry's time has microseconds
    after = times > at_ns
    new_initial = 3.0
    raw = raw.copy()
    old_final = float(raw[~after][-1]) if (~after).any() else 0.0
    if after.any():
        raw[after] = np.round(new_initial + np.abs(raw[after] - raw[after][0]), 2)
    meter = Meter(
        id="M1",
        gateway="G1",
        enterprise="E1",
        carrier="grid_electricity",
        role="main",
        unit="kWh",
        multiplier=10.0,
        rollover_at=1_000_000.0,
        replacements=[
            MeterReplacement(at=at, old_final_reading=old_final, new_initial_reading=new_initial, new_multiplier=20.0)
        ],
    )
    register_days = meter_days(meter, times, raw, bounds, start, end)
    month = combine_days(register_days, start, end, Q)
    whole = meter_window(meter, times, raw, start, end)
    assert _flags(month) == _flags(whole)
    assert close(month.quantity, whole.quantity)
    assert sum(d.replacements for d in register_days) == (1 if start < to_ns(at) <= end else 0)


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_large_registers_stay_within_1e_9(scale):
    """A month of a big main meter (up to some 3.9e6 kWh): the days' correctly rounded sums keep the
    month within 1e-9 kWh of the month at once."""
    start = 1_700_000_000 * 10**9
    bounds = start + np.arange(32) * DAY
    rng = np.random.default_rng(5)
    times = np.arange(start - 3 * Q, bounds[-1] + 3 * Q, Q) + 7 * 10**9
    raw = np.round(np.cumsum(rng.gamma(2.0, 0.02 * scale, size=len(times))), 2)
    spec = RegisterSpec(1.0 if scale == 1.0 else 2.0, None, Q, None)
    keep = rng.uniform(size=len(times)) > 0.1
    days = consumption_by_day(times[keep], raw[keep], spec, bounds, int(bounds[0]), int(bounds[-1]))
    whole = consumption_in_window(times[keep], raw[keep], spec, int(bounds[0]), int(bounds[-1]))
    assert abs(combine_days(days, int(bounds[0]), int(bounds[-1]), Q).quantity - whole.quantity) <= 1e-9
