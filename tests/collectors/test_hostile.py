"""Trust under hostile and faulty input, one test (or a few) per class of failure the review found,
in process: no broker, no InfluxDB (``tests/integration/test_hostile_input.py`` runs them on the
real services).

1. A single message stopped ingestion for good: isolation per message, JSON limits, supervised threads.
2. The sink's fallback died when InfluxDB failed (``tests/collectors/test_sink.py``).
3. Amplification: rows bounded per message and per gateway; tags only from the registry.
4. History rewritten silently: conflicts quarantined; register bounds from the registry.
5. seq bounded to 63 bits; a status's ``at`` within the bounds of a reading's time.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import UTC, datetime

import pytest

import collectors.decode
from collectors.budget import GATEWAY_BURST, MAX_ROWS_PER_MESSAGE, QuarantineBudget
from collectors.checks import MAX_AGE
from collectors.conflicts import ASK_AGAIN_S, ConflictGuard
from collectors.formats import MAX_DEPTH, MAX_READINGS, json_depth, load_json
from collectors.handler import Received, handle
from collectors.model import Reason
from collectors.points import UniqueClock
from collectors.service import Collector
from collectors.spool import Spool
from collectors.supervise import Supervisor
from park.lineprotocol import to_ns
from park.registry import GatewayFormat, RegistryError, parse_registry
from park.settings import InfluxSettings, MqttSettings, Settings
from park.store import InfluxError
from park.topics import layout
from tests.collectors.influx_fake import FakeInfluxDB

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RECEIVED_NS = to_ns(NOW)
NATIVE = layout(GatewayFormat.NATIVE)
READINGS = NATIVE.readings_topic("E01", "gw-e01-1")
GOOD = {
    "meter": "E01-M-GRID",
    "ts": "2026-03-01T19:45:00+08:00",
    "register": "active_energy_import",
    "value": 123456.78,
    "unit": "kWh",
}


def handled(registry, topic: str, payload: bytes, budget: QuarantineBudget | None = None):
    return handle(Received(1, 1, topic, payload, RECEIVED_NS), registry, UniqueClock(), NOW, MAX_AGE, budget)


def native(*readings: object, gateway: str = "gw-e01-1", seq: object = 7) -> bytes:
    return json.dumps({"gateway": gateway, "seq": seq, "readings": list(readings)}).encode()


def reasons(result) -> list[str]:
    return [r.reason.value for r in result.rejections]


def topic_of(registry, fmt: GatewayFormat) -> str:
    gateway = next(g for g in registry.gateways if g.format is fmt)
    return layout(fmt).readings_topic(gateway.enterprise, gateway.id)


# -- 1. one message must not stop ingestion -------------------------------------------------------------


def deep(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize(
    ("fmt", "template"),
    [
        (GatewayFormat.NATIVE, '{"gateway": "gw-e01-1", "seq": 1, "readings": %s}'),
        (GatewayFormat.TASMOTA, '{"Time": "2026-03-01T19:45:00", "ENERGY": {"Total": %s}}'),
        (GatewayFormat.SHELLY_GEN2, '{"method": "NotifyStatus", "params": {"ts": 1, "emdata:0": %s}}'),
        (GatewayFormat.DLT645_JSON, '{"batch": %s}'),
        (None, '{"state": %s}'),  # a native status
    ],
    ids=["native", "tasmota", "shelly", "dlt645", "status"],
)
def test_deep_nesting_is_a_schema_rejection_not_a_dead_receiver(demo_registry, fmt, template):
    """100,000 levels raised RecursionError out of the parser, which nothing caught (the receiver died,
    the broker redelivered the message to the next run, which died too). Past 32 levels: schema."""
    topic = topic_of(demo_registry, fmt) if fmt is not None else NATIVE.status_topic("E01", "gw-e01-1")
    depth = 100_000 if fmt is not None else 5_000  # a status is at most 16 kB
    result = handled(demo_registry, topic, (template % deep(depth)).encode())
    assert reasons(result) == ["schema"]
    assert "nested deeper than 32 levels" in result.rejections[0].detail
    (line,) = result.lines
    assert line.startswith("quarantine,enterprise=")


def test_json_depth_limit_and_what_counts():
    assert MAX_DEPTH == 32
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}]}') == 3  # brackets in strings do not nest
    assert json_depth(b'{"a": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}') == 1  # nor after an escaped quote
    assert load_json(('{"a": ' + deep(31) + "}").encode()) == {"a": json.loads(deep(31))}  # 1 + 31 levels: read
    assert load_json(deep(32).encode()) == json.loads(deep(32))
    assert load_json(deep(33).encode()) == (Reason.SCHEMA, "JSON nested deeper than 32 levels")
    assert load_json(b"[" * 100_000) == (Reason.SCHEMA, "JSON nested deeper than 32 levels")  # never closed
    assert load_json(b"x" * 1_000_001)[0] is Reason.OVERSIZED


def test_lone_surrogate_ends_in_a_row_the_spool_can_write(demo_registry, tmp_path):
    """A "\\ud800" escape decodes to a string UTF-8 cannot encode: the quarantine line carried it and
    the spool's append raised UnicodeEncodeError, in the receiver. The row keeps it as its escape."""
    spool = Spool(tmp_path / "spool")
    try:
        for payload in (
            native({**GOOD, "meter": "\ud800"}),
            native({**GOOD, "value": "\udfff"}),
            native(GOOD, gateway="gw\ud800"),
            b'{"gateway": "\\ud800", "seq": "\\ud800", "readings": []}',
        ):
            result = handled(demo_registry, READINGS, payload)
            assert result.rejections and result.readings == 0
            spool.append("\n".join(result.lines), RECEIVED_NS)
            assert "\\\\ud8" in result.lines[0] or "\\\\udf" in result.lines[0]
    finally:
        spool.close()


