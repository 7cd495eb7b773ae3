"""GB/T 32150 accounting against hand-derived values (factors: cn-national-2023, MEE/NBS)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from scoring.accounting import ACCOUNTING_UNIT, Source, account, emissions_by_source
from scoring.factors import factor_set

NAT23 = factor_set("cn-national-2023")  # 0.5306 location, 0.6096 residual, gas 21.62188809, heat 0.11
GAS_T_PER_10K_NM3 = 389.31 * 0.0153 * 0.99 * 44 / 12


def activity(*rows: tuple[str, float, str], enterprise: str = "E1", period: str = "2023-05") -> pd.DataFrame:
    return pd.DataFrame(
        [{"enterprise": enterprise, "period": period, "source": s, "quantity": a, "unit": u} for s, a, u in rows]
    )


def one(rows: pd.DataFrame) -> pd.Series:
    result = account(rows, NAT23)
    assert len(result) == 1
    return result.iloc[0]


class TestAccount:
    def test_kwh_and_mwh_agree(self):
        """2 MWh and 2000 kWh are the same 2 x 0.5306 = 1.0612 t."""
        a = one(activity(("grid_electricity", 2.0, "MWh")))
        b = one(activity(("grid_electricity", 2000.0, "kWh")))
        assert_allclose([a.scope2_location_tco2, b.scope2_location_tco2], [1.0612, 1.0612], rtol=1e-12)

    def test_nm3_and_10k_nm3_agree(self):
        """10,000 Nm3 is 1 x 10^4 Nm3 → 21.62188809 t of Scope 1."""
        a = one(activity(("natural_gas", 10_000.0, "Nm3")))
        b = one(activity(("natural_gas", 1.0, "10^4 Nm3")))
        assert_allclose([a.scope1_tco2, b.scope1_tco2], [GAS_T_PER_10K_NM3] * 2, rtol=1e-12)
        assert a.scope2_location_tco2 == 0.0

    def test_market_based_with_certificates(self):
        """10 MWh grid, 4 MWh certified: location 10 x 0.5306, market 6 x 0.6096."""
        r = one(activity(("grid_electricity", 10_000.0, "kWh"), ("green_electricity_certified", 4_000.0, "kWh")))
        assert_allclose(r.scope2_location_tco2, 5.306, rtol=1e-12)
        assert_allclose(r.scope2_market_tco2, 3.6576, rtol=1e-12)

    def test_certificates_beyond_consumption(self):
        """Certificates for more than the grid draw give market-based 0, never negative."""
        r = one(activity(("grid_electricity", 1_000.0, "kWh"), ("green_electricity_certified", 1_500.0, "kWh")))
        assert r.scope2_market_tco2 == 0.0
        assert_allclose(r.scope2_location_tco2, 0.5306, rtol=1e-12)

    def test_heat_and_exports(self):
        """(100 - 30) GJ x 0.11 = 7.7 t; 1 MWh exported electricity is deducted: (5 - 1) x 0.5306."""
        r = one(
            activity(
                ("purchased_heat", 100.0, "GJ"),
                ("exported_heat", 30.0, "GJ"),
                ("grid_electricity", 5.0, "MWh"),
                ("exported_electricity", 1.0, "MWh"),
            )
        )
        assert_allclose(r.scope2_location_tco2, 7.7 + 4 * 0.5306, rtol=1e-12)
        assert_allclose(r.scope2_market_tco2, 7.7 + 4 * 0.6096, rtol=1e-12)

    def test_pv(self):
        """Self-consumed PV is zero; exported PV is a memo (2 MWh x 0.5306) and leaves Scope 2 alone."""
        r = one(
            activity(
                ("grid_electricity", 3.0, "MWh"),
                ("pv_self_consumed", 5.0, "MWh"),
                ("pv_exported", 2.0, "MWh"),
            )
        )
        assert_allclose(r.scope2_location_tco2, 3 * 0.5306, rtol=1e-12)
        assert_allclose(r.pv_exported_avoided_tco2, 1.0612, rtol=1e-12)

    @pytest.mark.parametrize(
        ("fuel", "ncv", "cc", "of"),  # NDRC defaults, docs: domain reference §4.2
        [("diesel", 42.652, 20.2, 0.98), ("coke", 28.435, 29.5, 0.93), ("lpg", 50.179, 17.2, 0.98)],
    )
    def test_fuels(self, fuel, ncv, cc, of):
        """2 t of fuel = 2 x NCV x CC/1000 x OF x 44/12."""
        r = one(activity((fuel, 2.0, "t")))
        assert_allclose(r.scope1_tco2, 2 * ncv * cc / 1000 * of * 44 / 12, rtol=1e-12)
        assert_allclose(r.total_location_tco2, r.scope1_tco2)

    def test_workshops_are_separate_rows(self):
        """Workshop rows are breakdowns: accounted on their own rows, not added to the enterprise's."""
        rows = activity(("grid_electricity", 10.0, "MWh"))
        ws = activity(("grid_electricity", 4.0, "MWh")).assign(workshop="W1")
        result = account(pd.concat([rows.assign(workshop=""), ws]), NAT23).set_index("workshop")
        assert_allclose(result.loc["", "total_location_tco2"], 5.306, rtol=1e-12)
        assert_allclose(result.loc["W1", "total_location_tco2"], 4 * 0.5306, rtol=1e-12)


