"""Groups of whole enterprises for the monthly activity's fan-out (``carbon_monthly``'s mapped
``activity`` task), and replacing exactly one group's points of a month.

A group is a set of whole enterprises, never part of one: everything the activity step computes is
per enterprise (its meters, its PV split), so a group's points are the same whether it is computed
alone or with the whole park. Groups are sized by meter count (the work is per meter register), in
registry order, so the same registry gives the same groups. Airflow refuses to map over more than
``[core] max_map_length`` items (1024 by default), so the group size grows until the park fits in
:data:`MAX_GROUPS`: at 500 enterprises and 50,000 meters the default 2,000 meters per group gives
about 25 groups.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence

from park.lineprotocol import Point
from park.measurements import Measurement
from park.registry import Registry
from park.store import InfluxStore, quote_literal

# A quarter of Airflow's default [core] max_map_length (1024, airflow/config_templates/config.yml):
# a park never comes near the limit, and the scheduler is not flooded with mapped task instances.
MAX_GROUPS = 256
# Enterprises named in one DELETE statement: keeps the statement short (a few kB) at any group size.
DELETE_ENTERPRISES = 100


def enterprise_groups(registry: Registry, group_meters: int, max_groups: int = MAX_GROUPS) -> list[list[str]]:
    """The registry's enterprises in groups of about ``group_meters`` meters each, in registry order.

    An enterprise with more meters than ``group_meters`` is a group of its own; an enterprise without
    meters counts as one (it still gets its month's coverage point). When that makes more than
    ``max_groups`` groups, the size doubles until it does not. Every enterprise is in exactly one group.
    """
    if group_meters < 1 or max_groups < 1:
        raise ValueError(f"group_meters and max_groups must be at least 1, not {group_meters} and {max_groups}")
    meters_of: dict[str, int] = {e.id: 0 for e in registry.enterprises}
    for meter in registry.meters:
        meters_of[meter.enterprise] += 1
    weights = [(enterprise, max(1, count)) for enterprise, count in meters_of.items()]
    # The smallest size that can fit: no group count below ceil(total / size) is possible.
    size = max(group_meters, math.ceil(sum(w for _, w in weights) / max_groups))
    while True:
        groups = _greedy(weights, size)
        if len(groups) <= max_groups:
            return groups
        size *= 2


def _greedy(weights: Sequence[tuple[str, int]], size: int) -> list[list[str]]:
    """Fill each group in order until the next enterprise would take it over ``size`` meters."""
    groups: list[list[str]] = []
    current: list[str] = []
    filled = 0
    for enterprise, weight in weights:
        if current and filled + weight > size:
            groups.append(current)
            current, filled = [], 0
        current.append(enterprise)
        filled += weight
    if current:
        groups.append(current)
    return groups


def _enterprise_filter(enterprises: Sequence[str]) -> str:
    return "(" + " OR ".join(f'"enterprise" = {quote_literal(e)}' for e in enterprises) + ")"


def delete_enterprises(store: InfluxStore, measurement: Measurement, at_ns: int, enterprises: Collection[str]) -> None:
    """Delete the points of ``measurement`` stamped ``at_ns`` of these enterprises only (the other
    groups' points of the month stay)."""
    ordered = sorted(enterprises)
    for first in range(0, len(ordered), DELETE_ENTERPRISES):
        part = ordered[first : first + DELETE_ENTERPRISES]
        store.execute(f"DELETE FROM {measurement.q} WHERE time = {at_ns} AND {_enterprise_filter(part)}")


def replace_enterprises(
    store: InfluxStore, measurement: Measurement, at_ns: int, enterprises: Collection[str], points: Iterable[Point]
) -> int:
    """:meth:`InfluxStore.replace_at` for one group: delete these enterprises' points of the month, then
    write ``points`` (which must be theirs). A re-run of the group, after a worker died halfway, writes
    the same points again. Returns how many were written."""
    written = list(points)
    strangers = sorted({p.tags.get("enterprise", "") for p in written} - set(enterprises))
    if strangers:
        raise ValueError(f"points of enterprises outside the group: {strangers[:5]}")
    delete_enterprises(store, measurement, at_ns, enterprises)
    return store.write(written)


def enterprises_at(store: InfluxStore, measurement: Measurement, at_ns: int) -> set[str]:
    """The enterprises that have points of ``measurement`` stamped ``at_ns``."""
    frame = store.query(f'SELECT COUNT(*) FROM {measurement.q} WHERE time = {at_ns} GROUP BY "enterprise"')
    return set() if frame.empty else {str(e) for e in frame["enterprise"]}
