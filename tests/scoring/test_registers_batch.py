"""Many registers' days in one pass (the rollup's chunks) are bit for bit each register's days alone."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from park.registry import Meter, MeterReplacement
from scoring.registers import RegisterSpec, consumption_by_day, registers_by_day, rules_sha256
from tests.scoring.test_register_days import DAY, Q, _series, periods


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), period=periods(), n_registers=st.integers(1, 6))
def test_batch_equals_one_register_at_a_time(data, period, n_registers):
    """Registers with different multipliers, rollovers, maxima and intervals, some empty or with one
    reading, through registers_by_day: every day of every register equal (==, quantity included) to
    consumption_by_day's for that register alone."""
    bounds, start, end = period
    series, specs = [], []
    for _ in range(n_registers):
        rollover = data.draw(st.sampled_from([None, 10_000.0]))
        margin = data.draw(st.sampled_from([0, Q, 2 * DAY]))
        times, raw = _series(data.draw, start - margin - 3 * Q, end + margin + 3 * Q, rollover)
        keep = data.draw(st.sampled_from([None, 0, 1]))  # all, none or a single reading
        if keep is not None:
            times, raw = times[:keep], raw[:keep]
        series.append((times, raw))
        specs.append(
            RegisterSpec(
                data.draw(st.sampled_from([1.0, 80.0, 0.3])),
                rollover,
                data.draw(st.sampled_from([Q, 5 * 60 * 10**9])),
                data.draw(st.sampled_from([None, 400.0, 2.5])),
            )
        )
    batch = registers_by_day(series, specs, bounds, start, end)
    alone = [consumption_by_day(t, r, spec, bounds, start, end) for (t, r), spec in zip(series, specs, strict=True)]
    assert batch == alone


def test_no_registers():
    """An empty chunk has no days."""
    assert registers_by_day([], [], np.array([0, DAY]), 0, DAY) == []


def test_rollover_reset_and_spike_by_hand():
    """Two registers side by side keep their own rules: A (rollover at 1,000,000) wraps 999,990 → 10
    (20 kWh, half of it before the period's end; the 30-minute pair ends after it, so the day books its
    rollover, its gap and its apportioning); B (no rollover, 10 kWh/h at most) drops 500 → 3 (a reset,
    nothing booked) and then jumps by 100 kWh in 15 minutes (a spike, booked: 100 x 2)."""
    a = (np.array([DAY - Q, DAY + Q]), np.array([999_990.0, 10.0]))
    b = (np.array([Q, 2 * Q, 3 * Q]), np.array([500.0, 3.0, 103.0]))
    (a1,), (b1,) = registers_by_day(
        [a, b], [RegisterSpec(1.0, 1_000_000.0, Q, None), RegisterSpec(2.0, None, Q, 10.0)], [0, DAY], 0, DAY
    )
    assert (a1.quantity, a1.rollovers, a1.resets, a1.gaps, a1.apportioned) == (10.0, 1, 0, 1, 1)
    assert (b1.quantity, b1.resets, b1.spikes, b1.readings) == (200.0, 1, 1, 3)


def test_rules_fingerprint_is_the_sha256_of_the_rules_json():
    """rules_sha256 (hashed once per rule set) is the sha256 of the meter's rules as sorted JSON, as the
    stored rollups were fingerprinted: a replacement's instant in ns, its readings and multiplier."""
    at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    replacement = MeterReplacement(at=at, old_final_reading=5.0, new_initial_reading=0.5, new_multiplier=None)
    meter = Meter(
        id="M1",
        gateway="G1",
        enterprise="E1",
        carrier="grid_electricity",
        role="main",
        unit="kWh",
        multiplier=40.0,
        rollover_at=1e6,
        max_per_hour=50.0,
        replacements=[replacement],
    )
    text = (
        '{"interval_minutes": 15, "max_per_hour": 50.0, "multiplier": 40.0, '
        f'"replacements": [[{int(at.timestamp()) * 10**9}, 5.0, 0.5, null]], "rollover_at": 1000000.0}}'
    )
    expected = hashlib.sha256(text.encode()).hexdigest()
    assert rules_sha256(meter) == rules_sha256(meter) == expected
    assert rules_sha256(meter.model_copy(update={"multiplier": 20.0})) != expected
