"""Unit conversion for activity data: the one place where kWh, MWh, Nm3, 10^4 Nm3, m3, t and GJ meet.

Each unit belongs to one dimension and has a factor to that dimension's base unit:

========================  =========  =====================================================
dimension                 base unit  units
========================  =========  =====================================================
electric energy           kWh        Wh, kWh, MWh, GWh
gas volume (standard)     Nm3        Nm3, 10^4 Nm3 (also written ``1e4Nm3``, ``万Nm3``)
gas volume (as metered)   m3         m3 — becomes Nm3 only with an explicit correction factor
mass                      t          kg, t
heat                      GJ         MJ, GJ
========================  =========  =====================================================

A gas meter's m3 is at the meter's pressure and temperature; turning it into Nm3 needs the
P/T correction (docs: metering rules §5), so ``m3`` never converts silently.

Examples
--------
>>> convert(1500.0, "kWh", "MWh")
1.5
>>> convert(21_000.0, "Nm3", "10^4 Nm3")
2.1
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

_ALIASES: dict[str, str] = {
    "1e4Nm3": "10^4 Nm3",
    "1e4 Nm3": "10^4 Nm3",
    "10^4Nm3": "10^4 Nm3",
    "万Nm3": "10^4 Nm3",
    "万立方米": "10^4 Nm3",
    "Nm³": "Nm3",
    "m³": "m3",
    "kwh": "kWh",
    "KWH": "kWh",
    "mwh": "MWh",
    "wh": "Wh",
    "gj": "GJ",
    "nm3": "Nm3",
}


class UnitError(ValueError):
    """A unit that is unknown, or that cannot be converted into the one asked for."""


@lru_cache(maxsize=1024)
def normalize_unit(unit: str) -> str:
    """Return the canonical spelling of ``unit``; raise :class:`UnitError` if it is unknown."""
    stripped = unit.strip()
    canonical = _ALIASES.get(stripped, stripped)
    if canonical not in _UNITS:
        known = ", ".join(_UNITS)
        raise UnitError(f"unknown unit {unit!r} (known: {known})")
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
