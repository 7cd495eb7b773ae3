"""Issue #21's "done when", the month's part: a meter replacement the simulator made in mid-March,
proposed by the enterprise's admin as typed on the platform (local time, readings) and approved by a
park analyst, makes March balance against the simulator's ground truth when the pipeline reads the
registry from the database; before the approval the same month does not balance. Real InfluxDB and
``pipeline.monthly.compute_activity``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from ledger import registry_store
from ledger.db import make_engine, migrate
from park.measurements import ACTIVITY_MONTHLY
from park.month import Month, read_month
from park.registry import DEFAULT_TIMEZONE, MeterRole, Registry
from pipeline.monthly import compute_activity
from portal import registry_edit
from portal.audit import Actor
from simulators.history import write_registers
from simulators.run import simulate_run
from simulators.truth import monthly_truth
from tests.demo_rows import demo_enterprise_rows
from tests.e2e.test_monthly_faults import BOOKED, booked_activity

pytestmark = pytest.mark.services

TZ = ZoneInfo(DEFAULT_TIMEZONE)
PERIOD = "2026-03"
SEED = 4  # swaps E07's main grid meter on 18 March (seed 11 swaps a PV meter, which is not booked here)


def expected_activity(truth: pd.DataFrame, registry: Registry) -> pd.Series:
    """Quantity per (enterprise, workshop, source) from what the meters counted in March, booked as GB/T
    32150 books it: main meters for the enterprise, a workshop's meters for the workshop."""
    march = truth[truth["month"] == PERIOD]
    return booked_activity(registry, march.set_index(["meter", "register"])["consumption"].items())


def stored_activity(store) -> pd.Series:
    frame = read_month(store, ACTIVITY_MONTHLY, Month.of(PERIOD, DEFAULT_TIMEZONE))
    frame = frame[frame["source"].isin(BOOKED.values())]
    index = zip(frame["enterprise"], frame["workshop"].fillna(""), frame["source"], strict=True)
    return pd.Series(frame["quantity"].to_numpy(), index=pd.MultiIndex.from_tuples(list(index))).sort_index()


def test_an_approved_replacement_balances_its_month_against_the_truth(settings, store, demo_registry):
    run = simulate_run(
        demo_registry,
        datetime(2026, 2, 27, tzinfo=TZ),
        datetime(2026, 4, 2, 6, tzinfo=TZ),
        pd.Timedelta("1h"),
        SEED,
        {"replacement": 1},
    )
    (event,) = run.registry_events
    assert event["meter"] == "E07-M-GRID"  # the seed's swap: a main grid meter, whose energy is E07's electricity
    assert write_registers(store, demo_registry, run.published) > 0
    expected = expected_activity(monthly_truth(run.park), demo_registry)
    meter = demo_registry.meter_by_id[str(event["meter"])]

    database = settings.model_copy(update={"registry_source": "database"})
    engine = make_engine(database.ledger_url)
    migrate(engine)
    rows = demo_enterprise_rows()
    with engine.begin() as conn:
        registry_store.import_registry(conn, demo_registry, rows, date(2026, 1, 1), "office", "pilot start")

    # The enterprise's admin types what the fitter wrote down: the local time and the two readings.
    at_local = datetime.fromisoformat(str(event["at"])).astimezone(TZ).replace(tzinfo=None).isoformat()
    typed = registry_edit.parse_replacement(
        meter.id,
        at_local,
        repr(float(event["old_final_reading"])),  # type: ignore[arg-type]
        repr(float(event["new_initial_reading"])),  # type: ignore[arg-type]
        "",
        str(event["new_serial"]),
        DEFAULT_TIMEZONE,
    )
    owner = Actor(f"{meter.enterprise.lower()}-admin", "enterprise_admin", meter.enterprise, "10.0.0.1")
    analyst = Actor("ana-analyst", "park_analyst", None, "10.0.0.2")
    now = datetime(2026, 3, 20, tzinfo=UTC)
    with engine.begin() as conn:
        proposal_id = registry_edit.propose_replacement(
            conn, owner, meter.enterprise, meter.id, typed, "meter swapped by the utility", DEFAULT_TIMEZONE, now
        )

    # Proposed, not approved: March is computed without it, and the swap's drop is not the meter's energy.
    compute_activity(database, PERIOD)
    (swap,) = [f for f in run.faults if f.kind == "replacement"]
    key = (
        meter.enterprise,
        "" if meter.role is MeterRole.MAIN else str(meter.workshop),
        BOOKED[(meter.carrier, swap.register)],
    )
    unapproved = stored_activity(store)
    assert unapproved[key] != pytest.approx(expected[key], rel=1e-6)

    with engine.begin() as conn:
        changes = registry_edit.approve(conn, analyst, [meter.enterprise], proposal_id, DEFAULT_TIMEZONE, now)
        assert registry_store.registry_as_of(conn, date(2026, 3, 1)).meter_by_id[meter.id].replacements == [typed]
    engine.dispose()
    assert [(c.action, c.valid_from) for c in changes] == [("registry.replace_meter", date(2026, 3, 1))]

    compute_activity(database, PERIOD)
    stored = stored_activity(store)
    assert_allclose(stored.reindex(expected.index), expected, rtol=1e-9)
    # every other enterprise's March is as it was before the approval
    others = [k for k in expected.index if k[0] != meter.enterprise]
    assert_allclose(stored.reindex(others), unapproved.reindex(others), rtol=0)