@pytest.mark.parametrize(
    ("fmt", "payload", "expected"),
    [
        (GatewayFormat.DLT645_JSON, {"batch": [{"device_id": "AHU-E10", "metrics": [1, 2]}]}, ["schema"]),
        (GatewayFormat.DLT645_JSON, {"batch": [{"device_id": "AHU-E10", "metrics": {"energy": "x"}}]}, ["schema"]),
        (
            GatewayFormat.DLT645_JSON,
            {"batch": [{"device_id": "AHU-E10", "metrics": {"energy": {"active": [1]}}}]},
            ["schema"],
        ),
        (GatewayFormat.DLT645_JSON, {"batch": [7, "x", None]}, ["unknown_meter"]),
        (GatewayFormat.SHELLY_GEN2, {"method": "NotifyStatus", "params": [1]}, ["schema"]),
        (
            GatewayFormat.SHELLY_GEN2,
            {"method": "NotifyStatus", "params": {"ts": 1, "emdata:0": {"total_act": [1]}}},
            ["schema"],
        ),
        (GatewayFormat.TASMOTA, {"Time": "2026-03-01T19:45:00", "ENERGY": {"Total": {"0": {"x": 1}}}}, ["schema"]),
        (GatewayFormat.NATIVE, {"gateway": "gw-e01-1", "seq": 1, "readings": [[GOOD], 5, None]}, ["schema"] * 3),
    ],
    ids=[
        "dlt-metrics-list",
        "dlt-energy-text",
        "dlt-active-list",
        "dlt-items",
        "shelly-params",
        "shelly-total",
        "tasmota-total",
        "native-items",
    ],
)
def test_an_element_of_the_wrong_type_is_rejected(demo_registry, fmt, payload, expected):
    """``metrics`` as a list raised AttributeError in the DL/T 645 decoder (``.get`` on a list)."""
    result = handled(demo_registry, topic_of(demo_registry, fmt), json.dumps(payload).encode())
    assert reasons(result) == expected
    assert result.readings == 0


