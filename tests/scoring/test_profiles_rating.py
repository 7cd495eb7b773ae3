"""Rating adjustments from reviewed facts: bonuses with a cap, a deduction, a forced rating for falsified data."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from numpy.testing import assert_allclose

from scoring.credits import score_credits
from scoring.policy import load_policy
from scoring.profiles import Fact, Facts
from scoring.rating import rate

POLICY = load_policy()


def reviewed(enterprise: str, name: str, value: object, year: int = 2023) -> Fact:
    return Fact.model_validate(
        {
            "enterprise": enterprise,
            "year": year,
            "fact": name,
            "value": value,
            "reviewed_by": "park energy office",
            "reviewed_on": dt.date(2024, 3, 1),
            "evidence": "test fixture",
        }
    )


def credits() -> pd.DataFrame:
    """Four C39 enterprises, 12 months of 2023: intensities 1.0, 2.0, 1.5, 1.5 against the mean 6/4 = 1.5."""
    rows = []
    for ent, total in {"A": 100.0, "B": 200.0, "C": 150.0, "D": 150.0}.items():
        rows += [
            {"enterprise": ent, "workshop": "", "period": f"2023-{m:02d}", "total_location_tco2": total / 12}
            for m in range(1, 13)
        ]
    firms = pd.DataFrame(
        [(e, "C39", 2023, 100.0) for e in "ABCD"], columns=["enterprise", "industry", "year", "value_added_10k_cny"]
    )
    return score_credits(pd.DataFrame(rows), firms, 2023, 2023, POLICY)


def rated(facts: Facts | None) -> pd.DataFrame:
    return rate(
        credits(), POLICY, green_share=pd.Series(dtype=float), previous_intensity=pd.Series(dtype=float), facts=facts
    ).set_index("enterprise")


def test_policy_cites_every_adjustment():
    rules = POLICY.rating.adjustments
    assert rules is not None
    assert (
        rules.green_factory_bonus.national,
        rules.green_factory_bonus.provincial,
        rules.green_factory_bonus.city,
    ) == (
        5,
        3,
        2,
    )
    assert (rules.energy_audit_bonus, rules.bonus_cap, rules.major_incident_deduction) == (1, 5, 10)
    assert rules.falsified_data_rating == "E"
    for item, source in rules.sources.items():
        assert source.startswith(("published:", "park's own choice")), item
    assert "分别加5分、3分、2分" in rules.sources["green_factory_bonus"]
    assert "扣10分" in rules.sources["major_incident_deduction"]


def test_adjustments_by_hand():
    base = rated(None)
    facts = Facts(
        facts=[
            reviewed("A", "green_factory", "provincial"),  # +3
            reviewed("A", "energy_audit", True),  # +1 -> +4
            reviewed("B", "green_factory", "national"),  # +5
            reviewed("B", "energy_audit", True),  # +1 -> 6, capped at 5
            reviewed("C", "major_incident_last_year", True),  # -10
            reviewed("D", "data_falsified", True),  # forced E
            reviewed("D", "green_factory", "city", year=2022),  # another year: no effect
        ]
    )
    out = rated(facts)
    assert_allclose(out.loc["A", "rating_score"], base.loc["A", "rating_score"] + 4, rtol=1e-12)
    assert_allclose(out.loc["B", "rating_score"], base.loc["B", "rating_score"] + 5, rtol=1e-12)
    assert_allclose(out.loc["C", "rating_score"], base.loc["C", "rating_score"] - 10, rtol=1e-12)
    assert_allclose(out.loc["D", "rating_score"], base.loc["D", "rating_score"], rtol=1e-12)
    assert out.loc["D", "rating"] == "E" and base.loc["D", "rating"] != "E"
    assert out.loc["A", "rating_reasons"].endswith("; green factory (provincial) +3; energy audit +1")
    assert "bonuses capped at 5" in out.loc["B", "rating_reasons"]
    assert "major incident last year -10" in out.loc["C", "rating_reasons"]
    assert "data found falsified: rating E" in out.loc["D", "rating_reasons"]


@pytest.mark.parametrize("facts", [None, Facts()])
def test_without_facts_nothing_changes(facts):
    out = rated(facts)
    assert not out["rating_reasons"].str.contains(";").any()


def test_policy_gives_the_ledger_its_cap_and_validity():
    """The national ETS rule: external units cover at most 5 % of the obligation; validity is the park's choice."""
    ledger = POLICY.ledger
    assert ledger is not None
    assert ledger.external_units_cap == 0.05
    assert "抵销比例不得超过应清缴碳排放配额的5%" in ledger.external_units_cap_source
    assert ledger.credit_validity_years == 3
    assert ledger.credit_validity_source.startswith("park's own choice")
