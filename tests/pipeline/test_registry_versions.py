"""Issue #21's test: with the registry in the database, a meter's multiplier changed from a month's
start leaves the months before exactly as they were (their stored points compared), the months from
then use the new multiplier (against the simulator's register truth), and re-running an old month
gives the old result, on a real InfluxDB with ``compute_activity`` and ``compute_scores``."""

from __future__ import annotations

import json
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from ledger import registry_store
from ledger.db import make_engine, migrate
from park.measurements import ACTIVITY_MONTHLY, CREDITS, DATA_QUALITY, EMISSIONS_MONTHLY, MONTH_COVERAGE
from park.month import Month, read_month
from park.registry import DEFAULT_TIMEZONE, MeterReplacement, load_registry
from park.settings import DEMO_REGISTRY
from pipeline.monthly import compute_activity, compute_scores
from simulators.history import write_registers
from simulators.park import truth_from_registers
from simulators.run import simulate_run
from tests.demo_rows import demo_enterprise_rows

pytestmark = pytest.mark.services

TZ = ZoneInfo(DEFAULT_TIMEZONE)
METER = "E01-M-GRID"  # E01's only main grid meter: its grid import is E01's electricity
ACTIVITY = (ACTIVITY_MONTHLY, DATA_QUALITY, MONTH_COVERAGE)
SCORES = (EMISSIONS_MONTHLY, CREDITS)
GRID_T_PER_MWH = 0.5306  # MEE/NBS 2023 national average (cn-national-2023), as tests/e2e/test_demo_month.py


def _points(store, period: str, measurements) -> dict[str, pd.DataFrame]:
    month = Month.of(period, DEFAULT_TIMEZONE)
    frames = {}
    for measurement in measurements:
        frame = read_month(store, measurement, month)
        frames[measurement.name] = frame.sort_values(sorted(frame.columns)).reset_index(drop=True)
    return frames


