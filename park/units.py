"""Unit conversion for activity data: the one place where kWh, MWh, Nm3, 10^4 Nm3, m3, t and GJ meet.

Each unit belongs to one dimension and has a factor to that dimension's base unit:

========================  =========  =====================================================
dimension                 base unit  units
========================  =========  =====================================================
electric energy           kWh        Wh, kWh, 10^4 kWh, MWh, GWh
gas volume (standard)     Nm3        Nm3, 10^4 Nm3
gas volume (as metered)   m3         m3 — becomes Nm3 only with an explicit correction factor
mass                      t          kg, t
heat                      GJ         MJ, GJ
========================  =========  =====================================================

Units are matched case-insensitively, with the spellings of Chinese bills and statistics forms:
度 and 千瓦时 are kWh, 万千瓦时 is 10^4 kWh, 兆瓦时 MWh; 吨 t, 千克 and 公斤 kg; 吉焦 GJ, 兆焦 MJ.

A gas meter's m3 is at the meter's pressure and temperature; turning it into Nm3 needs the
P/T correction (docs: metering rules §5), so ``m3`` never converts silently. A Chinese gas bill's
立方米 (方) and 万立方米 (万方) are billed volumes, which suppliers state at standard reference
conditions: they are read as Nm3 and 10^4 Nm3 (the unit of the NDRC guidelines' default factors).

Examples
--------
>>> convert(1500.0, "kWh", "MWh")
1.5
>>> convert(21_000.0, "Nm3", "10^4 Nm3")
2.1
>>> [normalize_unit(u) for u in ("度", "万千瓦时", "KWh", "Mwh", "立方米", "万立方米", "吨", "吉焦")]
['kWh', '10^4 kWh', 'kWh', 'MWh', 'Nm3', '10^4 Nm3', 't', 'GJ']
"""

from __future__ import annotations

import math
from enum import StrEnum
from functools import lru_cache


class Dimension(StrEnum):
    ELECTRIC_ENERGY = "electric energy"
    GAS_VOLUME = "gas volume"
    GAS_VOLUME_METERED = "gas volume as metered"
    MASS = "mass"
    HEAT = "heat"


# unit -> (dimension, factor to the dimension's base unit)
_UNITS: dict[str, tuple[Dimension, float]] = {
    "Wh": (Dimension.ELECTRIC_ENERGY, 1e-3),
    "kWh": (Dimension.ELECTRIC_ENERGY, 1.0),
    "10^4 kWh": (Dimension.ELECTRIC_ENERGY, 1e4),
    "MWh": (Dimension.ELECTRIC_ENERGY, 1e3),
    "GWh": (Dimension.ELECTRIC_ENERGY, 1e6),
    "Nm3": (Dimension.GAS_VOLUME, 1.0),
    "10^4 Nm3": (Dimension.GAS_VOLUME, 1e4),
    "m3": (Dimension.GAS_VOLUME_METERED, 1.0),
    "kg": (Dimension.MASS, 1e-3),
    "t": (Dimension.MASS, 1.0),
    "MJ": (Dimension.HEAT, 1e-3),
    "GJ": (Dimension.HEAT, 1.0),
}

# Other spellings, keyed in lower case (units are matched case-insensitively).
_ALIASES: dict[str, str] = {
    "1e4nm3": "10^4 Nm3",
    "1e4 nm3": "10^4 Nm3",
    "10^4nm3": "10^4 Nm3",
    "万nm3": "10^4 Nm3",
    "万立方米": "10^4 Nm3",
    "万方": "10^4 Nm3",
    "万m3": "10^4 Nm3",
    "万m³": "10^4 Nm3",
    "立方米": "Nm3",
    "方": "Nm3",
    "标准立方米": "Nm3",
    "标方": "Nm3",
    "nm³": "Nm3",
    "m³": "m3",
    "度": "kWh",
    "千瓦时": "kWh",
    "千瓦·时": "kWh",
    "kw·h": "kWh",
    "kw.h": "kWh",
    "万千瓦时": "10^4 kWh",
    "万度": "10^4 kWh",
    "万kwh": "10^4 kWh",
    "10^4kwh": "10^4 kWh",
    "兆瓦时": "MWh",
    "吨": "t",
    "千克": "kg",
    "公斤": "kg",
    "吉焦": "GJ",
    "兆焦": "MJ",
}
_BY_LOWER = {unit.lower(): unit for unit in _UNITS} | _ALIASES


class UnitError(ValueError):
    """A unit that is unknown, or that cannot be converted into the one asked for."""


@lru_cache(maxsize=1024)
def normalize_unit(unit: str) -> str:
    """Return the canonical spelling of ``unit``; raise :class:`UnitError` if it is unknown."""
    canonical = _BY_LOWER.get(unit.strip().lower())
    if canonical is None:
        known = ", ".join(_UNITS)
        raise UnitError(f"unknown unit {unit!r} (known: {known}, and the Chinese names of these)")
    return canonical


def dimension_of(unit: str) -> Dimension:
    return _UNITS[normalize_unit(unit)][0]


def convert(value: float, from_unit: str, to_unit: str, *, m3_to_nm3: float | None = None) -> float:
    """Convert ``value`` from ``from_unit`` to ``to_unit``.

    Parameters
    ----------
    value : float
        The quantity, in ``from_unit``.
    from_unit, to_unit : str
        Unit names as in the table of this module.
    m3_to_nm3 : float, optional
        Volume correction factor [Nm3 per m3 as metered]; needed only to go from ``m3`` to Nm3.

    Returns
    -------
    float
        The quantity in ``to_unit``.
    """
    src, dst = normalize_unit(from_unit), normalize_unit(to_unit)
    src_dim, src_factor = _UNITS[src]
    dst_dim, dst_factor = _UNITS[dst]
    if src_dim is Dimension.GAS_VOLUME_METERED and dst_dim is Dimension.GAS_VOLUME:
        if m3_to_nm3 is None or not math.isfinite(m3_to_nm3) or m3_to_nm3 <= 0:
            raise UnitError("m3 as metered becomes Nm3 only with a positive m3_to_nm3 correction factor")
        return value * src_factor * m3_to_nm3 / dst_factor
    if src_dim is not dst_dim:
        raise UnitError(f"cannot convert {src} ({src_dim}) to {dst} ({dst_dim})")
    return value * src_factor / dst_factor
