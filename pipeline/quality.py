"""Task bodies of the ``METER_QUALITY_DAILY`` DAG: the day's completeness per meter, stale meters,
offline gateways, and readings that arrived after their month had run (late data).

- ``METER_QUALITY_DAILY`` (enterprise, gateway, meter, register): readings and expected readings in
  the local day, completeness, hours since the last reading at the day's end, stale.
- ``GATEWAY_QUALITY_DAILY`` (enterprise, gateway): readings in the day, its meters silent all day,
  its last announced status, offline (announced offline, or every meter silent).
- ``LATE_DATA`` (enterprise, meter, register), stamped at a month's start: readings inside the
  month now minus those the month's run counted (``data_quality.readings``). The monthly run of that
  month clears it; until then the month's figures do not include those readings.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from park.lineprotocol import Point, to_ns
from park.measurements import (
    DATA_QUALITY,
    GATEWAY_QUALITY_DAILY,
    GATEWAY_STATUS,
    LATE_DATA,
    METER_QUALITY_DAILY,
    METER_REGISTER,
)
from park.month import Month, rfc3339
from park.registry import Registry
from park.settings import Settings
from park.store import InfluxStore
from pipeline.daily import late_data_months
from pipeline.registry_source import registries_of_periods, registry_of_day

LOOKBACK = timedelta(days=35)  # how far back the last reading of a meter is looked for


def _counts(store: InfluxStore, start: datetime, end: datetime) -> dict[tuple[str, str], int]:
    """Readings per (meter, register) in (start, end]."""
    frame = store.query(
        f"SELECT COUNT(\"raw_value\") FROM {METER_REGISTER.q} WHERE time > '{rfc3339(start)}' "
        f'AND time <= \'{rfc3339(end)}\' GROUP BY "meter", "register"'
    )
    if frame.empty:
        return {}
    return {(str(m), str(r)): int(c) for m, r, c in zip(frame["meter"], frame["register"], frame["count"], strict=True)}


def _last_seen(store: InfluxStore, end: datetime) -> dict[tuple[str, str], pd.Timestamp]:
    frame = store.query(
        f"SELECT LAST(\"raw_value\") FROM {METER_REGISTER.q} WHERE time <= '{rfc3339(end)}' "
        f'AND time > \'{rfc3339(end - LOOKBACK)}\' GROUP BY "meter", "register"'
    )
    if frame.empty:
        return {}
    return {(str(m), str(r)): t for m, r, t in zip(frame["meter"], frame["register"], frame["time"], strict=True)}


def _gateway_states(store: InfluxStore, end: datetime) -> dict[str, float]:
    """Each gateway's last announced status at ``end``: 1.0 online, 0.0 offline."""
    frame = store.query(
        f'SELECT LAST("online") FROM {GATEWAY_STATUS.q} WHERE time <= \'{rfc3339(end)}\' GROUP BY "gateway"'
    )
    if frame.empty:
        return {}
    return {str(g): float(v) for g, v in zip(frame["gateway"], frame["last"], strict=True)}


