"""Units and factor sets against values derived by hand from the published parameters."""

from __future__ import annotations

import pytest
from numpy.testing import assert_allclose

from park.units import UnitError, convert
from scoring.factors import factor_set, factor_set_ids


class TestConvert:
    def test_electricity(self):
        """kWh, MWh and Wh convert by powers of 1000."""
        assert_allclose(convert(1500.0, "kWh", "MWh"), 1.5)
        assert_allclose(convert(2.5, "MWh", "kWh"), 2500.0)
        assert_allclose(convert(26289.57, "Wh", "kWh"), 26.28957)

    def test_gas_volume(self):
        """10^4 Nm3 is ten thousand Nm3, whatever way it is written."""
        assert_allclose(convert(21_000.0, "Nm3", "10^4 Nm3"), 2.1)
        assert_allclose(convert(1.0, "1e4Nm3", "Nm3"), 10_000.0)
        assert_allclose(convert(3.0, "万Nm3", "Nm3"), 30_000.0)

    def test_metered_m3_needs_correction(self):
        """m3 at line conditions never becomes Nm3 without an explicit correction factor."""
        with pytest.raises(UnitError, match="m3_to_nm3"):
            convert(100.0, "m3", "Nm3")
        assert_allclose(convert(100.0, "m3", "Nm3", m3_to_nm3=0.95), 95.0)

    def test_dimension_mismatch(self):
        """Energy cannot become volume, and unknown units are named in the error."""
        with pytest.raises(UnitError, match="cannot convert"):
            convert(1.0, "kWh", "Nm3")
        with pytest.raises(UnitError, match="unknown unit 'kW'"):
            convert(1.0, "kW", "kWh")


class TestFactorSets:
    def test_ids(self):
        """The issue's ids and the ETS-reporting series are all there."""
        expected = {
            "cn-national-2021",
            "cn-national-2022",
            "cn-national-2023",
            "cn-east-2022",
            "cn-east-2023",
            "cn-anhui-2022",
            "cn-ets-2022",
        }
        assert expected <= set(factor_set_ids())

    @pytest.mark.parametrize(
        ("set_id", "location", "residual"),
        [  # source: MEE/NBS announcements, docs: domain reference §4.1
            ("cn-national-2021", 0.5568, 0.5942),
            ("cn-national-2022", 0.5366, 0.5856),
            ("cn-national-2023", 0.5306, 0.6096),
            ("cn-east-2022", 0.5617, 0.5856),
            ("cn-east-2023", 0.5500, 0.6096),
            ("cn-anhui-2022", 0.6782, 0.5856),
            ("cn-ets-2022", 0.5703, 0.5856),
        ],
    )
    def test_electricity_values(self, set_id, location, residual):
        """Published grid factors, as published, each with a source text."""
        fs = factor_set(set_id)
        assert fs.electricity.location_t_per_mwh == location
        assert fs.electricity.residual_t_per_mwh == residual
        assert "MEE" in fs.electricity.location_source

    def test_natural_gas_computed_not_stored(self):
        """389.31 GJ/10^4 Nm3 x 15.3 tC/TJ x 0.99 x 44/12 = 21.62188809 t/10^4 Nm3 (by hand)."""
        gas = factor_set("cn-national-2023").fuels["natural_gas"]
        assert_allclose(gas.factor_t_per_unit, 389.31 * 0.0153 * 0.99 * 44 / 12, rtol=1e-15)
        assert_allclose(gas.factor_t_per_unit, 21.62188809, rtol=1e-9)

    @pytest.mark.parametrize(
        ("fuel", "expected"),  # docs: domain reference §4.2, EF column (3 decimals)
        [
            ("diesel", 3.096),
            ("gasoline", 2.925),
            ("lpg", 3.101),
            ("fuel_oil", 3.170),
            ("coal_bituminous", 1.742),
            ("coke", 2.860),
        ],
    )
    def test_fuel_factors(self, fuel, expected):
        """Computed factors round to the published three-decimal table."""
        assert round(factor_set("cn-national-2021").fuels[fuel].factor_t_per_unit, 3) == expected

    def test_unknown_set(self):
        """An unknown id names the known ones."""
        with pytest.raises(KeyError, match="cn-national-2023"):
            factor_set("cn-mars-2023")


class TestResidualExplained:
    def test_a_residual_below_the_location_factor_must_say_why(self):
        """cn-anhui-2022 uses the national residual (0.5856) below Anhui's 0.6782: the set says so, and a
        set that does not is refused."""
        from pydantic import ValidationError

        from scoring.factors import ElectricityFactor

        anhui = factor_set("cn-anhui-2022").electricity
        assert anhui.residual_t_per_mwh < anhui.location_t_per_mwh
        assert "national" in anhui.residual_note and "lower than location-based" in anhui.residual_note
        fields = anhui.model_dump() | {"residual_note": ""}
        with pytest.raises(ValidationError, match="residual_note must say which residual the set uses and why"):
            ElectricityFactor(**fields)

    def test_the_report_names_the_residual_and_why(self):
        from reports.html import factor_lines

        text = " ".join(" ".join(line) for line in factor_lines(factor_set("cn-anhui-2022")))
        assert "No provincial residual mix is published" in text