@pytest.mark.parametrize(
    ("fmt", "payload", "expected"),
    [
        (
            GatewayFormat.SHELLY_GEN2,
            {"method": "NotifyStatus", "params": {"ts": 1e20, "emdata:0": {"total_act": 5}}},
            "schema",
        ),
        (
            GatewayFormat.SHELLY_GEN2,
            {"method": "NotifyStatus", "params": {"ts": -1e20, "emdata:0": {"total_act": 5}}},
            "schema",
        ),
        (
            GatewayFormat.SHELLY_GEN2,
            {"method": "NotifyStatus", "params": {"ts": 10**30, "emdata:0": {"total_act": 5}}},
            "schema",
        ),
        (
            GatewayFormat.NATIVE,
            {"gateway": "gw-e01-1", "seq": 1, "readings": [{**GOOD, "ts": "10000-01-01T00:00:00+08:00"}]},
            "schema",
        ),
        (
            GatewayFormat.NATIVE,
            {"gateway": "gw-e01-1", "seq": 1, "readings": [{**GOOD, "ts": "0001-01-01T00:00:00+14:00"}]},
            "too_old",
        ),
        (
            GatewayFormat.NATIVE,
            {"gateway": "gw-e01-1", "seq": 1, "readings": [{**GOOD, "ts": "9999-12-31T23:59:59-12:00"}]},
            "future",
        ),
        (GatewayFormat.TASMOTA, {"Time": "0001-01-01T00:00:00", "ENERGY": {"Total": 1.0}}, "too_old"),
        (
            GatewayFormat.DLT645_JSON,
            {
                "batch": [
                    {
                        "device_id": "AHU-E10",
                        "timestamp": "99991231235959999",
                        "metrics": {"energy": {"active": {"value": {"forward": 1.0}}}},
                    }
                ]
            },
            "future",
        ),
    ],
    ids=[
        "shelly-1e20",
        "shelly-minus-1e20",
        "shelly-10e30",
        "native-year-10000",
        "native-year-1",
        "native-year-9999",
        "tasmota-year-1",
        "dlt-year-9999",
    ],
)
def test_a_timestamp_no_clock_can_show_is_rejected(demo_registry, fmt, payload, expected):
    """A Shelly ``ts`` of 1e20 raised OverflowError out of ``datetime.fromtimestamp``."""
    result = handled(demo_registry, topic_of(demo_registry, fmt), json.dumps(payload).encode())
    assert reasons(result) == [expected]


def test_whatever_raises_inside_is_isolated_to_its_message(demo_registry, monkeypatch):
    """A decoder bug met by some payload: the message becomes one decoder_error row, with the
    exception's type and message, under the registry's tags; the next message is unaffected."""

    def broken(payload: bytes, timezone: str):
        raise ZeroDivisionError("a decoder bug")

    decoder = collectors.decode.DECODERS[GatewayFormat.TASMOTA]
    monkeypatch.setitem(collectors.decode.DECODERS, GatewayFormat.TASMOTA, type(decoder)(broken))
    result = handled(demo_registry, topic_of(demo_registry, GatewayFormat.TASMOTA), b'{"ENERGY": {"Total": 1}}')
    assert reasons(result) == ["decoder_error"]
    assert result.rejections[0].detail == "ZeroDivisionError: a decoder bug"
    (line,) = result.lines
    assert line.startswith("quarantine,enterprise=E04,gateway=tasmota-e04-lab,reason=decoder_error ")
    assert handled(demo_registry, READINGS, native(GOOD)).readings == 1


def test_a_dead_thread_is_restarted_and_counted_until_it_cannot_be_kept_alive():
    alive = {"worker": False}
    restarts: list[str] = []
    supervisor = Supervisor("t", restarts.append, max_restarts=3, window_s=60.0, check_s=0.01)
    supervisor.watch("worker", lambda: alive["worker"], lambda: None)  # a restart that does not take
    supervisor.start()
    try:
        deadline = time.monotonic() + 20
        while supervisor.healthy and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        supervisor.stop()
    assert restarts == ["worker"] * 3 and supervisor.restarts == 3
    assert not supervisor.healthy


