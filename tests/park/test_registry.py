"""The registry: the demo park's shape, and errors that name the file, the entry and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from park.registry import Carrier, RegistryError, load_registry
from park.settings import DEMO_REGISTRY


def write(tmp_path: Path, mutate) -> Path:
    data = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    return path


class TestDemoRegistry:
    def test_shape(self, demo_registry):
        """At least 10 enterprises in 3 industries, 50 meters with gas and PV, 4 near-zero workshops."""
        assert len(demo_registry.enterprises) >= 10
        assert len({e.industry for e in demo_registry.enterprises}) >= 3
        assert len(demo_registry.meters) >= 50
        carriers = {m.carrier for m in demo_registry.meters}
        assert {Carrier.NATURAL_GAS, Carrier.PV_GENERATION, Carrier.HEAT} <= carriers
        assert sum(w.near_zero is not None for w in demo_registry.workshops) >= 4
        assert demo_registry.park.target_of(2026).emissions_cap_tco2 == 190_000
        assert demo_registry.park.target_of(2024) is None


class TestErrors:
    def test_field_error_names_entry(self, tmp_path):
        """A bad multiplier is reported with the file, the meter's index and id, and the field."""
        path = write(tmp_path, lambda d: d["meters"][3].update(multiplier=0))
        with pytest.raises(RegistryError) as err:
            load_registry(path)
        assert f"{path}: meters[3] (id 'E01-S-UT'): multiplier: Input should be greater than 0" in str(err.value)

    def test_gateway_of_another_enterprise(self, tmp_path):
        """A meter whose gateway belongs to another enterprise is refused."""
        path = write(tmp_path, lambda d: d["meters"][0].update(gateway="gw-e02-1"))
        with pytest.raises(
            RegistryError,
            match=r"meters\[0\] \(id 'E01-M-GRID'\): gateway: gateway 'gw-e02-1' "
            r"belongs to enterprise 'E02'",
        ):
            load_registry(path)

    def test_duplicate_ids_and_unknown_refs(self, tmp_path):
        """Every problem is listed, not only the first."""

        def mutate(d):
            d["meters"][1]["id"] = d["meters"][0]["id"]
            d["workshops"][0]["enterprise"] = "E99"

        with pytest.raises(RegistryError) as err:
            load_registry(write(tmp_path, mutate))
        text = str(err.value)
        assert "meters[1] (id 'E01-M-GRID'): id: duplicate id, first at meters[0]" in text
        assert "workshops[0] (id 'E01-WS-FAB'): enterprise: unknown enterprise 'E99'" in text

    def test_unit_must_fit_carrier(self, tmp_path):
        """A gas meter in kWh is refused."""

        def mutate(d):
            gas = next(m for m in d["meters"] if m["carrier"] == "natural_gas")
            gas["unit"] = "kWh"

        with pytest.raises(RegistryError, match="unit 'kWh' does not measure natural_gas"):
            load_registry(write(tmp_path, mutate))

    def test_a_year_with_two_targets(self, tmp_path):
        """The park's caps: one per year, each with its source."""
        path = write(tmp_path, lambda d: d["park"]["targets"].append(dict(d["park"]["targets"][0])))
        with pytest.raises(RegistryError, match=r"park: targets: a year has two caps \(\[2025\]\)"):
            load_registry(path)
        path = write(tmp_path, lambda d: d["park"]["targets"][0].pop("source"))
        with pytest.raises(RegistryError, match=r"targets.*source"):
            load_registry(path)

    def test_not_yaml(self, tmp_path):
        path = tmp_path / "r.yaml"
        path.write_text("park: [unclosed")
        with pytest.raises(RegistryError, match="not valid YAML"):
            load_registry(path)


def test_metering_start_is_needed_to_compute_months_not_to_ingest(tmp_path):
    """A registry without park.metering_start is valid (a collector needs none, e.g. a benchmark's
    registry), but computing a month with it is refused with one line saying what to add."""
    import pytest
    import yaml

    from park.month import Month
    from park.registry import load_registry
    from park.settings import DEMO_REGISTRY
    from pipeline.checks import WrongInputError, check_month

    document = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    del document["park"]["metering_start"]
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    registry = load_registry(path)
    assert registry.park.metering_start is None
    with pytest.raises(WrongInputError, match=r"the registry has no park\.metering_start"):
        check_month(registry, Month.of("2026-01", registry.park.timezone))


def test_pilot_status_and_dates_are_kept_and_checked(tmp_path):
    """The baseline database records each enterprise's place in the pilot; inconsistent dates are refused
    naming the enterprise."""
    from datetime import date

    from park.registry import PilotStatus

    ok = write(
        tmp_path,
        lambda d: (
            d["enterprises"][0].update(pilot_status="pilot", pilot_from="2026-01-01"),
            d["enterprises"][1].update(pilot_status="exited", pilot_from="2025-01-01", pilot_until="2026-06-30"),
        ),
    )
    first, second = load_registry(ok).enterprises[:2]
    assert (first.pilot_status, first.pilot_from, first.pilot_until) == (PilotStatus.PILOT, date(2026, 1, 1), None)
    assert second.pilot_status == PilotStatus.EXITED and second.pilot_until == date(2026, 6, 30)
    refused = {
        "pilot_until 2025-12-31 is before pilot_from 2026-01-01": dict(
            pilot_status="exited", pilot_from="2026-01-01", pilot_until="2025-12-31"
        ),
        "pilot_status pilot needs pilot_from": dict(pilot_status="pilot"),
        "pilot_status exited needs pilot_until": dict(pilot_status="exited", pilot_from="2026-01-01"),
        "pilot_until is the last day of an exited pilot": dict(
            pilot_status="pilot", pilot_from="2026-01-01", pilot_until="2026-02-01"
        ),
        "pilot_status": dict(pilot_status="member"),
    }
    for says, fields in refused.items():
        bad = write(tmp_path, lambda d, fields=fields: d["enterprises"][1].update(fields))
        with pytest.raises(RegistryError) as err:
            load_registry(bad)
        assert "enterprises[1] (id 'E02')" in str(err.value) and says in str(err.value), str(err.value)