def _same(got: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    for name, frame in expected.items():
        assert len(frame) > 0, name
        pd.testing.assert_frame_equal(got[name], frame, obj=name, check_exact=True)


def _e01_electricity(frames: dict[str, pd.DataFrame]) -> float:
    activity = frames["activity_monthly"]
    row = activity[
        (activity["enterprise"] == "E01") & (activity["workshop"] == "") & (activity["source"] == "grid_electricity")
    ]
    assert len(row) == 1, activity[activity["enterprise"] == "E01"]
    assert row["unit"].iloc[0] == "kWh"
    return float(row["quantity"].iloc[0])


def _e01_tco2(frames: dict[str, pd.DataFrame]) -> float:
    emissions = frames["emissions_monthly"]
    rows = emissions[
        (emissions["enterprise"] == "E01") & (emissions["workshop"] == "") & (emissions["scope"] == "total")
    ]
    assert len(rows) == 1
    return float(rows["tco2_location"].iloc[0])


def test_a_multiplier_changed_from_a_date_keeps_the_months_before(settings, store, demo_registry):
    run = simulate_run(
        demo_registry, datetime(2026, 1, 31, tzinfo=TZ), datetime(2026, 4, 1, 6, tzinfo=TZ), pd.Timedelta("1h"), 11
    )
    assert write_registers(store, demo_registry, run.published) > 0
    # The meter's own truth: Δregister x 80 over each month's intervals, from the simulated registers.
    truth = truth_from_registers(run.park)[(METER, "active_energy_import")]
    truth_kwh = {
        period: float(truth[(truth.index > start) & (truth.index <= end)].sum())
        for period, start, end in (
            ("2026-02", datetime(2026, 2, 1, tzinfo=TZ), datetime(2026, 3, 1, tzinfo=TZ)),
            ("2026-03", datetime(2026, 3, 1, tzinfo=TZ), datetime(2026, 4, 1, tzinfo=TZ)),
        )
    }

    database = settings.model_copy(update={"registry_source": "database"})
    engine = make_engine(database.ledger_url)
    migrate(engine)
    rows = demo_enterprise_rows()
    with engine.begin() as conn:
        registry_store.import_registry(conn, demo_registry, rows, date(2026, 1, 1), "office", "pilot start")

    before: dict[str, dict[str, pd.DataFrame]] = {}
    for period in ("2026-02", "2026-03"):
        compute_activity(database, period)
        compute_scores(database, period)
        before[period] = _points(store, period, ACTIVITY) | _points(store, period, SCORES)
        assert _e01_electricity(before[period]) == pytest.approx(truth_kwh[period], rel=1e-12)

    with engine.begin() as conn:  # the CT ratio doubled from 1 March
        document = registry_store.documents_as_of(conn, date(2026, 3, 1))[("meter", METER)]
        assert document["multiplier"] == 80
        changes = registry_store.put_entry(
            conn, "meter", document | {"multiplier": 160}, date(2026, 3, 1), "office", "CT 400/5 → 800/5"
        )
    engine.dispose()
    assert [json.loads(c.after)["multiplier"] for c in changes] == [160]

    # March again: the new multiplier; E01's electricity doubles, every other enterprise's stays.
    compute_activity(database, "2026-03")
    compute_scores(database, "2026-03")
    march = _points(store, "2026-03", ACTIVITY) | _points(store, "2026-03", SCORES)
    assert _e01_electricity(march) == pytest.approx(2 * truth_kwh["2026-03"], rel=1e-12)
    activity = march["activity_monthly"]
    others = activity["enterprise"] != "E01"
    pd.testing.assert_frame_equal(
        activity[others].reset_index(drop=True),
        before["2026-03"]["activity_monthly"][before["2026-03"]["activity_monthly"]["enterprise"] != "E01"].reset_index(
            drop=True
        ),
        check_exact=True,
    )
    # Its location-based emissions grow by the meter's March energy x the national grid factor.
    growth_t = _e01_tco2(march) - _e01_tco2(before["2026-03"])
    assert growth_t == pytest.approx(truth_kwh["2026-03"] / 1000 * GRID_T_PER_MWH, rel=1e-9)

    # February again, after the change: exactly the points it had (activity, quality, coverage, emissions, credits).
    compute_activity(database, "2026-02")
    compute_scores(database, "2026-02")
    _same(_points(store, "2026-02", ACTIVITY) | _points(store, "2026-02", SCORES), before["2026-02"])

    # The same March from a registry file carrying the new multiplier gives the database's March.
    changed = settings.run_dir / "registry-160.yaml"
    text = DEMO_REGISTRY.read_text(encoding="utf-8")
    assert text.count("  multiplier: 80\n") >= 1 and load_registry(DEMO_REGISTRY).meters[0].id == METER
    changed.write_text(text.replace("  multiplier: 80\n", "  multiplier: 160\n", 1), encoding="utf-8")
    assert load_registry(changed).meter_by_id[METER].multiplier == 160
    compute_activity(settings.model_copy(update={"registry": changed}), "2026-03")
    _same(
        _points(store, "2026-03", ACTIVITY),
        {k: march[k] for k in ("activity_monthly", "data_quality", "month_coverage")},
    )


def test_a_replacement_recorded_in_the_database_is_bridged_as_the_files(settings, store, demo_registry, tmp_path):
    """The simulator swaps a meter in mid-March (old final reading, new first reading); recorded with
    ``replace_meter``, the database's March equals the March of a registry file listing the same
    replacement, point for point, and the registry of February does not know it."""
    import yaml

    from simulators.truth import registry_with_events

    run = simulate_run(
        demo_registry,
        datetime(2026, 2, 27, tzinfo=TZ),
        datetime(2026, 4, 2, 6, tzinfo=TZ),
        pd.Timedelta("1h"),
        11,
        {"replacement": 1},
    )
    (event,) = run.registry_events
    assert str(event["at"]).startswith("2026-03-")
    assert write_registers(store, demo_registry, run.published) > 0

    database = settings.model_copy(update={"registry_source": "database"})
    engine = make_engine(database.ledger_url)
    migrate(engine)
    rows = demo_enterprise_rows()
    replacement = MeterReplacement.model_validate({k: v for k, v in event.items() if k != "meter"})
    with engine.begin() as conn:
        registry_store.import_registry(conn, demo_registry, rows, date(2026, 1, 1), "office", "pilot start")
        changes = registry_store.replace_meter(
            conn, str(event["meter"]), replacement, DEFAULT_TIMEZONE, "office", "meter swapped"
        )
        assert [(c.action, c.valid_from) for c in changes] == [("registry.replace_meter", date(2026, 3, 1))]
        assert registry_store.registry_as_of(conn, date(2026, 2, 1)) == demo_registry
    engine.dispose()
    compute_activity(database, "2026-03")
    from_database = _points(store, "2026-03", ACTIVITY)
    quality = from_database["data_quality"]
    assert quality.loc[quality["meter"] == event["meter"], "replacements"].tolist() == [1.0]

    path = tmp_path / "registry.yaml"
    with_event = registry_with_events(demo_registry, run.registry_events)
    path.write_text(yaml.safe_dump(with_event.model_dump(mode="json"), allow_unicode=True), encoding="utf-8")
    compute_activity(settings.model_copy(update={"registry": path}), "2026-03")
    _same(_points(store, "2026-03", ACTIVITY), from_database)