def _collector(tmp_path, registry) -> Collector:
    """A collector that is never connected (its broker and InfluxDB are on port 1: refused at once)."""
    settings = Settings(run_dir=tmp_path, mqtt=MqttSettings(port=1), influx=InfluxSettings(port=1))
    collector = settings.collector.model_copy(update={"spool_dir": tmp_path / "spool", "flush_interval_s": 0.05})
    return Collector(settings.model_copy(update={"collector": collector}), registry)


def test_a_receiver_that_dies_is_restarted_and_finishes_its_batch(demo_registry, tmp_path, monkeypatch):
    """The receiver dies while spooling (a disk error, say): the supervisor restarts it, and the new
    receiver spools and acknowledges the batch the old one had taken, in order, once."""
    collector = _collector(tmp_path, demo_registry)
    acked: list[int] = []
    monkeypatch.setattr(collector.client, "ack", lambda mid, qos: acked.append(mid))
    append = collector._spool.append
    failures = iter([OSError("disk full")])

    def append_once_failing(text: str, received_ns: int):
        error = next(failures, None)
        if error is not None:
            raise error
        return append(text, received_ns)

    monkeypatch.setattr(collector._spool, "append", append_once_failing)
    for mid in (1, 2, 3):
        collector._queue.put(Received(mid, 1, READINGS, native(GOOD), RECEIVED_NS))
    collector._sink.start()  # as start() does, without the broker: it retries InfluxDB meanwhile
    collector._receiver.start()
    collector._supervisor.start()
    try:
        deadline = time.monotonic() + 20
        while len(acked) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        collector._supervisor.stop()
        collector._stop.set()
        collector._receiver.join(5)
        collector._sink.stop(0.1)
        collector._spool.close()
    assert acked == [1, 2, 3]
    assert collector.stats.thread_restarts == 1 and collector.stats.acked == 3
    assert collector.stats.readings_spooled == 3  # counted once, when the batch was on disk
    spooled = Spool(tmp_path / "spool")
    try:
        assert len(spooled.read(spooled.committed, 10_000_000)) == 1  # one record: the batch, once
    finally:
        spooled.close()
    assert collector.healthy


def test_collect_exits_non_zero_when_a_replica_is_unhealthy(monkeypatch, tmp_path):
    import argparse

    import collectors.service
    import parkcarbon.cli.collect as collect
    import parkcarbon.cli.errors

    class Unhealthy:
        stopped = False

        def __init__(self, *_args: object) -> None:
            self.healthy = True

        def start(self) -> None:
            threading.Timer(0.2, lambda: setattr(self, "healthy", False)).start()

        def stop(self) -> None:
            Unhealthy.stopped = True

    monkeypatch.setattr(collectors.service, "Collector", Unhealthy)
    monkeypatch.setattr(collect.signal, "signal", lambda *_a: None)
    monkeypatch.setattr(parkcarbon.cli.errors, "require_influx", lambda _settings: None)
    monkeypatch.setattr(parkcarbon.cli.errors, "require_broker", lambda _settings: None)
    args = argparse.Namespace(replicas=1, first_replica=0)
    assert collect.run(args, Settings(run_dir=tmp_path)) == 1
    assert Unhealthy.stopped


# -- 3. amplification -------------------------------------------------------------------------------------


