"""Issue #21's "done when" for gateways' credentials, in Debian's headless Chromium against the real
Mosquitto, collector and InfluxDB: the park admin issues a gateway's credentials and the page shows the
password once; the gateway publishes with it and its reading is stored; the admin revokes it and its
next connection and publish are refused, and nothing more is stored. ``parkcarbon broker sync``'s loop
(one poll a second) runs beside the platform, as in the local stack."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ledger.db import make_engine, migrate
from park.registry import load_registry
from parkcarbon.broker_sync import Broker, sync_once, watch
from tests.integration.gateway_client import GatewayClient
from tests.integration.helpers import count_readings, running_collectors, wait_for_count, with_own_group
from tests.portal import test_browser

pytestmark = [pytest.mark.services, pytest.mark.browser]
served, browser = test_browser.served, test_browser.browser  # the platform on uvicorn and Chromium, as there


@pytest.fixture
def broker_follows(park, run_dir: Path, tmp_path: Path) -> Iterator[Engine]:
    """The broker sync loop on the park's database; afterwards the broker's files are the run's again."""
    engine = make_engine(park.config.ledger_url, read_only=True)
    stop = threading.Event()
    loop = threading.Thread(target=watch, args=(Broker.local(run_dir), engine, 1.0, stop), daemon=True)
    loop.start()
    yield engine
    stop.set()
    loop.join(10)
    empty = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    migrate(empty)
    sync_once(Broker.local(run_dir), empty)
    empty.dispose()
    engine.dispose()


def test_issued_gateway_publishes_and_revoked_gateway_is_refused(
    park, served, browser, broker_follows, settings, store, tmp_path
):
    registry = load_registry(park.config.registry)
    page = test_browser._log_in(browser, served, "olga-admin", park.passwords["olga-admin"])
    page.click("nav a[href='/park/gateways']")
    page.wait_for_load_state("networkidle")
    assert "无 none" in page.inner_text("#gateway-gw-alpha .state")
    page.click("#gateway-gw-alpha button.issue")
    page.wait_for_load_state("networkidle")
    password = page.inner_text("#gateway-password")
    assert page.inner_text("#shown-gateway") == "gw-alpha" and len(password) >= 32
    assert "有效 active #1" in page.inner_text("#gateway-gw-alpha .state")
    page.screenshot(path=str(tmp_path / "gateway-issued.png"), full_page=True)
    page.goto(f"{served}/park/gateways")  # shown once: a later visit has no password
    assert page.locator("#gateway-password").count() == 0 and password not in page.content()

    gateway = GatewayClient(settings.mqtt.host, settings.mqtt.port, "gw-alpha", password)
    with running_collectors(with_own_group(settings), registry):
        deadline = time.monotonic() + 5  # the sync loop's next poll puts it into the broker
        while gateway.connect() != "Success":
            assert time.monotonic() < deadline, "the broker never accepted the issued password"
            gateway.close()
            gateway = GatewayClient(settings.mqtt.host, settings.mqtt.port, "gw-alpha", password)
            time.sleep(0.2)
        try:
            assert gateway.publish_reading("ALPHA", "ALPHA-M", "2026-03-10T08:00:00+08:00", 4321.5, 1) == "Success"
            assert wait_for_count(store, 1, 30) == 1
            stored = store.query('SELECT "value", "gateway_seq" FROM "meter_register" WHERE "meter" = \'ALPHA-M\'')
            assert stored["value"].tolist() == [4321.5]

            clicked = time.monotonic()
            page.click("#gateway-gw-alpha button.revoke")
            page.wait_for_load_state("networkidle")
            assert "已吊销 revoked" in page.inner_text("#gateway-gw-alpha .state")
            assert gateway.wait_disconnected(5.0)
            print(f"revoke click → gateway disconnected: {gateway.disconnected_at - clicked:.3f} s")
            assert gateway.disconnected_at - clicked < 3.0
            assert gateway.publish_reading("ALPHA", "ALPHA-M", "2026-03-10T08:15:00+08:00", 4322.0, 2) == "no PUBACK"
        finally:
            gateway.close()
        again = GatewayClient(settings.mqtt.host, settings.mqtt.port, "gw-alpha", password)
        try:
            assert again.connect() == "Not authorized"
        finally:
            again.close()
        time.sleep(2.0)  # what the collector would have stored by now
        assert count_readings(store) == 1
    page.screenshot(path=str(tmp_path / "gateway-revoked.png"), full_page=True)
    audit = page.goto(f"{served}/park/audit")
    assert audit is not None and audit.status == 200
    text = page.content()
    assert "gateway.issue" in text and "gateway.revoke" in text and password not in text
