"""Load shapes a park operator would recognise, and determinism."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from park.registry import DEFAULT_TIMEZONE
from simulators.park import simulate
from simulators.profiles import industrial_load, pv_output, solar_elevation_deg

TZ = "Asia/Shanghai"


def local_range(start: str, end: str, freq: str = "15min") -> pd.DatetimeIndex:
    return pd.date_range(start, end, freq=freq, tz=TZ, inclusive="left")


class TestIndustrialLoad:
    def test_weekday_weekend(self):
        """Two-shift machinery runs far lower at weekends; a fab barely changes."""
        times = local_range("2026-03-09", "2026-03-23")  # two ordinary weeks
        day = (times.hour >= 9) & (times.hour < 17)
        weekend = times.day_of_week >= 5
        for industry, low, high in (("C34", 2.0, 5.0), ("C39", 0.95, 1.2)):
            load = industrial_load(times, industry, np.random.default_rng(1))
            ratio = load[day & ~weekend].mean() / load[day & weekend].mean()
            assert low < ratio < high, (industry, ratio)

    def test_night_base_load(self):
        """At 02:00-04:00 on working days machinery draws its base load, about a fifth of the day load."""
        times = local_range("2026-03-09", "2026-03-14")
        load = industrial_load(times, "C34", np.random.default_rng(2))
        night = load[(times.hour >= 2) & (times.hour < 4)].mean()
        day = load[(times.hour >= 10) & (times.hour < 16)].mean()
        assert 0.15 < night / day < 0.35

    def test_spring_festival_dip(self):
        """The 2026 Spring Festival holiday runs under 60 % of the two weeks before it."""
        times = local_range("2026-02-01", "2026-02-24")
        load = pd.Series(industrial_load(times, "C39", np.random.default_rng(3)), index=times)
        festival = load["2026-02-15":"2026-02-23"].mean()
        before = load["2026-02-01":"2026-02-13"].mean()
        assert festival < 0.6 * before


class TestPv:
    def test_zero_at_night_peak_near_noon(self):
        """PV is exactly 0 when the sun is below the horizon and peaks around solar noon (~12:10 in Hefei)."""
        times = local_range("2026-06-01", "2026-06-15").tz_convert("UTC")
        output = pv_output(times, 31.82, 117.13, DEFAULT_TIMEZONE, np.random.default_rng(4))
        elevation = solar_elevation_deg(times, 31.82, 117.13)
        assert (output[elevation <= 0] == 0).all() and output.max() > 0.5
        local = times.tz_convert(TZ)
        by_hour = pd.Series(output, index=local.hour + local.minute / 60).groupby(level=0).mean()
        assert 11.5 <= by_hour.idxmax() <= 13.0

    def test_solar_noon_elevation(self):
        """At the June solstice the noon sun over 31.82° N stands at 90 - 31.82 + 23.44 ≈ 81.6°."""
        noon = pd.DatetimeIndex([pd.Timestamp("2026-06-21 04:10", tz="UTC")])
        assert solar_elevation_deg(noon, 31.82, 117.13)[0] == pytest.approx(81.6, abs=0.6)


def test_deterministic_with_seed(demo_registry):
    """The same seed gives the same registers to the last digit; another seed does not."""
    tz = ZoneInfo(TZ)
    args = (demo_registry, datetime(2026, 5, 1, tzinfo=tz), datetime(2026, 5, 3, tzinfo=tz), pd.Timedelta("15min"))
    a, b, c = simulate(*args, seed=5), simulate(*args, seed=5), simulate(*args, seed=6)
    pd.testing.assert_frame_equal(a.registers, b.registers)
    assert not a.registers.equals(c.registers)


def test_sub_meters_below_main(demo_registry):
    """Workshop sub-meters never add up to more than their enterprise's main meter plus its PV."""
    tz = ZoneInfo(TZ)
    park = simulate(
        demo_registry, datetime(2026, 7, 1, tzinfo=tz), datetime(2026, 7, 8, tzinfo=tz), pd.Timedelta("15min"), seed=1
    )
    used = park.consumption.sum()
    for enterprise in demo_registry.enterprises:
        meters = [m for m in demo_registry.meters if m.enterprise == enterprise.id]
        subs = sum(used[(m.id, "active_energy_import")] for m in meters if m.role.value == "sub")
        main = sum(
            used[(m.id, "active_energy_import")]
            for m in meters
            if m.role.value == "main" and m.carrier.value == "grid_electricity"
        )
        pv = sum(used[(m.id, "active_energy_export")] for m in meters if m.carrier.value == "pv_generation")
        assert subs < main + pv