def tiny_bad_readings(count: int, size: int = 0) -> bytes:
    items = (["1", "{}", "null", '"x"'] * (count // 4 + 1))[:count]
    payload = ('{"gateway": "gw-e01-1", "seq": 1, "readings": [' + ", ".join(items) + "]}").encode()
    return payload + b" " * (size - len(payload))


def test_one_message_makes_at_most_101_quarantine_rows(demo_registry):
    """0.8 MB of 100,000 tiny bad readings made 100,000 rows (26 MB of line protocol, refused by
    InfluxDB as too large). More than 10,000 readings is an oversized message now (one row); up to
    that, 100 rows and one that counts the rest per reason."""
    whole = handled(demo_registry, READINGS, tiny_bad_readings(100_000, 800_000))
    assert reasons(whole) == ["oversized"] and whole.rejections[0].detail == "100000 readings > 10000"
    result = handled(demo_registry, READINGS, tiny_bad_readings(MAX_READINGS))
    assert len(result.lines) == len(result.rejections) == MAX_ROWS_PER_MESSAGE + 1
    summary = result.rejections[-1]
    assert summary.reason is Reason.SUMMARISED
    assert summary.detail == "9900 more rejections in this message, not stored one by one: schema 9900"
    assert result.lines[-1].startswith("quarantine,enterprise=E01,gateway=gw-e01-1,reason=summarised ")
    assert sum(len(line) for line in result.lines) < 500_000  # the message's whole quarantine


@pytest.mark.parametrize(
    ("fmt", "payload"),
    [
        (GatewayFormat.TASMOTA, {"Time": "2026-03-01T19:45:00", "ENERGY": {"Total": [1.0] * 10_001}}),
        (GatewayFormat.DLT645_JSON, {"batch": [None] * 10_001}),
        (
            GatewayFormat.SHELLY_GEN2,
            {"method": "NotifyStatus", "params": {f"switch:{i}": {"aenergy": {"total": 1}} for i in range(10_001)}},
        ),
    ],
    ids=["tasmota", "dlt645", "shelly"],
)
def test_a_vendor_message_of_too_many_readings_is_oversized(demo_registry, fmt, payload):
    result = handled(demo_registry, topic_of(demo_registry, fmt), json.dumps(payload).encode())
    assert reasons(result) == ["oversized"] and result.readings == 0


def test_a_gateway_gets_a_budget_of_rows_over_time(demo_registry):
    clock = [0.0]
    budget = QuarantineBudget(rows_per_s=20.0, burst=GATEWAY_BURST, clock=lambda: clock[0])
    bad = native(*[{**GOOD, "meter": "NOPE"}] * 100)
    written = dropped = 0
    for _ in range(30):  # 3,000 bad readings at once: the burst (2,000) is written, the rest counted
        result = handled(demo_registry, READINGS, bad, budget)
        written, dropped = written + len(result.lines), dropped + result.dropped
    assert (written, dropped) == (2_000, 1_000)
    assert handled(demo_registry, NATIVE.readings_topic("E02", "gw-e02-1"), bad, budget).dropped == 0  # own bucket
    clock[0] = 5.0  # 5 s later: 100 rows more
    result = handled(demo_registry, READINGS, bad, budget)
    assert (len(result.lines), result.dropped) == (100, 0)
    assert handled(demo_registry, READINGS, native(GOOD), budget).readings == 1  # readings are never held back


def test_quarantine_tags_come_from_the_registry_only(demo_registry):
    """A gateway could file rows under another enterprise's tag (the topic's claim) and make tag values
    of its own (unknown gateway ids): tags now come from the registry, or there are none."""
    spoofed = handled(demo_registry, NATIVE.readings_topic("E03", "gw-e01-1"), native(GOOD))
    assert reasons(spoofed) == ["spoofed"]
    assert spoofed.lines[0].startswith("quarantine,enterprise=E01,gateway=gw-e01-1,reason=spoofed ")
    status = handled(demo_registry, NATIVE.status_topic("E02", "gw-e01-1"), b'{"state": "online"}')
    assert status.lines[0].startswith("quarantine,enterprise=E01,gateway=gw-e01-1,reason=spoofed ")
    claim = handled(demo_registry, READINGS, native(GOOD, gateway="gw-e05-1"))
    assert claim.lines[0].startswith("quarantine,enterprise=E01,gateway=gw-e01-1,reason=spoofed ")
    for n in range(3):  # unknown gateways: no enterprise or gateway tag at all, the topic stays a field
        unknown = handled(demo_registry, NATIVE.readings_topic(f"E{n}", f"gw-made-up-{n}"), native(GOOD))
        assert unknown.lines[0].startswith("quarantine,reason=unknown_gateway ")
        assert f'topic="carbon/v1/E{n}/gw-made-up-{n}/readings"' in unknown.lines[0]


# -- 4. history and register bounds ---------------------------------------------------------------------


def _line(meter: str, register: str, at: int, raw: float, workshop: str = "") -> str:
    tags = f"carrier=grid_electricity,enterprise=E01,meter={meter},register={register}"
    if workshop:
        tags += f",workshop={workshop}"
    return f"meter_register,{tags} value={raw * 80},raw_value={raw},gateway_seq=1i {at}"


def test_a_conflicting_rewrite_is_quarantined_and_the_stored_value_kept(demo_registry):
    """300 then 3 for the same register and time: the 3 replaced the 300 silently (InfluxDB overwrites
    a point with the same series and time). Now the 3 is a conflict row naming both values."""
    influx = FakeInfluxDB()
    guard = ConflictGuard(influx, demo_registry, UniqueClock())
    first = guard.check([_line("E01-M-GRID", "active_energy_import", 1_000, 300.0)])
    influx.write_lines("\n".join(first.lines))
    guard.accept(first)
    rewrite = guard.check([_line("E01-M-GRID", "active_energy_import", 1_000, 3.0)])
    assert rewrite.conflicts == 1
    (row,) = rewrite.lines
    assert row.startswith("quarantine,enterprise=E01,gateway=gw-e01-1,reason=conflict ")
    assert "InfluxDB has raw_value 300.0, this reading says 3.0; the stored value is kept" in row
    redelivery = guard.check([_line("E01-M-GRID", "active_energy_import", 1_000, 300.0)])
    assert redelivery.conflicts == 0 and redelivery.lines == [_line("E01-M-GRID", "active_energy_import", 1_000, 300.0)]


def test_the_guard_asks_influxdb_only_about_readings_not_newer_than_the_latest(demo_registry):
    influx = FakeInfluxDB()
    influx.write_lines(_line("E01-M-GRID", "active_energy_import", 1_000, 300.0))  # written before this run
    guard = ConflictGuard(influx, demo_registry, UniqueClock())
    batch = [_line("E01-M-GRID", "active_energy_import", t, 300.0 + t) for t in (2_000, 3_000)]
    checked = guard.check(batch)
    assert checked.lines == batch
    assert [s.split(" WHERE")[0] for s in influx.statements] == ['SELECT LAST("raw_value") FROM "meter_register"']
    guard.accept(checked)
    influx.statements.clear()
    for t in range(4_000, 40_000, 1_000):  # in order: no question to InfluxDB at all
        guard.accept(guard.check([_line("E01-M-GRID", "active_energy_import", t, 300.0 + t)]))
    assert influx.statements == []
    late = guard.check([_line("E01-M-GRID", "active_energy_import", 2_500, 1.0)])  # a gap filled late
    assert (
        late.conflicts == 0 and len(influx.statements) == 1 and "time >= 2500 AND time <= 2500" in influx.statements[0]
    )


def test_within_a_batch_the_first_of_two_values_is_kept(demo_registry):
    guard = ConflictGuard(FakeInfluxDB(), demo_registry, UniqueClock())
    same = _line("E01-M-GRID", "active_energy_import", 5_000, 7.0)
    checked = guard.check([same, same, _line("E01-M-GRID", "active_energy_import", 5_000, 8.0)])
    assert checked.lines[:2] == [same, same] and checked.conflicts == 1
    assert "InfluxDB has raw_value 7.0, this reading says 8.0" in checked.lines[2]


def _registry_with(meter: dict[str, object]):
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
            "gateways": [{"id": "gw-x", "enterprise": "X"}],
            "meters": [
                {
                    "id": "M-X",
                    "gateway": "gw-x",
                    "enterprise": "X",
                    "carrier": "grid_electricity",
                    "role": "main",
                    "unit": "kWh",
                    **meter,
                }
            ],
        }
    )


