"""Per-meter monthly consumption → activity data per enterprise, workshop and source.

Sub-meters never double count: enterprise totals come from main meters only, workshop totals from
the meters assigned to a workshop (a main meter with a workshop, such as a rooftop PV meter on one
workshop, counts for both).

- grid meter, import register → ``grid_electricity``;
- grid meter, export register → ``pv_exported`` where the enterprise has PV, else ``exported_electricity``;
- PV meter → generation; ``pv_self_consumed`` = generation - ``pv_exported`` (a workshop's PV is
  self-consumed in the enterprise's proportion);
- gas meter → ``natural_gas``; heat meter → ``purchased_heat``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

import pandas as pd

from park.registry import Carrier, MeterRole, Register, Registry
from scoring.accounting import Source
from scoring.registers import WindowConsumption

ACTIVITY_COLUMNS = ["enterprise", "workshop", "period", "source", "quantity", "unit", "completeness"]
QUALITY_COLUMNS = [
    "enterprise",
    "meter",
    "register",
    "completeness",
    "readings",
    "expected",
    "gaps",
    "estimated_intervals",
    "rollovers",
    "resets",
    "replacements",
    "spikes",
    "apportioned",
    "has_start",
]

_DIRECT = {
    (Carrier.GRID_ELECTRICITY, Register.ACTIVE_ENERGY_IMPORT): Source.GRID_ELECTRICITY,
    (Carrier.NATURAL_GAS, Register.GAS_VOLUME): Source.NATURAL_GAS,
    (Carrier.HEAT, Register.HEAT_ENERGY): Source.PURCHASED_HEAT,
}
PV_GENERATION = "pv_generation"


def activity_from_meters(
    registry: Registry, consumption: Mapping[tuple[str, str], WindowConsumption], period: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Activity rows (:data:`ACTIVITY_COLUMNS`) and per-register quality rows (:data:`QUALITY_COLUMNS`)."""
    amounts: dict[tuple[str, str, str], float] = defaultdict(float)
    units: dict[tuple[str, str, str], str] = {}
    completeness: dict[tuple[str, str, str], float] = {}
    has_pv = {m.enterprise for m in registry.meters if m.carrier is Carrier.PV_GENERATION}
    quality = []
    for (meter_id, register), window in sorted(consumption.items()):
        meter = registry.meter_by_id[meter_id]
        quality.append([meter.enterprise, meter_id, register, *(getattr(window, c) for c in QUALITY_COLUMNS[3:])])
        reg = Register(register)
        if meter.carrier is Carrier.PV_GENERATION:
            source = PV_GENERATION
        elif meter.carrier is Carrier.GRID_ELECTRICITY and reg is Register.ACTIVE_ENERGY_EXPORT:
            source = Source.PV_EXPORTED if meter.enterprise in has_pv else Source.EXPORTED_ELECTRICITY
        elif (meter.carrier, reg) in _DIRECT:
            source = _DIRECT[(meter.carrier, reg)]
        else:
            continue
        scopes = []
        if meter.role is MeterRole.MAIN:
            scopes.append("")
        if meter.workshop:
            scopes.append(meter.workshop)
        for workshop in scopes:
            key = (meter.enterprise, workshop, str(source))
            amounts[key] += window.quantity
            units[key] = meter.unit
            completeness[key] = min(completeness.get(key, 1.0), window.completeness)

    _split_pv(amounts, units, completeness)
    rows = [
        [
            enterprise,
            workshop,
            period,
            source,
            quantity,
            units[(enterprise, workshop, source)],
            completeness[(enterprise, workshop, source)],
        ]
        for (enterprise, workshop, source), quantity in sorted(amounts.items())
    ]
    return pd.DataFrame(rows, columns=ACTIVITY_COLUMNS), pd.DataFrame(quality, columns=QUALITY_COLUMNS)


def _split_pv(
    amounts: dict[tuple[str, str, str], float],
    units: dict[tuple[str, str, str], str],
    completeness: dict[tuple[str, str, str], float],
) -> None:
    """Turn PV generation into self-consumption: the enterprise's generation minus what it exported,
    and each workshop's generation in the same proportion."""
    pv_keys = [k for k in amounts if k[2] == PV_GENERATION]
    enterprise_generation = {k[0]: amounts[k] for k in pv_keys if k[1] == ""}
    for key in pv_keys:
        enterprise, workshop, _ = key
        generation = amounts.pop(key)
        total = enterprise_generation.get(enterprise, generation)
        exported = amounts.get((enterprise, "", str(Source.PV_EXPORTED)), 0.0)
        self_share = min(1.0, max(0.0, 1.0 - exported / total)) if total > 0 else 0.0
        target = (enterprise, workshop, str(Source.PV_SELF_CONSUMED))
        amounts[target] += generation * self_share
        units[target] = units.pop(key)
        completeness[target] = min(completeness.get(target, 1.0), completeness.pop(key))
