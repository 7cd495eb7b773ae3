"""The publishing plan: every message the simulated gateways send, in order, before anything is sent.

Planning first lets faults rearrange, repeat, corrupt or hold back messages (``simulators.faults``)
and lets the ground truth say exactly what went out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from park.registry import Gateway, GatewayFormat, Registry
from park.topics import layout
from simulators.formats import encode


def readings_topic(enterprise: str, gateway: str) -> str:
    """The native format's readings topic."""
    return layout(GatewayFormat.NATIVE).readings_topic(enterprise, gateway)


def status_topic(enterprise: str, gateway: str) -> str:
    """The native format's status topic."""
    return layout(GatewayFormat.NATIVE).status_topic(enterprise, gateway)


@dataclass(frozen=True)
class Outgoing:
    """One message: who sends it, where, what, how many readings it carries and when it is due
    (simulated time: the gateway sends a batch when its last reading is taken)."""

    gateway: str
    topic: str
    payload: bytes
    readings: int
    due: pd.Timestamp
    seq: int
    note: str = ""  # why the message is special (a fault), empty for an ordinary one

    def with_payload(self, payload: bytes, readings: int, note: str) -> Outgoing:
        return replace(self, payload=payload, readings=readings, note=note)


def plan_messages(
    registry: Registry,
    published: pd.DataFrame,
    batch_intervals: int,
    skew: dict[str, pd.Timedelta] | None = None,
) -> list[Outgoing]:
    """Native-format messages for the registers in ``published`` (NaN = not sent), gateway by gateway
    in batches of ``batch_intervals`` timestamps, ordered by due time; ``skew`` shifts a gateway's clock."""
    tz = registry.park.timezone
    skew = skew or {}
    messages: list[Outgoing] = []
    for gateway in registry.gateways:
        columns = [c for c in published.columns if registry.meter_by_id[c[0]].gateway == gateway.id]
        if not columns:
            continue
        if gateway.format is not GatewayFormat.NATIVE:
            messages += _vendor_messages(registry, gateway, published[columns], skew.get(gateway.id))
            continue
        units = [registry.meter_by_id[m].unit for m, _ in columns]
        values = published[columns].to_numpy()
        clock = published.index + skew.get(gateway.id, pd.Timedelta(0))
        stamps = [t.isoformat() for t in clock.tz_convert(tz)]
        seq = 0
        for first in range(0, len(stamps), batch_intervals):
            rows = range(first, min(first + batch_intervals, len(stamps)))
            readings = [
                {"meter": meter, "ts": stamps[i], "register": register, "value": float(values[i, j]), "unit": units[j]}
                for i in rows
                for j, (meter, register) in enumerate(columns)
                if np.isfinite(values[i, j])
            ]
            if not readings:
                continue  # a gateway with nothing to say sends nothing
            seq += 1
            due = published.index[rows[-1]]
            body = {
                "gateway": gateway.id,
                "seq": seq,
                "sent_at": (clock[rows[-1]] + pd.Timedelta(seconds=5)).tz_convert(tz).isoformat(),
                "readings": readings,
            }
            messages.append(
                Outgoing(
                    gateway.id,
                    readings_topic(gateway.enterprise, gateway.id),
                    json.dumps(body).encode(),
                    len(readings),
                    due,
                    seq,
                )
            )
    messages.sort(key=lambda m: (m.due, m.gateway, m.seq))
    return messages


def _vendor_messages(
    registry: Registry, gateway: Gateway, published: pd.DataFrame, skew: pd.Timedelta | None
) -> list[Outgoing]:
    """A vendor gateway sends one message per reading time, in its own format and topic."""
    tz = registry.park.timezone
    refs = [registry.meter_by_id[m].device_ref or m for m, _ in published.columns]
    values = published.to_numpy()
    clock = (published.index + (skew or pd.Timedelta(0))).tz_convert(tz)
    topic = layout(gateway.format).readings_topic(gateway.enterprise, gateway.id)
    messages = []
    for i, when in enumerate(clock):
        by_device: dict[str, dict[str, float]] = {}
        for j, (_, register) in enumerate(published.columns):
            if np.isfinite(values[i, j]):
                by_device.setdefault(refs[j], {})[register] = float(values[i, j])
        if not by_device:
            continue
        count = sum(len(r) for r in by_device.values())
        payload = encode(gateway.format, gateway.id, when.to_pydatetime(), by_device)
        messages.append(Outgoing(gateway.id, topic, payload, count, published.index[i], 0))
    return messages
