"""What settlement records as a result version (pipeline.annual.record_result_version): the rows of
CREDITS_ANNUAL frozen with the workshops holding a near-zero target, a new version only when they
change, and the issuance the ``ledger.issuance`` setting gives (reviewed: proposed, nothing booked)."""

from __future__ import annotations

import math
from importlib import resources

import pandas as pd
import pytest

from ledger.book import Ledger
from ledger.results import rows_of, versions
from park.registry import load_registry
from park.settings import LedgerSettings, Settings
from pipeline.annual import record_result_version

TZ = "Asia/Shanghai"


@pytest.fixture
def registry():
    return load_registry(resources.files("park") / "data" / "demo_registry.yaml")


def credits_frame() -> pd.DataFrame:
    """Settled rows as settle_year has them: E01 (a workshop with a near-zero target) with credits, E02
    with a deficit, E05 without value added (grade and credits NaN)."""
    return pd.DataFrame(
        {
            "enterprise": ["E01", "E02", "E05"],
            "industry": ["C39", "C39", "C38"],
            "grade": [2.0, 4.0, math.nan],
            "rating": ["B", "D", None],
            "rating_score": [75.0, 45.0, math.nan],
            "credits_tco2": [12.345678, -3.5, math.nan],
            "emissions_tco2": [100.0, 200.0, 50.0],
            "value_added_10k_cny": [500.0, 400.0, math.nan],
            "value_added_used_10k_cny": [500.0, 400.0, math.nan],
            "intensity_t_per_10k_cny": [0.2, 0.5, math.nan],
            "benchmark_t_per_10k_cny": [0.22469, 0.49125, math.nan],
            "inputs_sha256": ["a" * 64, "b" * 64, "c" * 64],
            "policy_version": ["2026.1"] * 3,
            "factor_set": ["cn-national-2023"] * 3,
            "note": ["", "", "no value added"],
        }
    )


@pytest.mark.parametrize("mode, issuance", [("reviewed", "proposed"), ("on_settlement", "on_settlement")])
def test_settlement_records_a_version_with_the_issuance_of_the_mode(registry, tmp_path, mode, issuance):
    settings = Settings(ledger=LedgerSettings(issuance=mode), run_dir=tmp_path)
    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}", TZ) as ledger:
        version, new = record_result_version(ledger, registry, 2026, credits_frame(), settings)
        assert (version.version, version.state, version.issuance, new) == (1, "draft", issuance, True)
        assert version.deadline == settings.ledger.deadline_for(2026)
        again, new = record_result_version(ledger, registry, 2026, credits_frame(), settings)
        assert (again.id, new) == (version.id, False)
        changed = credits_frame()
        changed.loc[1, "credits_tco2"] = -3.25
        second, new = record_result_version(ledger, registry, 2026, changed, settings)
        assert (second.version, new) == (2, True)
        with ledger.engine.connect() as conn:
            assert [v.state for v in versions(conn, 2026)] == ["draft", "superseded"]
            rows = {r.enterprise_id: r for r in rows_of(conn, version.id)}
        nearzero = sorted(w.id for w in registry.workshops if w.enterprise == "E01" and w.near_zero is not None)
        assert nearzero and rows["E01"].nearzero_workshops == ",".join(nearzero)
        assert (rows["E01"].grade, rows["E01"].credits_t, rows["E01"].rating) == (2, 12.345678, "B")
        assert (rows["E05"].grade, rows["E05"].credits_t, rows["E05"].rating, rows["E05"].note) == (
            None,
            None,
            None,
            "no value added",
        )
        assert rows["E02"].nearzero_workshops == ""
        assert len(ledger.balances().query("enterprise_id != ''")) == 0  # recording a version books nothing
