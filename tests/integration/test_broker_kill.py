"""Broker kill -9 under load: Mosquitto is killed (no chance to save) while the gateways publish, and
the readings it had already acknowledged (PUBACK) must still reach InfluxDB.

Like the fault tests in ``test_collector_faults.py`` (real collector processes, the module's own
services), with SIGKILL instead of SIGTERM, once with the collector connected and once while it is
away (its session kept, so the broker holds the readings in its queue when it dies). The gateways'
paho clients resend what was not acknowledged after they reconnect; what was acknowledged only the
broker's persistence can keep.

Measured here on Mosquitto 2.0.11: with the earlier ``autosave_interval 30`` (seconds) the "away" case
loses what was queued since the last save (bench/broker.py: every one of a day's 6,208 readings); with
``autosave_on_changes true`` and ``autosave_interval 1`` both cases lose 0.
"""

from __future__ import annotations

import time

import pytest

from tests.integration.helpers import wait_until
from tests.integration.test_collector_faults import Scenario, fault_services  # noqa: F401  (the module's services)

pytestmark = pytest.mark.services


@pytest.mark.parametrize("collector", ["connected", "away"])
def test_broker_kill9_under_load(fault_services, demo_registry, collector, record_property):  # noqa: F811
    day = {"connected": 21, "away": 22}[collector]
    with Scenario(fault_services, demo_registry, day, shared=False).collectors_stopped_at_end() as s:
        s.start_collector()
        s.publish_over(14)
        s.at_mid_stream(0.2)
        if collector == "away":
            s.stop_collectors()  # SIGTERM: the session stays, the broker queues the next readings for it
            time.sleep(3)  # about a fifth of the day is acknowledged to the gateways and queued
        fault_services.kill_one("mosquitto")
        time.sleep(2)  # the broker stays down for 2 s; the gateways keep what it did not acknowledge
        fault_services.start_one("mosquitto")
        if collector == "away":
            s.start_collector()
        s.wait_published()
        expected = s.expected()
        wait_until(lambda: len(s.stored()) >= len(expected), 90)
        lost = len(expected.keys() - s.stored().keys())
        record_property("readings_lost", lost)
        print(f"\nbroker kill -9, collector {collector}: {lost} of {len(expected)} readings lost")
        assert lost == 0, f"the broker lost {lost} of {len(expected)} readings it had acknowledged"
        s.assert_exact(timeout_s=30)


def test_the_collectors_spool_is_private(fault_services):  # noqa: F811
    """The spool that `parkcarbon collect` wrote above (acknowledged readings, before InfluxDB has
    them) is readable by its owner only: directories 0700, files 0600, from their creation."""
    spool = fault_services.run_dir / "spool"
    paths = [spool, *spool.rglob("*")]
    assert len(paths) > 2, "no spool was written"
    wide = [(str(p), oct(p.stat().st_mode & 0o777)) for p in paths if p.stat().st_mode & 0o077]
    assert wide == []
