"""History written straight to InfluxDB is byte-for-byte what the collector writes for the same reading."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from collectors.model import Reading
from collectors.points import reading_point
from park.lineprotocol import encode
from simulators.history import register_lines
from simulators.park import simulate

TZ = ZoneInfo("Asia/Shanghai")


def test_lines_equal_the_collectors_points(demo_registry):
    park = simulate(
        demo_registry, datetime(2026, 5, 1, tzinfo=TZ), datetime(2026, 5, 1, 2, tzinfo=TZ), pd.Timedelta("1h"), 3
    )
    registers = park.registers.copy()
    registers.iloc[1, 0] = np.nan  # a reading not taken is not written
    lines = "\n".join(register_lines(demo_registry, registers, chunk_points=7)).split("\n")
    expected = []
    for meter_id, register in registers.columns:
        meter = demo_registry.meter_by_id[meter_id]
        for time, raw in registers[(meter_id, register)].dropna().items():
            reading = Reading(
                meter.gateway,
                0,
                meter.enterprise,
                meter.workshop or "",
                meter.id,
                meter.carrier.value,
                register,
                time.to_pydatetime(),
                float(raw),
                float(raw) * meter.multiplier,
            )
            expected.append(encode(reading_point(reading)))
    assert lines == expected
    assert len(lines) == registers.notna().to_numpy().sum()
