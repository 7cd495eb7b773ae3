"""``compute_activity`` (the monthly step outside the DAG, and the bench) computes the park group by
group, as the DAG's mapped tasks do, so its memory is one group's: on a real InfluxDB, the same points
and summary as the park computed as one group."""

from __future__ import annotations

import pytest

from park.month import Month
from park.registry import DEFAULT_TIMEZONE
from pipeline.monthly import compute_activity, compute_group, finish_activity, month_groups
from simulators.history import write_registers
from tests.pipeline.test_groups import PERIOD, WRITTEN, _assert_same, _points, march  # noqa: F401  (march: a fixture)


@pytest.mark.services
def test_compute_activity_in_groups_equals_one_group(settings, store, demo_registry, march):  # noqa: F811
    """With groups of about 3 meters compute_activity runs every group (4 or more) and writes the
    points, to 1e-9, and the summary of the whole park computed as one group."""
    month = Month.of(PERIOD, DEFAULT_TIMEZONE)
    assert write_registers(store, demo_registry, march) > 0
    members = [e.id for e in demo_registry.enterprises]
    whole = finish_activity(settings, PERIOD, [compute_group(settings, PERIOD, members)])
    one_group = _points(store, month)
    assert len(one_group["data_quality"]) > len(members)

    for measurement in WRITTEN:
        store.replace_at(measurement, month.start_ns, [])
    small = settings.model_copy(update={"monthly": settings.monthly.model_copy(update={"group_meters": 3})})
    in_groups = compute_activity(small, PERIOD)
    assert in_groups["groups"] == len(month_groups(small, PERIOD)) >= 4
    _assert_same(_points(store, month), one_group)
    assert {k: v for k, v in in_groups.items() if k != "groups"} == {k: v for k, v in whole.items() if k != "groups"}
