"""Load profiles that look like a real park: shifts, night base load, weekends, holidays, seasons,
PV from solar geometry, gas for boilers and process heat. Pure functions of time and a seeded RNG.

All functions take ``local`` times as a pandas DatetimeIndex in the park's time zone and return
a dimensionless load factor (0-1) per timestamp; the simulator multiplies it by a meter's scale.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from park.holidays import is_workday, spring_festival_days

# Shift patterns by GB/T 4754 division: (base load at night, weekday day-shift load, how much a
# non-working day keeps of the working-day load, hours the day shifts run).
INDUSTRY_SHAPES: dict[str, tuple[float, float, float, tuple[int, int]]] = {
    "C39": (0.70, 0.90, 0.85, (8, 20)),  # electronics: fabs and clean rooms run around the clock
    "C26": (0.80, 0.88, 0.90, (8, 20)),  # chemicals: continuous processes
    "C34": (0.18, 0.85, 0.25, (8, 24)),  # general equipment: two shifts, quiet weekends
    "C38": (0.22, 0.80, 0.35, (8, 24)),  # electrical machinery: two shifts
}
DEFAULT_SHAPE = (0.25, 0.80, 0.40, (8, 20))


def _day_flags(local: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    days = pd.Index(local.date)
    unique = days.unique()
    workday = {d: is_workday(d) for d in unique}
    spring = set().union(*(spring_festival_days(y) for y in {d.year for d in unique}))
    return (np.array([workday[d] for d in days]), np.array([d in spring for d in days]))


def industrial_load(local: pd.DatetimeIndex, industry: str, rng: np.random.Generator) -> np.ndarray:
    """Load factor of an industrial consumer: shifts, night base, weekends, holidays, seasons, noise."""
    base, day_load, off_keep, (shift_start, shift_end) = INDUSTRY_SHAPES.get(industry, DEFAULT_SHAPE)
    hour = local.hour + local.minute / 60.0
    # smooth ramps of one hour into and out of the day shifts
    ramp_up = np.clip(hour - shift_start + 1.0, 0.0, 1.0)
    ramp_down = np.clip(shift_end - hour, 0.0, 1.0) if shift_end < 24 else np.ones(len(hour))
    in_shift = ramp_up * ramp_down
    working = base + (day_load - base) * in_shift
    workday, spring = _day_flags(local)
    load = np.where(workday, working, base + (working - base) * off_keep)
    load = np.where(spring, load * 0.45, load)  # most lines stop over the Spring Festival
    # cooling in summer and heating in winter, on top of the process load
    doy = local.day_of_year.to_numpy()
    season = 1.0 + 0.10 * np.cos(2 * np.pi * (doy - 200) / 365.25) ** 2
    noise = rng.normal(1.0, 0.04, len(local)).clip(0.85, 1.15)
    factor: np.ndarray = np.clip(load * season * noise, 0.02, 1.0)
    return factor


def solar_elevation_deg(utc: pd.DatetimeIndex, latitude_deg: float, longitude_deg: float) -> np.ndarray:
    """Solar elevation angle [deg] (NOAA's approximation; within about 1 deg, plenty for load shapes)."""
    doy = utc.day_of_year.to_numpy()
    hours = utc.hour.to_numpy() + utc.minute.to_numpy() / 60.0
    gamma = 2 * np.pi / 365.0 * (doy - 1 + (hours - 12) / 24)
    decl = (
        0.006918
        - 0.399912 * np.cos(gamma)
        + 0.070257 * np.sin(gamma)
        - 0.006758 * np.cos(2 * gamma)
        + 0.000907 * np.sin(2 * gamma)
        - 0.002697 * np.cos(3 * gamma)
        + 0.00148 * np.sin(3 * gamma)
    )
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * np.cos(gamma)
        - 0.032077 * np.sin(gamma)
        - 0.014615 * np.cos(2 * gamma)
        - 0.040849 * np.sin(2 * gamma)
    )
    solar_time_min = hours * 60 + eqtime + 4 * longitude_deg
    hour_angle = np.radians(solar_time_min / 4 - 180)
    lat = math.radians(latitude_deg)
    cos_zenith = np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)
    elevation: np.ndarray = np.degrees(np.arcsin(np.clip(cos_zenith, -1, 1)))
    return elevation


def pv_output(
    utc: pd.DatetimeIndex, latitude_deg: float, longitude_deg: float, timezone: str, rng: np.random.Generator
) -> np.ndarray:
    """PV output as a fraction of peak: clear-sky shape from the sun's elevation, times a daily cloud
    factor per local day of ``timezone`` (about one day in three overcast) and short-term cloud flicker;
    exactly 0 at night."""
    elevation = solar_elevation_deg(utc, latitude_deg, longitude_deg)
    clear = np.where(elevation > 0, np.sin(np.radians(np.clip(elevation, 0, 90))) ** 1.2, 0.0)
    days = pd.Index(utc.tz_convert(timezone).date)
    unique = days.unique()
    cloud_by_day = dict(
        zip(
            unique,
            np.where(
                rng.random(len(unique)) < 0.33,
                rng.uniform(0.1, 0.4, len(unique)),
                rng.uniform(0.75, 1.0, len(unique)),
            ),
            strict=True,
        )
    )
    cloud = np.array([cloud_by_day[d] for d in days])
    flicker = rng.uniform(0.85, 1.0, len(utc))
    output: np.ndarray = np.clip(0.82 * clear * cloud * flicker, 0.0, 1.0)
    return output


def gas_load(local: pd.DatetimeIndex, industry: str, rng: np.random.Generator) -> np.ndarray:
    """Gas for process heat (follows production) and space heating (Hefei heats Nov-Mar)."""
    process = industrial_load(local, industry, rng)
    doy = local.day_of_year.to_numpy()
    heating = np.clip(np.cos(2 * np.pi * (doy - 15) / 365.25), 0, None) * 0.35
    hour = local.hour.to_numpy()
    heating = heating * np.where((hour >= 6) & (hour < 22), 1.0, 0.5)
    gas: np.ndarray = np.clip(0.7 * process + heating, 0.01, 1.0)
    return gas
