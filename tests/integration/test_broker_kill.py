"""Broker kill -9 under load: Mosquitto is killed (no chance to save) while the gateways publish, and
it may lose only what its persistence promises: readings acknowledged (PUBACK) within the last
``AUTOSAVE_S`` seconds before the kill; everything older must reach InfluxDB, exactly.

Like the fault tests in ``test_collector_faults.py`` (real collector processes, the module's own
services), with SIGKILL instead of SIGTERM, once with the collector connected and once while it is
away (its session kept, so the broker holds the readings in its queue when it dies). The gateways'
paho clients resend what was not acknowledged after they reconnect; what was acknowledged only the
broker's persistence can keep.

Measured on Mosquitto 2.0.11 (bench/broker.py, README "Broker limits"): ``autosave_interval 30``
(seconds) lost everything queued since the last save; saving on every change lost 0 but made a
backfill 200 times slower; saving every ``AUTOSAVE_S`` seconds loses at most that many seconds of
acknowledged readings (plus the time a save takes, allowed for here with :data:`SAVE_SLACK_S`).
"""

from __future__ import annotations

import time

import pytest

from parkcarbon.services import AUTOSAVE_CHANGES, AUTOSAVE_S
from simulators.publisher import GatewayClient
from tests.integration.test_collector_faults import Scenario, fault_services  # noqa: F401  (the module's services)

pytestmark = pytest.mark.services

SAVE_SLACK_S = 1.0  # a save in progress, the broker's loop iteration, the publisher's scheduling


def readings_published_between(published: list[tuple[float, int]], start: float, end: float) -> int:
    """Readings of the messages handed to paho from ``start`` to ``end`` (monotonic seconds)."""
    return sum(readings for at, readings in published if start <= at <= end)


def settled(s: Scenario, everything: int, enough: int, quiet_s: float = 5.0, timeout_s: float = 90.0) -> dict:
    """What InfluxDB holds once it holds ``everything``, or at least ``enough`` and nothing more came
    for ``quiet_s`` (the collector has caught up with what the broker kept)."""
    deadline = time.monotonic() + timeout_s
    stored, changed = s.stored(), time.monotonic()
    while time.monotonic() < deadline and len(stored) < everything:
        if len(stored) >= enough and time.monotonic() - changed >= quiet_s:
            break
        time.sleep(0.5)
        now = s.stored()
        if len(now) != len(stored):
            stored, changed = now, time.monotonic()
    return stored


@pytest.mark.parametrize("collector", ["connected", "away"])
def test_broker_kill9_loses_at_most_the_last_save_interval(
    fault_services,  # noqa: F811
    demo_registry,
    collector,
    record_property,
    monkeypatch,
):
    assert AUTOSAVE_CHANGES is None, "this test states the time bound; saving on changes needs its own"
    day = {"connected": 21, "away": 22}[collector]
    with Scenario(fault_services, demo_registry, day, shared=False).collectors_stopped_at_end() as s:
        # When each planned message is handed to paho (send_plan publishes the plan in order, one call each).
        published: list[tuple[float, int]] = []
        publish = GatewayClient.publish

        def timed_publish(client: GatewayClient, topic: str, payload: bytes) -> None:
            publish(client, topic, payload)
            published.append((time.monotonic(), s.run.plan[len(published)].readings))

        monkeypatch.setattr(GatewayClient, "publish", timed_publish)
        s.start_collector()
        s.publish_over(14)
        s.at_mid_stream(0.2)
        if collector == "away":
            s.stop_collectors()  # SIGTERM: the session stays, the broker queues the next readings for it
            time.sleep(3)  # about a fifth of the day is acknowledged to the gateways and queued
        killed_at = time.monotonic()
        fault_services.kill_one("mosquitto")
        time.sleep(2)  # the broker stays down for 2 s; the gateways keep what it did not acknowledge
        fault_services.start_one("mosquitto")
        if collector == "away":
            s.start_collector()
        s.wait_published()
        expected = s.expected()
        bound = readings_published_between(published, killed_at - AUTOSAVE_S - SAVE_SLACK_S, killed_at)
        stored = settled(s, len(expected), len(expected) - bound)
        lost = len(expected.keys() - stored.keys())
        record_property("readings_lost", lost)
        print(
            f"\nbroker kill -9, collector {collector}: {lost} of {len(expected)} readings lost; the bound, readings"
            f" published in the last {AUTOSAVE_S + SAVE_SLACK_S:.0f} s before the kill: {bound}"
        )
        assert lost <= bound, f"the broker lost {lost} readings, more than the {bound} of its last save interval"
        assert stored.keys() <= expected.keys()
        assert all(abs(stored[k] - expected[k]) <= 1e-6 * max(1.0, abs(expected[k])) for k in stored)


def test_the_collectors_spool_is_private(fault_services):  # noqa: F811
    """The spool that `parkcarbon collect` wrote above (acknowledged readings, before InfluxDB has
    them) is readable by its owner only: directories 0700, files 0600, from their creation."""
    spool = fault_services.run_dir / "spool"
    paths = [spool, *spool.rglob("*")]
    assert len(paths) > 2, "no spool was written"
    wide = [(str(p), oct(p.stat().st_mode & 0o777)) for p in paths if p.stat().st_mode & 0o077]
    assert wide == []