def test_steel_plant_monthly(steel):
    """UCI steel plant 2018, summed by month, scored with cn-national-2023: tCO2 = kWh/1000 x 0.5306."""
    steel = steel.assign(period=(steel["end"] - pd.Timedelta(minutes=15)).dt.strftime("%Y-%m"))
    monthly = steel.groupby("period")["energy_kwh"].sum()
    assert len(monthly) == 12 and len(steel) == 35_040
    rows = pd.DataFrame(
        {
            "enterprise": "STEEL",
            "period": monthly.index,
            "source": "grid_electricity",
            "quantity": monthly.values,
            "unit": "kWh",
        }
    )
    result = account(rows, NAT23).set_index("period")
    assert_allclose(result["scope2_location_tco2"], monthly / 1000 * 0.5306, rtol=1e-12)
    # The file's own CO2 column is rounded per interval and must not be what we reproduce.
    assert_allclose(result["scope2_location_tco2"].sum(), steel["energy_kwh"].sum() / 1000 * 0.5306, rtol=1e-12)


class TestBySource:
    """Every tonne of :func:`account` traced to its source, quantity and factor (the platform's
    "emissions by source"), against the hand computations above."""

    def test_lines_with_their_factors(self):
        """(100 − 30) GJ heat × 0.11; (5 − 1) MWh grid × 0.5306, market (5 − 3 certified − 1) × 0.6096;
        1 × 10^4 Nm3 gas × 389.31 × 0.0153 × 0.99 × 44/12."""
        rows = activity(
            ("purchased_heat", 100.0, "GJ"),
            ("exported_heat", 30.0, "GJ"),
            ("grid_electricity", 5.0, "MWh"),
            ("exported_electricity", 1.0, "MWh"),
            ("green_electricity_certified", 3.0, "MWh"),
            ("natural_gas", 10_000.0, "Nm3"),
            ("pv_self_consumed", 2.0, "MWh"),
        )
        lines = emissions_by_source(account(rows, NAT23), NAT23).set_index("source")
        assert list(lines.index) == ["natural_gas", "grid_electricity", "purchased_heat"]  # PV emits nothing
        gas, grid, heat = lines.loc["natural_gas"], lines.loc["grid_electricity"], lines.loc["purchased_heat"]
        assert (gas.scope, gas.quantity, gas.unit) == ("scope1", 1.0, "10^4 Nm3")
        assert_allclose([gas.tco2_location, gas.tco2_market], [GAS_T_PER_10K_NM3] * 2, rtol=1e-12)
        assert (grid.scope, grid.quantity, grid.unit) == ("scope2", 4.0, "MWh")
        assert (grid.factor_location_t_per_unit, grid.factor_market_t_per_unit) == (0.5306, 0.6096)
        assert_allclose([grid.tco2_location, grid.tco2_market], [4 * 0.5306, 1 * 0.6096], rtol=1e-12)
        assert (heat.quantity, heat.factor_location_t_per_unit) == (70.0, 0.11)
        assert_allclose(heat.tco2_location, 7.7, rtol=1e-12)
        assert "GB" in gas.factor_source or "指南" in gas.factor_source  # each line names its factor's source

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from([s.value for s in Source]),
                st.floats(min_value=0, max_value=1e7, allow_nan=False),
                st.sampled_from(["", "W1"]),
            ),
            min_size=1,
            max_size=12,
        )
    )
    def test_lines_add_up_to_the_scopes(self, rows):
        """For any activity, the lines of a scope add up to account()'s figure for it (both bases)."""
        frame = pd.DataFrame(
            [
                {"enterprise": "E1", "period": "2023-05", "workshop": w, "source": s, "quantity": q, "unit": UNIT[s]}
                for s, q, w in rows
            ]
        )
        accounted = account(frame, NAT23)
        lines = emissions_by_source(accounted, NAT23)
        for row in accounted.to_dict("records"):
            mine = lines[lines["workshop"] == row["workshop"]]
            for scope, location, market in (
                ("scope1", row["scope1_tco2"], row["scope1_tco2"]),
                ("scope2", row["scope2_location_tco2"], row["scope2_market_tco2"]),
            ):
                of_scope = mine[mine["scope"] == scope]
                assert_allclose(of_scope["tco2_location"].sum(), location, rtol=1e-9, atol=1e-9)
                assert_allclose(of_scope["tco2_market"].sum(), market, rtol=1e-9, atol=1e-9)


UNIT = {s.value: ACCOUNTING_UNIT[s] for s in Source}