def day_quality(
    registry: Registry, store: InfluxStore, day: date, stale_after_h: float
) -> tuple[list[Point], list[Point]]:
    """``METER_QUALITY_DAILY`` and ``GATEWAY_QUALITY_DAILY`` points of the local ``day``."""
    tz = ZoneInfo(registry.park.timezone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    end = start + timedelta(days=1)
    at_ns = to_ns(start)
    counts = _counts(store, start, end)
    last_seen = _last_seen(store, end)
    states = _gateway_states(store, end)
    meter_points = []
    per_gateway: dict[str, list[int]] = {g.id: [] for g in registry.gateways}
    completeness_sum: dict[str, float] = {g.id: 0.0 for g in registry.gateways}
    for meter in registry.meters:
        expected = 1440 // meter.interval_minutes
        for register in meter.registers:
            key = (meter.id, register.value)
            readings = counts.get(key, 0)
            seen = last_seen.get(key)
            age_h = (pd.Timestamp(end) - seen).total_seconds() / 3600 if seen is not None else None
            fields: dict[str, float | bool] = {
                "readings": float(readings),
                "expected": float(expected),
                "completeness": min(1.0, readings / expected),
                "stale": age_h is None or age_h > stale_after_h,
            }
            if age_h is not None:
                fields["last_seen_age_h"] = age_h
            tags = {"enterprise": meter.enterprise, "gateway": meter.gateway, "meter": meter.id}
            meter_points.append(METER_QUALITY_DAILY.point(tags | {"register": register.value}, fields, at_ns))
            per_gateway[meter.gateway].append(readings)
            completeness_sum[meter.gateway] += float(fields["completeness"])
    gateway_points = []
    for gateway in registry.gateways:
        own = per_gateway[gateway.id]
        state = states.get(gateway.id)
        silent = sum(1 for n in own if n == 0)
        gateway_fields: dict[str, float | bool] = {
            "readings": float(sum(own)),
            "meters_silent": float(silent),
            "offline": state == 0.0 or (bool(own) and silent == len(own)),
            # Σ and count of its registers' completeness: the park's mean over all registers is
            # Σ completeness_sum / Σ registers, read from one point per gateway instead of one per register.
            "registers": float(len(own)),
            "completeness_sum": completeness_sum[gateway.id],
        }
        if state is not None:
            gateway_fields["announced_online"] = state
        tags = {"enterprise": gateway.enterprise, "gateway": gateway.id}
        gateway_points.append(GATEWAY_QUALITY_DAILY.point(tags, gateway_fields, at_ns))
    return meter_points, gateway_points


def compute_day_quality(settings: Settings, day: str) -> dict[str, object]:
    """Write the day's meter and gateway quality; return the counts an operator looks at first."""
    when = date.fromisoformat(day)
    registry = registry_of_day(settings, when)  # with the database: the registry of the day's month
    at_ns = to_ns(datetime(when.year, when.month, when.day, tzinfo=ZoneInfo(registry.park.timezone)))
    with InfluxStore(settings.influx) as store:
        store.create_database()
        meters, gateways = day_quality(registry, store, when, settings.quality.stale_after_hours)
        store.replace_at(METER_QUALITY_DAILY, at_ns, meters)
        store.replace_at(GATEWAY_QUALITY_DAILY, at_ns, gateways)
    return {
        "day": day,
        "registers": len(meters),
        "stale_registers": sum(1 for p in meters if p.fields["stale"]),
        "incomplete_registers": sum(1 for p in meters if float(p.fields["completeness"]) < 1.0),
        "offline_gateways": sorted(str(p.tags["gateway"]) for p in gateways if p.fields["offline"]),
    }


def month_late_data(registry: Registry, store: InfluxStore, month: Month) -> list[Point] | None:
    """``LATE_DATA`` points of ``month`` (None if the month has not run)."""
    frame = store.query(
        f'SELECT "readings" FROM {DATA_QUALITY.q} WHERE time = {month.start_ns} GROUP BY "meter", "register"'
    )
    if frame.empty:
        return None
    at_run = {
        (str(m), str(r)): int(n) for m, r, n in zip(frame["meter"], frame["register"], frame["readings"], strict=True)
    }
    now = _counts(store, month.start, month.end)
    points = []
    for key, count in sorted(now.items()):
        late = count - at_run.get(key, 0)
        meter = registry.meter_by_id.get(key[0])
        if late > 0 and meter is not None:
            points.append(
                LATE_DATA.point(
                    {"enterprise": meter.enterprise, "meter": key[0], "register": key[1]},
                    {
                        "late_readings": float(late),
                        "readings_at_run": float(at_run.get(key, 0)),
                        "readings_now": float(count),
                    },
                    month.start_ns,
                )
            )
    return points


def compute_late_data(settings: Settings, today: date | None = None) -> dict[str, int]:
    """Recount the months that have run (the last ``quality.late_data_months``); write ``LATE_DATA``.

    Returns the late readings per month that has any (YYYY-MM → count).
    """
    late: dict[str, int] = {}
    months = late_data_months(settings, today)
    # each month with the registry that computes it (the file: the same one)
    registries = registries_of_periods(settings, [m.period for m in months])
    with InfluxStore(settings.influx) as store:
        store.create_database()
        for month in months:
            points = month_late_data(registries[month.period], store, month)
            if points is not None:
                store.replace_at(LATE_DATA, month.start_ns, points)
                if points:
                    late[month.period] = int(sum(float(p.fields["late_readings"]) for p in points))
    return late
