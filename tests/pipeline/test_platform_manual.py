"""Manual data approved on the platform reaches the monthly step (pipeline/monthly.py) on SQLite and
on the real PostgreSQL: only approved versions, the latest approval winning, in the very shape the
manual-activity file gives; an approved figure wins over the file's row, value added included (and
the run summary says so); a database without the platform's tables leaves the files alone."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from ledger.db import make_engine, migrate
from ledger.manual import read_approved
from park.registry import load_registry
from park.settings import LedgerSettings, Settings
from pipeline.monthly import read_manual_activity, score_inputs
from portal import workflow
from portal.audit import Actor
from scoring.inputs import InputError, read_activity

REGISTRY = """\
version: test-1
park: {id: p, name: P, metering_start: 2026-01-01, latitude_deg: 31.8, longitude_deg: 117.1}
enterprises:
- {id: E01, name: One Works, industry: C39}
- {id: E02, name: Two Works, industry: C34}
gateways: []
meters: []
"""
OFFICE = Actor("ana", "park_analyst", None, "test")
NOW = datetime(2026, 4, 2, tzinfo=UTC)
METERED = pd.DataFrame(
    [{"enterprise": "E01", "workshop": "", "period": "2026-03", "source": "grid_electricity", "quantity": 1000.0,
      "unit": "kWh"}]
)  # fmt: skip


@pytest.fixture
def db(ledger_url: str) -> Iterator[Engine]:
    engine = make_engine(ledger_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _settings(tmp_path: Path, url: str, activity: str | None, enterprises: str) -> Settings:
    (tmp_path / "registry.yaml").write_text(REGISTRY, encoding="utf-8")
    (tmp_path / "enterprises.csv").write_text(enterprises, encoding="utf-8")
    if activity is not None:
        (tmp_path / "manual.csv").write_text(activity, encoding="utf-8")
    return Settings(
        run_dir=tmp_path,
        registry=tmp_path / "registry.yaml",
        enterprises=tmp_path / "enterprises.csv",
        manual_activity=tmp_path / "manual.csv" if activity is not None else None,
        ledger=LedgerSettings(url=SecretStr(url)),
    )


def _answer(db: Engine, enterprise: str, kind: str, period: str, figures: list[tuple[str, str, str]]) -> int:
    """A request to ``enterprise`` answered by versions (quantity, unit, review: approve/reject/none)."""
    reporter = Actor(f"{enterprise.lower()}-reporter", "enterprise_reporter", enterprise, "test")
    with db.begin() as conn:
        request_id = workflow.open_request(conn, OFFICE, enterprise, kind, period, "2026-04-15", "", NOW)
    for n, (quantity, unit, review) in enumerate(figures, start=1):
        with db.begin() as conn:
            workflow.submit(
                conn, reporter, enterprise, request_id, quantity, unit, [workflow.evidence("b.pdf", b"%PDF-1")], NOW
            )
            if review == "approve":
                workflow.approve(conn, OFFICE, enterprise, request_id, n, NOW)
            elif review == "reject":
                workflow.reject(conn, OFFICE, enterprise, request_id, n, "wrong month", NOW)
    return request_id


ENTERPRISES = "enterprise,name,industry,year,value_added_10k_cny\nE01,One Works,C39,2025,100\nE02,Two Works,C34,2025,\n"
MANUAL = "enterprise,period,source,quantity,unit\nE01,2026-03,natural_gas,5,10^4 Nm3\nE02,2026-03,diesel,2,t\n"


def test_approved_rows_have_the_files_shape_and_only_approved_versions_count(db, ledger_url, tmp_path):
    _answer(db, "E01", "natural_gas", "2026-03", [("11", "Nm3", "reject"), ("12,000", "Nm3", "approve")])
    _answer(db, "E01", "diesel", "2026-03", [("3", "t", "")])  # awaiting review: not used
    _answer(db, "E02", "green_electricity_certified", "2026-02", [("5", "MWh", "approve"), ("6", "MWh", "approve")])
    approved = read_approved(ledger_url)
    assert approved is not None
    (tmp_path / "m.csv").write_text(MANUAL, encoding="utf-8")
    from_file = read_activity(tmp_path / "m.csv").frame
    assert list(approved.activity.columns) == list(from_file.columns)
    assert dict(approved.activity.dtypes) == dict(from_file.dtypes)
    rows = approved.activity.drop(columns="_row").sort_values("enterprise").to_dict("records")
    assert rows == [
        {"enterprise": "E01", "period": "2026-03", "source": "natural_gas", "quantity": 12000.0, "unit": "Nm3",
         "workshop": ""},
        {"enterprise": "E02", "period": "2026-02", "source": "green_electricity_certified", "quantity": 6.0,
         "unit": "MWh", "workshop": ""},
    ]  # fmt: skip


def test_the_monthly_step_takes_approved_figures_over_the_files(db, ledger_url, tmp_path):
    _answer(db, "E01", "natural_gas", "2026-03", [("12,000", "Nm3", "approve")])  # the file says 5 × 10^4 Nm3
    _answer(db, "E01", "value_added", "2025", [("150.5", "万元", "approve")])  # the file says 100
    _answer(db, "E02", "value_added", "2026", [("80", "万元", "approve")])  # the file has no 2026 row
    settings = _settings(tmp_path, ledger_url, MANUAL, ENTERPRISES)
    activity = read_manual_activity(settings, load_registry(settings.registry), METERED, None)
    by_source = activity.set_index(["enterprise", "source"])
    assert by_source.loc[("E01", "natural_gas"), ["quantity", "unit"]].tolist() == [12000.0, "Nm3"]
    assert by_source.loc[("E02", "diesel"), "quantity"] == 2.0  # the file's row without a platform figure
    assert by_source.loc[("E01", "grid_electricity"), "quantity"] == 1000.0
    assert len(activity) == 3
    inputs = score_inputs(settings)
    va = inputs.enterprises.set_index(["enterprise", "year"])["value_added_10k_cny"]
    assert va[("E01", 2025)] == 150.5 and va[("E02", 2026)] == 80.0 and math.isnan(va[("E02", 2025)])
    assert inputs.enterprises.set_index(["enterprise", "year"]).loc[("E02", 2026), "industry"] == "C34"
    assert len(inputs.notes) == 2
    assert "value added of E01 in 2025: 150.50 (10k CNY) approved on the platform" in inputs.notes[0]
    assert "replaces enterprises.csv's 100.00 (row 2)" in inputs.notes[0]
    assert "E02 in 2026" in inputs.notes[1] and "has no row" in inputs.notes[1]


def test_an_approved_bill_for_a_metered_source_is_refused_like_the_files(db, ledger_url, tmp_path):
    request = _answer(db, "E01", "green_electricity_certified", "2026-03", [("1", "MWh", "approve")])
    metered = pd.concat(
        [METERED, METERED.assign(source="green_electricity_certified", quantity=500.0)], ignore_index=True
    )
    settings = _settings(tmp_path, ledger_url, None, ENTERPRISES)
    with pytest.raises(InputError, match=r"platform submission: row \d+: source: green_electricity_certified"):
        read_manual_activity(settings, load_registry(settings.registry), metered, None)
    assert request == 1


def test_a_park_without_the_platform_keeps_its_files(ledger_url, tmp_path):
    engine = make_engine(ledger_url)
    migrate(engine, "0004")  # a ledger without the platform's workflow tables
    engine.dispose()
    assert read_approved(ledger_url) is None
    settings = _settings(tmp_path, ledger_url, MANUAL, ENTERPRISES)
    activity = read_manual_activity(settings, load_registry(settings.registry), METERED, None)
    assert sorted(activity["quantity"]) == [2.0, 5.0, 1000.0]
    assert score_inputs(settings).notes == ()
    no_file = _settings(tmp_path, ledger_url, None, ENTERPRISES)
    assert read_manual_activity(no_file, load_registry(no_file.registry), METERED, None) is METERED
