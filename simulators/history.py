"""Simulated registers written straight into InfluxDB as the collector would have stored them.

For history that would take too long through MQTT (a year or two for the annual settlement, 20,000
meters for the monthly benchmark). Tests of the collector path publish through Mosquitto instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from park.lineprotocol import Point, encode
from park.measurements import METER_REGISTER
from park.registry import Registry
from park.store import InfluxStore


def _series_key(registry: Registry, meter_id: str, register: str) -> str:
    """The METER_REGISTER series key (measurement and tags) exactly as the collector tags a reading."""
    meter = registry.meter_by_id[meter_id]
    tags = {
        "enterprise": meter.enterprise,
        "workshop": meter.workshop or "",
        "meter": meter.id,
        "carrier": meter.carrier.value,
        "register": register,
    }
    return encode(Point(METER_REGISTER.name, tags, {"x": 0.0}, 0)).rsplit(" ", 2)[0]


def register_lines(registry: Registry, registers: pd.DataFrame, chunk_points: int = 50_000) -> Iterator[str]:
    """Line protocol of every reading in ``registers`` (columns (meter, register), index UTC times;
    NaN = not read), in chunks of about ``chunk_points`` lines."""
    times_ns = registers.index.as_unit("ns").asi8
    lines: list[str] = []
    for meter_id, register in registers.columns:
        multiplier = registry.meter_by_id[meter_id].multiplier
        key = _series_key(registry, meter_id, register)
        raw = registers[(meter_id, register)].to_numpy(dtype=float)
        read = ~np.isnan(raw)
        lines.extend(
            f"{key} value={r * multiplier!r},raw_value={r!r},gateway_seq=0i {t}"
            for r, t in zip(raw[read].tolist(), times_ns[read].tolist(), strict=True)
        )
        if len(lines) >= chunk_points:
            yield "\n".join(lines)
            lines = []
    if lines:
        yield "\n".join(lines)


def write_registers(store: InfluxStore, registry: Registry, registers: pd.DataFrame) -> int:
    """Write ``registers`` to ``store``; return the number of readings written."""
    count = 0
    for body in register_lines(registry, registers):
        store.write_lines(body)
        count += body.count("\n") + 1
    return count