@pytest.mark.parametrize(
    ("meter", "value", "expected"),
    [
        ({}, 1e308, "absurd"),  # no rollover, no max_value: at most 1e12 kWh
        ({}, 1e12, None),
        ({}, 1.000001e12, "absurd"),
        ({"max_value": 99_999.99}, 100_000.0, "absurd"),
        ({"max_value": 99_999.99}, 99_999.99, None),
        ({"rollover_at": 1e6}, 999_999.99, None),
        ({"rollover_at": 1e6}, 1e6, "absurd"),
    ],
)
def test_a_register_above_its_bound_is_absurd(meter, value, expected):
    registry = _registry_with(meter)
    result = handled(
        registry, NATIVE.readings_topic("X", "gw-x"), native({**GOOD, "meter": "M-X", "value": value}, gateway="gw-x")
    )
    assert reasons(result) == ([expected] if expected else [])
    if expected:
        assert (
            "the most meter 'M-X' can show" in result.rejections[0].detail or "rollover" in result.rejections[0].detail
        )


def test_a_register_bound_above_the_rollover_point_is_a_registry_error():
    with pytest.raises(RegistryError, match=re.escape("max_value 2000000.0 is above rollover_at 1000000.0")):
        _registry_with({"rollover_at": 1e6, "max_value": 2e6})


