"""A simulated park: every registry meter's interval consumption and cumulative register, and the
exact ground truth of what was simulated.

Energy balance per enterprise (electricity, kWh per interval):

    load       = Σ workshop sub-meter loads x 1.15 (unmetered common areas, lighting, losses)
    pv         = PV generation (meters of carrier pv_generation)
    grid draw  = max(load - pv, 0)   → the main meter's import register
    export     = max(pv - load, 0)   → the main meter's export register

Registers are what the meter shows: the cumulative energy divided by the multiplier, from a seeded
starting value, wrapped at the registry's ``rollover_at``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from park.registry import Carrier, Meter, MeterRole, Register, Registry
from simulators.profiles import gas_load, industrial_load, pv_output

COMMON_LOAD_SHARE = 1.15
# Typical utilisation of a meter's physical maximum at full production.
LOAD_SCALE = 0.75


@dataclass(frozen=True)
class SimulatedPark:
    """Timestamps ``times`` (UTC, readings at each) and, per (meter, register) column,
    ``consumption`` in the interval ending at each timestamp (multiplier applied; the first row is
    0: it is the starting reading) and the ``registers`` a meter shows."""

    registry: Registry
    times: pd.DatetimeIndex
    consumption: pd.DataFrame
    registers: pd.DataFrame

    def readings(self) -> pd.DataFrame:
        """Long form: meter, register, time, raw_value."""
        long = self.registers.stack(level=[0, 1], future_stack=True).rename("raw_value").reset_index()
        long.columns = ["time", "meter", "register", "raw_value"]
        return long.sort_values(["time", "meter", "register"], ignore_index=True)


def _interval_times(start: datetime, end: datetime, interval: pd.Timedelta) -> pd.DatetimeIndex:
    return pd.date_range(pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"), freq=interval)


def simulate(
    registry: Registry,
    start: datetime,
    end: datetime,
    interval: pd.Timedelta,
    seed: int = 0,
    replays: Mapping[str, np.ndarray] | None = None,
) -> SimulatedPark:
    """Simulate readings at ``start``, ``start + interval``, ... up to and including ``end``.

    ``replays`` gives a meter's consumption per interval outright (e.g. a real plant's file, see
    :mod:`simulators.replay`), in place of its profile.
    """
    replays = replays or {}
    times = _interval_times(start, end, interval)
    local = times.tz_convert(registry.park.timezone)
    hours = interval / pd.Timedelta(hours=1)
    rng = np.random.default_rng(seed)
    columns: dict[tuple[str, str], np.ndarray] = {}

    for enterprise in registry.enterprises:
        meters = [m for m in registry.meters if m.enterprise == enterprise.id]
        sub_total = np.zeros(len(times))
        for meter in meters:
            if meter.carrier is Carrier.GRID_ELECTRICITY and meter.role is MeterRole.SUB:
                kwh = _scale(meter) * hours * industrial_load(local, enterprise.industry, rng)
                kwh = replays.get(meter.id, kwh)
                columns[(meter.id, Register.ACTIVE_ENERGY_IMPORT)] = kwh
                sub_total += kwh
        pv_total = np.zeros(len(times))
        for meter in meters:
            if meter.carrier is Carrier.PV_GENERATION:
                park = registry.park
                output = pv_output(times, park.latitude_deg, park.longitude_deg, park.timezone, rng)
                kwh = (meter.max_per_hour or 0.0) / 1.05 * hours * output
                columns[(meter.id, Register.ACTIVE_ENERGY_EXPORT)] = kwh
                pv_total += kwh
        load = sub_total * COMMON_LOAD_SHARE
        for meter in meters:
            if meter.carrier is Carrier.GRID_ELECTRICITY and meter.role is MeterRole.MAIN:
                columns[(meter.id, Register.ACTIVE_ENERGY_IMPORT)] = replays.get(
                    meter.id, np.maximum(load - pv_total, 0.0)
                )
                if Register.ACTIVE_ENERGY_EXPORT in meter.registers:
                    columns[(meter.id, Register.ACTIVE_ENERGY_EXPORT)] = np.maximum(pv_total - load, 0.0)
            elif meter.carrier is Carrier.NATURAL_GAS:
                columns[(meter.id, Register.GAS_VOLUME)] = (
                    _scale(meter) * hours * gas_load(local, enterprise.industry, rng)
                )
            elif meter.carrier is Carrier.HEAT:
                columns[(meter.id, Register.HEAT_ENERGY)] = (
                    _scale(meter) * hours * gas_load(local, enterprise.industry, rng)
                )

    consumption = pd.DataFrame(columns, index=times)
    consumption.columns = pd.MultiIndex.from_tuples(
        [(m, str(r)) for m, r in consumption.columns], names=["meter", "register"]
    )
    consumption.iloc[0] = 0.0  # the first timestamp is the starting reading
    registers = _registers(registry, consumption, rng)
    return SimulatedPark(registry, times, consumption, registers)


def _scale(meter: Meter) -> float:
    return (meter.max_per_hour or 100.0) * LOAD_SCALE


def _registers(registry: Registry, consumption: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    registers = {}
    for meter_id, register in consumption.columns:
        meter = registry.meter_by_id[meter_id]
        modulus = meter.rollover_at or 1e12
        start_raw = float(rng.uniform(0.05, 0.6)) * min(modulus, 1e6)
        cumulative = start_raw + np.cumsum(consumption[(meter_id, register)].to_numpy()) / meter.multiplier
        # A register shows two decimals; rounding happens in the meter, the truth follows it.
        registers[(meter_id, register)] = np.round(np.mod(cumulative, modulus), 2)
    frame = pd.DataFrame(registers, index=consumption.index)
    frame.columns = consumption.columns
    return frame


def truth_from_registers(park: SimulatedPark) -> pd.DataFrame:
    """Interval consumption as the registers show it (after the meter's two-decimal rounding):
    Δregister x multiplier, with wrap-around. This is the exact truth a pipeline can recover."""
    out = {}
    for meter_id, register in park.registers.columns:
        meter = park.registry.meter_by_id[meter_id]
        raw = park.registers[(meter_id, register)].to_numpy()
        delta = np.diff(raw, prepend=raw[0])
        if meter.rollover_at:
            delta = np.where(delta < 0, delta + meter.rollover_at, delta)
        out[(meter_id, register)] = delta * meter.multiplier
    frame = pd.DataFrame(out, index=park.registers.index)
    frame.columns = park.registers.columns
    return frame
