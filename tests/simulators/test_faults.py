"""Each fault does what the ground truth says, and the pipeline's own rules see it as intended."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from collectors.native import parse_native
from scoring.registers import RegisterSpec, consumption_in_window, meter_window
from simulators.faults import FaultSpecError, parse_faults
from simulators.replay import load_interval_kwh
from simulators.run import simulate_run
from simulators.truth import interval_truth, registry_with_events
from tests.conftest import DATA

TZ = ZoneInfo("Asia/Shanghai")
START, END = datetime(2026, 4, 1, tzinfo=TZ), datetime(2026, 4, 4, tzinfo=TZ)


def run(registry, spec: str, seed: int = 3):
    return simulate_run(registry, START, END, pd.Timedelta("15min"), seed, parse_faults(spec))


def window_of(run_, meter_id: str, register: str):
    """The month-window rule applied to what was published for one meter register."""
    meter = run_.park.registry.meter_by_id[meter_id]
    column = run_.published[(meter_id, register)].dropna()
    spec = RegisterSpec(meter.multiplier, meter.rollover_at, 900 * 10**9, meter.max_per_hour)
    times = column.index.as_unit("ns").asi8
    return consumption_in_window(times, column.to_numpy(), spec, int(times[0]), int(times[-1]))


def truth_total(run_, meter_id: str, register: str) -> float:
    t = interval_truth(run_.park)
    return float(t[(t["meter"] == meter_id) & (t["register"] == register)]["consumption"].sum())


class TestSpec:
    def test_parse(self):
        assert parse_faults("gap:2, reset ,malformed:8") == {"gap": 2, "reset": 1, "malformed": 8}

    @pytest.mark.parametrize(
        ("spec", "message"), [("earthquake:1", "unknown fault 'earthquake'"), ("gap:two", "not a whole number")]
    )
    def test_errors(self, spec, message):
        with pytest.raises(FaultSpecError, match=message):
            parse_faults(spec)


class TestRegisterFaults:
    def test_gap_energy_conserved(self, demo_registry):
        """A gap removes readings, but the registers around it carry its energy: total unchanged."""
        r = run(demo_registry, "gap:1")
        (fault,) = r.faults
        w = window_of(r, fault.meter, fault.register)
        assert w.gaps == 1 and w.estimated_intervals == fault.detail["missing_readings"]
        assert w.quantity == pytest.approx(truth_total(r, fault.meter, fault.register), abs=1e-6)

    def test_rollover_is_bridged(self, demo_registry):
        """The register wraps once; the pipeline's rule bridges it to the exact truth."""
        r = run(demo_registry, "rollover:1")
        (fault,) = r.faults
        w = window_of(r, fault.meter, fault.register)
        assert (w.rollovers, w.resets) == (1, 0)
        assert w.quantity == pytest.approx(truth_total(r, fault.meter, fault.register), abs=1e-6)

    def test_reset_loses_exactly_the_unbookable_interval(self, demo_registry):
        """A reset is flagged; the metered total falls short of the truth by the recorded unbookable energy."""
        r = run(demo_registry, "reset:1")
        (fault,) = r.faults
        w = window_of(r, fault.meter, fault.register)
        assert (w.resets, w.rollovers) == (1, 0)
        expected = truth_total(r, fault.meter, fault.register) - fault.detail["unbookable"]
        assert w.quantity == pytest.approx(expected, rel=1e-9)

    def test_replacement_bridged_with_the_registry_event(self, demo_registry):
        """With the replacement recorded in the registry, the series is split and the total is exact;
        without it, the drop is a reset and the pair across the change is not booked."""
        r = run(demo_registry, "replacement:1")
        (fault,) = r.faults
        meter = registry_with_events(demo_registry, r.registry_events).meter_by_id[fault.meter]
        column = r.published[(fault.meter, fault.register)].dropna()
        times = column.index.as_unit("ns").asi8
        w = meter_window(meter, times, column.to_numpy(), int(times[0]), int(times[-1]))
        assert (w.replacements, w.resets) == (1, 0)
        assert w.quantity == pytest.approx(truth_total(r, fault.meter, fault.register), abs=1e-6)
        assert window_of(r, fault.meter, fault.register).resets == 1

    def test_replacement_event(self, demo_registry):
        """A meter change drops the register; the event names the old final and new initial readings."""
        r = run(demo_registry, "replacement:1")
        (event,) = r.registry_events
        series = r.published[(event["meter"], r.faults[0].register)]
        at = pd.Timestamp(event["at"])
        assert series[at] == event["old_final_reading"]
        after = series[series.index > at].iloc[0]
        assert after >= event["new_initial_reading"] and after < event["old_final_reading"]


class TestMessageFaults:
    def test_duplicates_and_order(self, demo_registry):
        """Duplicates repeat a message; out-of-order swaps two of one gateway; nothing is lost."""
        clean = run(demo_registry, "")
        r = run(demo_registry, "duplicate:5,out_of_order:3")
        assert len(r.plan) == len(clean.plan) + 5
        assert {m.payload for m in r.plan} == {m.payload for m in clean.plan}
        assert sum(m.note == "duplicate" for m in r.plan) == 5

    def test_late_messages_sent_after_the_outage(self, demo_registry):
        """Stored messages go out after the outage, behind newer messages of other gateways."""
        r = run(demo_registry, "late:1")
        (fault,) = r.faults
        late = [i for i, m in enumerate(r.plan) if m.note == "late"]
        assert len(late) == fault.detail["messages"] > 0
        first_late = r.plan[late[0]]
        assert any(m.due > first_late.due for m in r.plan[: late[0]])

    def test_malformed_get_the_collectors_reasons(self, demo_registry):
        """Every malformed payload is quarantined by the real parser with the reason the truth expects."""
        r = run(demo_registry, "malformed:8,spoof:2")
        seen: dict[str, int] = {}
        now = datetime(2026, 4, 10, tzinfo=UTC)
        for message in r.plan:
            if message.note.startswith(("malformed", "spoof:meter")):
                parsed = parse_native(message.topic, message.payload, demo_registry, now)
                assert parsed.readings == []
                for rejection in parsed.rejections:
                    seen[rejection.reason.value] = seen.get(rejection.reason.value, 0) + 1
        assert seen == r.expected_quarantine
        assert r.expected_refused == 1
        assert len(set(r.expected_quarantine)) == 8  # 7 malformed kinds + spoofed


def test_replay_drives_a_meter(demo_registry):
    """A multiplier-1 meter replaying the steel plant reads exactly the file's kWh (3-15 January 2018)."""
    data = load_interval_kwh(DATA / "steel_industry_data.csv")
    tz = ZoneInfo("Asia/Shanghai")
    r = simulate_run(
        demo_registry,
        datetime(2018, 1, 3, tzinfo=tz),
        datetime(2018, 1, 15, tzinfo=tz),
        pd.Timedelta("15min"),
        1,
        {},
        {"E01-S-FAB": data},
    )
    expected = data[(data["end"] > "2018-01-03") & (data["end"] <= "2018-01-15")]["energy_kwh"].sum()
    assert demo_registry.meter_by_id["E01-S-FAB"].multiplier == 1.0
    assert truth_total(r, "E01-S-FAB", "active_energy_import") == pytest.approx(expected, abs=1e-6)
    assert np.isfinite(r.published.to_numpy()).all()
    native = next(m for m in r.plan if m.topic.startswith("carbon/v1/"))
    assert json.loads(native.payload)["readings"]