# -- 5. seq and a status's time -------------------------------------------------------------------------


@pytest.mark.parametrize(("seq", "stored"), [(2**63 - 1, True), (2**63, False), (2**70, False), (-1, False)])
def test_seq_is_a_63_bit_counter(demo_registry, seq, stored):
    """A seq of 2**70 passed and made a line InfluxDB refuses (integers are 64-bit), forcing the slow path."""
    result = handled(demo_registry, READINGS, native(GOOD, seq=seq))
    assert (result.readings, reasons(result)) == ((1, []) if stored else (0, ["schema"]))


@pytest.mark.parametrize(
    ("at", "stamped"),
    [
        ("2026-03-01T19:00:00+08:00", datetime(2026, 3, 1, 11, 0, tzinfo=UTC)),  # believed
        ("2026-03-01T20:05:00+08:00", datetime(2026, 3, 1, 12, 5, tzinfo=UTC)),  # within the clock skew allowed
        ("2100-01-01T00:00:00+08:00", NOW),  # far ahead: receive time
        ("2026-03-01T20:11:00+08:00", NOW),  # just past the skew allowed
        ("2000-01-01T00:00:00+08:00", NOW),  # older than the age limit
        ("0001-01-01T00:00:00+14:00", NOW),
    ],
)
def test_a_status_time_is_believed_only_within_the_bounds_of_a_reading_time(demo_registry, at, stamped):
    payload = json.dumps({"state": "online", "at": at}).encode()
    (line,) = handled(demo_registry, NATIVE.status_topic("E01", "gw-e01-1"), payload).lines
    assert line == f'gateway_status,enterprise=E01,gateway=gw-e01-1 online=1.0,state="online" {to_ns(stamped)}'


def test_a_refused_look_up_lets_the_batch_through_and_is_asked_again_later(demo_registry):
    """An InfluxDB account without read privilege: the guard cannot look, says so, never blocks
    ingestion, and asks again after a pause (a grant may come)."""

    class NoReading(FakeInfluxDB):
        def execute(self, statement, params=None):
            self.statements.append(statement)
            raise InfluxError("error authorizing query: collector not authorized to execute statement", 403)

    influx, clock = NoReading(), [0.0]
    guard = ConflictGuard(influx, demo_registry, UniqueClock(), monotonic=lambda: clock[0])
    batch = [_line("E01-M-GRID", "active_energy_import", 1_000, 3.0)]
    assert guard.check(batch).lines == batch and guard.check(batch).lines == batch
    assert len(influx.statements) == 1 and guard.unchecked == 2
    clock[0] = ASK_AGAIN_S + 1
    guard.check(batch)
    assert len(influx.statements) == 2
