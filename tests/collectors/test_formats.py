"""Vendor decoders on real public payloads (tests/data/payloads), fuzzed, and round-tripped with the
simulator's encoders."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.decode import parse_message
from collectors.formats import decode_dlt645_json, decode_shelly_gen2, decode_tasmota
from collectors.model import Reason
from collectors.status import status_state
from park.registry import GatewayFormat, parse_registry
from simulators.formats import encode
from tests.conftest import DATA

SAMPLES = json.loads((DATA / "payloads" / "mqtt_payload_samples.json").read_text())
EDGE = (DATA / "payloads" / "edgelogger_device_power_up_20250619.json").read_bytes()
TZ = "Asia/Shanghai"
CST = timezone(timedelta(hours=8))


def sample(kind: str, sample_id: str) -> bytes:
    payload = next(s for s in SAMPLES[kind] if s["id"] == sample_id)["payload"]
    return payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()


class TestTasmota:
    @pytest.mark.parametrize(
        ("sample_id", "expected"),
        [
            ("tasmota-ha-total-scalar", {"0": 1.2}),
            ("tasmota-ha-total-status-wrapper", {"0": 5.6}),
            ("tasmota-ha-total-list", {"0": 1.2, "1": 3.4}),
            ("tasmota-ha-total-dict", {"Phase1": 1.2, "Phase2": 3.4}),
            ("tasmota-ha-totaltariff", {"0": pytest.approx(4.6)}),
            ("tasmota-wattson-dual-meter-capture", {"0": 2.813, "1": 0.254}),
        ],
    )
    def test_samples(self, sample_id, expected):
        """Totals in kWh per channel or phase, as the sample's 'expected' says."""
        decoded = decode_tasmota(sample("tasmota", sample_id), TZ)
        assert decoded.problem is None
        assert {r.device_ref: r.value for r in decoded.readings} == expected

    def test_local_time_gets_the_park_zone(self):
        """Tasmota's Time has no zone (Tasmota#3629): it is read as park time."""
        decoded = decode_tasmota(sample("tasmota", "tasmota-wattson-dual-meter-capture"), TZ)
        assert decoded.readings[0].when == datetime(2026, 9, 18, 11, 19, 21, tzinfo=CST)


class TestShelly:
    def test_pro3em_uses_the_reported_total(self):
        """26289.57 Wh import and 131881.86 Wh export (not the sum of phases, 26289.56), ts in UTC."""
        decoded = decode_shelly_gen2(sample("shelly_gen2_rpc_notifystatus", "shelly-pro3em-emdata"))
        values = {r.register: r.value for r in decoded.readings}
        assert values == {"active_energy_import": 26289.57, "active_energy_export": 131881.86}
        assert decoded.readings[0].when == datetime(2025, 9, 5, 8, 18, 0, 210000, tzinfo=UTC)

    def test_channel_keyed_on_object_key(self):
        """em1data:1 is keyed by its key although its inner id says 0."""
        decoded = decode_shelly_gen2(sample("shelly_gen2_rpc_notifystatus", "shelly-pro3em-em1data"))
        assert {r.device_ref for r in decoded.readings} == {"em1data:1"}
        assert decoded.readings[0].value == 0.06

    def test_power_only_and_switch(self):
        """A power-only notification has no energy; a switch reports aenergy.total in Wh."""
        power = decode_shelly_gen2(sample("shelly_gen2_rpc_notifystatus", "shelly-pro3em-em-power"))
        assert power.readings == [] and power.problem is None
        switch = decode_shelly_gen2(sample("shelly_gen2_rpc_notifystatus", "shelly-1pm-switch-aenergy"))
        assert next((r.device_ref, r.register, r.value) for r in switch.readings) == (
            "switch:0",
            "active_energy_import",
            0,
        )


class TestDlt645Gateway:
    def test_edgelogger_message(self):
        """Ten meters, forward energy as kWh despite the 'kW' label, local time without zone."""
        decoded = decode_dlt645_json(EDGE, TZ)
        forward = {r.device_ref: r.value for r in decoded.readings if r.register == "active_energy_import"}
        assert len(forward) == 10
        assert forward["AHU34"] == 3274.53 and forward["1#除湿机"] == 178027.27
        assert decoded.readings[0].when == datetime(2025, 6, 19, 14, 58, 24, 881000, tzinfo=CST)
        assert {r.unit for r in decoded.readings} == {"kWh"}


def edge_registry(extra_gateway_format: str = "dlt645_json"):
    """A one-enterprise registry whose DL/T 645 gateway has two of the EdgeLogger sample's meters."""
    meter = {
        "gateway": "3-3-JC-1F",
        "enterprise": "X",
        "carrier": "grid_electricity",
        "role": "main",
        "unit": "kWh",
        "rollover_at": 1_000_000.0,
    }
    return parse_registry(
        {
            "version": "t",
            "park": {
                "id": "p",
                "name": "p",
                "metering_start": "2025-01-01",
                "latitude_deg": 31.8,
                "longitude_deg": 117.1,
            },
            "enterprises": [{"id": "X", "name": "x", "industry": "C39"}],
            "gateways": [{"id": "3-3-JC-1F", "enterprise": "X", "format": extra_gateway_format}],
            "meters": [
                {**meter, "id": "M-AHU34", "device_ref": "AHU34"},
                {**meter, "id": "M-DH1", "device_ref": "1#除湿机", "multiplier": 2.0},
            ],
        }
    )


