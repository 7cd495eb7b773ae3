"""Registers → consumption: rollover, reset, gaps, month boundaries, spikes; real OPSD registers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from scoring.registers import RegisterSpec, consumption_in_window
from tests.conftest import DATA

H = 3_600 * 10**9
Q = 900 * 10**9  # 15 minutes
SPEC = RegisterSpec(multiplier=1.0, rollover_at=1_000_000.0, interval_ns=Q, max_per_hour=None)


def window(raw, times=None, spec=SPEC, start=0, end=None):
    times = np.arange(len(raw)) * Q if times is None else np.asarray(times)
    return consumption_in_window(
        times, np.asarray(raw, dtype=float), spec, start, end if end is not None else times[-1]
    )


class TestRules:
    def test_plain_difference_times_multiplier(self):
        """(110 - 100) x 80 = 800."""
        assert window([100.0, 104.0, 110.0], spec=RegisterSpec(80.0, None, Q, None)).quantity == pytest.approx(800.0)

    def test_rollover(self):
        """999,990 → 5 wraps at 1,000,000: 15 advanced, flagged once."""
        w = window([999_980.0, 999_990.0, 5.0])
        assert w.quantity == pytest.approx(25.0)
        assert w.rollovers == 1 and w.resets == 0

    def test_rollover_needs_plausible_advance(self):
        """A drop from 600,000 to 3 is a reset, not a wrap of 400,003, with or without a physical maximum."""
        for spec in (SPEC, RegisterSpec(1.0, 1_000_000.0, Q, max_per_hour=1_000.0)):
            w = window([600_000.0, 3.0, 8.0], spec=spec)
            assert (w.rollovers, w.resets) == (0, 1)
            assert w.quantity == pytest.approx(5.0)
        bounded = RegisterSpec(1.0, 1_000_000.0, Q, max_per_hour=1_000.0)
        assert window([999_900.0, 50.0], spec=bounded).rollovers == 1  # 150 in 15 min <= 1.2 x 250

    def test_reset_is_flagged_not_booked(self):
        """A drop that is no rollover books nothing for that pair and is counted as a reset."""
        w = window([500.0, 510.0, 3.0, 8.0])
        assert w.quantity == pytest.approx(15.0)  # 10 before the drop, 5 after
        assert w.resets == 1

    def test_gap_conserves_energy(self):
        """Readings missing for an hour: the registers around it carry the energy; 3 intervals estimated."""
        times = np.array([0, 1, 5, 6]) * Q
        w = window([0.0, 1.0, 5.0, 6.0], times=times)
        assert w.quantity == pytest.approx(6.0)
        assert (w.gaps, w.estimated_intervals) == (1, 3)
        assert w.readings == 3 and w.expected == 6

    def test_boundary_apportioned_by_time(self):
        """A pair straddling the window start counts only its share inside the window."""
        w = window(
            [0.0, 10.0, 20.0],
            times=[0, H, 2 * H],
            spec=RegisterSpec(1.0, None, H, None),
            start=H // 2,
            end=2 * H,
        )
        assert w.quantity == pytest.approx(15.0)
        assert w.apportioned == 1

    def test_no_start_reading_invents_nothing(self):
        """A meter first seen inside the window counts from its first reading only."""
        w = window([50.0, 60.0], times=[2 * Q, 3 * Q], start=0, end=4 * Q)
        assert w.quantity == pytest.approx(10.0)
        assert not w.has_start

    def test_spike_flagged_but_kept(self):
        """More than 1.2 x the physical maximum per hour is flagged; the energy stays (flag, don't delete)."""
        w = window([0.0, 10.0, 100.0], spec=RegisterSpec(1.0, None, Q, max_per_hour=100.0))
        assert w.spikes == 1  # 90 in 15 min = 360 per hour > 120
        assert w.quantity == pytest.approx(100.0)


@given(
    increments=st.lists(st.floats(0, 1e4), min_size=2, max_size=60),
    cut=st.floats(0.0, 1.0),
    jitter=st.integers(0, Q - 1),
)
def test_split_windows_add_up(increments, cut, jitter):
    """Consumption of (a, m] plus (m, b] equals (a, b] for any cut m: apportioning conserves energy."""
    raw = np.concatenate([[0.0], np.cumsum(increments)])
    times = np.arange(len(raw)) * Q + jitter
    start, end = int(times[0]), int(times[-1])
    middle = start + int(cut * (end - start))
    spec = RegisterSpec(1.0, None, Q, None)
    whole = consumption_in_window(times, raw, spec, start, end).quantity
    parts = (
        consumption_in_window(times, raw, spec, start, middle).quantity
        + consumption_in_window(times, raw, spec, middle, end).quantity
    )
    assert_allclose(parts, whole, rtol=1e-9, atol=1e-6)


@pytest.fixture(scope="module")
def opsd():
    frame = pd.read_csv(DATA / "opsd_household_data_60min_2016-03_boundaries.csv")
    frame["t"] = pd.to_datetime(frame["utc_timestamp"], utc=True)
    return frame


class TestOpsdRegisters:
    """OPSD household_data (CC BY 4.0): cumulative kWh of German industrial sites, March 2016."""

    def _march(self, opsd, column, tz):
        start = pd.Timestamp("2016-03-01", tz=tz).value
        end = pd.Timestamp("2016-04-01", tz=tz).value
        rows = opsd[opsd[column].notna()]
        return consumption_in_window(
            rows["t"].dt.as_unit("ns").astype("int64").to_numpy(),
            rows[column].to_numpy(float),
            RegisterSpec(1.0, None, H, None),
            start,
            end,
        )

    def test_local_and_utc_month_differ(self, opsd):
        """industrial3: 57,988.000 kWh in the Berlin month, 58,047.500 kWh in the UTC month (README beside the data)."""
        column = "DE_KN_industrial3_grid_import"
        assert self._march(opsd, column, "Europe/Berlin").quantity == pytest.approx(57_988.000, abs=1e-6)
        assert self._march(opsd, column, "UTC").quantity == pytest.approx(58_047.500, abs=1e-6)

    def test_meter_without_start_reading(self, opsd):
        """industrial3_ev has no reading at the start of March: no March consumption is invented."""
        w = self._march(opsd, "DE_KN_industrial3_ev", "Europe/Berlin")
        assert w.quantity == 0.0 and not w.has_start