class TestParseMessage:
    NOW = datetime(2025, 6, 20, tzinfo=UTC)

    def test_registry_mapping_and_multiplier(self):
        """Devices map to meters by device_ref; unknown devices are quarantined, not dropped."""
        parsed = parse_message("device/power/up/3-3-JC-1F", EDGE, edge_registry(), self.NOW)
        values = {r.meter: r.value for r in parsed.readings}
        assert values == {"M-AHU34": 3274.53, "M-DH1": 2 * 178027.27}
        assert {r.reason for r in parsed.rejections} == {Reason.UNKNOWN_METER}
        assert len(parsed.rejections) == 8

    def test_wrong_format_and_unknown_gateway(self):
        """A gateway must publish in its registered format, and must be registered."""
        wrong = parse_message("device/power/up/3-3-JC-1F", EDGE, edge_registry("tasmota"), self.NOW)
        assert [r.reason for r in wrong.rejections] == [Reason.WRONG_FORMAT]
        unknown = parse_message("device/power/up/nobody", EDGE, edge_registry(), self.NOW)
        assert [r.reason for r in unknown.rejections] == [Reason.UNKNOWN_GATEWAY]

    def test_missing_time_is_quarantined(self, demo_registry):
        """A Tasmota total without Time cannot be a register reading: quarantined as no_timestamp."""
        parsed = parse_message(
            "tele/tasmota-e04-lab/SENSOR",
            sample("tasmota", "tasmota-ha-total-scalar"),
            demo_registry,
            datetime(2026, 1, 1, tzinfo=UTC),
        )
        assert [r.reason for r in parsed.rejections] == [Reason.NO_TIMESTAMP]

    @pytest.mark.parametrize(
        ("payload", "state"),
        [(b"Online", "online"), (b"false", "offline"), (b'{"state": "online"}', "online"), (b"maybe", None)],
    )
    def test_status_payloads(self, payload, state):
        assert status_state(payload) == state


@pytest.mark.parametrize("fmt", [GatewayFormat.TASMOTA, GatewayFormat.SHELLY_GEN2, GatewayFormat.DLT645_JSON])
@settings(max_examples=50, deadline=None)
@given(
    value=st.floats(0, 999_999.99).map(lambda v: round(v, 2)),
    when=st.datetimes(datetime(2024, 1, 1), datetime(2027, 1, 1)).map(lambda t: t.replace(microsecond=0)),
)
def test_round_trip(demo_registry, fmt, value, when):
    """What the simulator encodes, the collector decodes to the same register value and time."""
    gateway = next(g for g in demo_registry.gateways if g.format is fmt)
    meter = demo_registry.meters_of_gateway(gateway.id)[0]
    local = when.replace(tzinfo=CST)
    payload = encode(fmt, gateway.id, local, {meter.device_ref: {"active_energy_import": value}})
    topic = {
        GatewayFormat.TASMOTA: f"tele/{gateway.id}/SENSOR",
        GatewayFormat.SHELLY_GEN2: f"{gateway.id}/events/rpc",
        GatewayFormat.DLT645_JSON: f"device/power/up/{gateway.id}",
    }[fmt]
    parsed = parse_message(topic, payload, demo_registry, local.astimezone(UTC) + timedelta(minutes=1))
    assert parsed.rejections == []
    (reading,) = [r for r in parsed.readings if r.register == "active_energy_import"]
    assert reading.raw_value == pytest.approx(value, abs=1e-9)
    assert reading.time == local


@pytest.mark.parametrize(
    "decode", [lambda p: decode_tasmota(p, TZ), decode_shelly_gen2, lambda p: decode_dlt645_json(p, TZ)]
)
@settings(max_examples=200, deadline=None)
@given(
    payload=st.binary(max_size=300)
    | st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=12),
        lambda c: (
            st.lists(c, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "ENERGY",
                        "Total",
                        "Time",
                        "params",
                        "ts",
                        "emdata:0",
                        "total_act",
                        "batch",
                        "device_id",
                        "metrics",
                        "energy",
                        "active",
                        "value",
                        "forward",
                        "method",
                        "StatusSNS",
                        "x",
                    ]
                ),
                c,
                max_size=5,
            )
        ),
        max_leaves=25,
    ).map(lambda v: json.dumps(v).encode())
)
def test_decoders_never_raise(decode, payload):
    """Any bytes at all give readings or a reason, never an exception."""
    decoded = decode(payload)
    assert decoded.problem is None or isinstance(decoded.problem[0], Reason)
