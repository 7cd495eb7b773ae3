"""Issue #21's "done when", in database mode, in Debian's headless Chromium against the real Mosquitto,
collector and InfluxDB: a park admin adds an enterprise, a gateway and two meters on the platform (from
this month's first day) and issues the gateway's credentials; the gateway publishes a reading of each
meter with them and the collector — running in database mode since before the additions, reloading
the registry from the database — stores both under the new enterprise; a user the admin creates for
the enterprise logs in and lands on its enterprise page."""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr

from collectors.registry_reload import RegistryReloader
from park.registry import load_registry
from park.settings import LedgerSettings
from parkcarbon.cli.collect import database_registry
from tests.integration.gateway_client import GatewayClient
from tests.integration.helpers import running_collectors, wait_for_count, with_own_group
from tests.portal import test_browser
from tests.portal.test_gateways_browser import broker_follows
from tests.portal.test_registry_pages import TZ, seed_registry

pytestmark = [pytest.mark.services, pytest.mark.browser]
served, browser = test_browser.served, test_browser.browser  # the platform on uvicorn and Chromium, as there
__all__ = ["broker_follows", "browser", "served"]
RELOAD_S = 0.5


@pytest.fixture
def park(park):
    """The test park in database mode: its registry imported into the database from 2026-01-01, the
    platform (made lazily, by ``served``) reading it from there."""
    seed_registry(park.config.ledger_url)
    park.config = dataclasses.replace(park.config, registry_source="database")
    return park


def test_a_gateway_added_on_the_platform_is_collected_under_its_new_enterprise(
    park, served, browser, broker_follows, settings, store, tmp_path
):
    file_registry = load_registry(park.config.registry)
    collecting = with_own_group(settings).model_copy(
        update={"registry_source": "database", "ledger": LedgerSettings(url=SecretStr(park.config.ledger_url))}
    )
    live = database_registry(collecting, file_registry)
    before = live.current()
    assert "ECHO" not in before.enterprise_by_id and "gw-echo" not in before.gateway_by_id
    now_local = datetime.now(UTC).astimezone(ZoneInfo(TZ))
    first_of_month = now_local.date().replace(day=1).isoformat()

    with running_collectors(collecting, before) as replicas:
        reloader = RegistryReloader(live.current, before, replicas, RELOAD_S)
        reloader.start()
        try:
            admin = test_browser._log_in(browser, served, "olga-admin", park.passwords["olga-admin"])
            admin.goto(f"{served}/park/registry")

            def put(kind: str, fields: dict[str, str]) -> None:
                form = f"#put-{kind}"
                for name, value in fields.items():
                    admin.fill(f"{form} input[name=f_{name}]", value)
                admin.fill(f"{form} input[name=valid_from]", first_of_month)
                admin.fill(f"{form} input[name=reason]", "Echo Ceramics joins the park")
                admin.click(f"{form} button[type=submit]")
                admin.wait_for_load_state("networkidle")
                assert admin.locator("#registry-errors").count() == 0, admin.inner_text("#registry-errors")

            meter = {"gateway": "gw-echo", "enterprise": "ECHO", "carrier": "grid_electricity", "role": "main"}
            put("enterprise", {"id": "ECHO", "name": "Echo Ceramics", "industry": "C30"})
            put("gateway", {"id": "gw-echo", "enterprise": "ECHO"})
            put("meter", {"id": "ECHO-M1", **meter, "unit": "kWh"})
            put("meter", {"id": "ECHO-M2", **meter, "unit": "kWh"})

            admin.goto(f"{served}/park/gateways")  # the platform's registry as of today has the new gateway
            assert "无 none" in admin.inner_text("#gateway-gw-echo .state")
            admin.click("#gateway-gw-echo button.issue")
            admin.wait_for_load_state("networkidle")
            password = admin.inner_text("#gateway-password")
            assert admin.inner_text("#shown-gateway") == "gw-echo"
            admin.screenshot(path=str(tmp_path / "echo-gateway-issued.png"), full_page=True)

            deadline = time.monotonic() + 10  # the collector's next reload knows the gateway and its meters
            while "gw-echo" not in replicas[0].registry.gateway_by_id:
                assert time.monotonic() < deadline, "the collector never reloaded the registry"
                time.sleep(0.1)
            assert reloader.reloads >= 1 and reloader.failures == 0
            assert {"ECHO-M1", "ECHO-M2"} <= set(replicas[0].registry.meter_by_id)

            gateway = GatewayClient(collecting.mqtt.host, collecting.mqtt.port, "gw-echo", password)
            deadline = time.monotonic() + 5  # the broker sync loop's next poll puts the password into the broker
            while gateway.connect() != "Success":
                assert time.monotonic() < deadline, "the broker never accepted the issued password"
                gateway.close()
                gateway = GatewayClient(collecting.mqtt.host, collecting.mqtt.port, "gw-echo", password)
                time.sleep(0.2)
            try:
                at = (now_local - timedelta(minutes=10)).replace(microsecond=0).isoformat()
                assert gateway.publish_reading("ECHO", "ECHO-M1", at, 1234.5, 1) == "Success"
                assert gateway.publish_reading("ECHO", "ECHO-M2", at, 678.25, 2) == "Success"
            finally:
                gateway.close()
            assert wait_for_count(store, 2, 30) == 2
        finally:
            reloader.stop()
            live.dispose()
    stored = store.query('SELECT "value", "gateway_seq", "enterprise", "meter" FROM "meter_register"')
    rows = sorted(zip(stored["meter"], stored["enterprise"], stored["gateway_seq"], stored["value"], strict=True))
    assert rows == [("ECHO-M1", "ECHO", 1, 1234.5), ("ECHO-M2", "ECHO", 2, 678.25)]
    quarantined = store.query('SELECT COUNT("payload") FROM "quarantine" WHERE "gateway" = \'gw-echo\'')
    assert len(quarantined) == 0, quarantined

    admin.goto(f"{served}/enterprises/ECHO/users")  # the enterprise's user, created by the park admin
    form = "form[action='/enterprises/ECHO/users']"
    admin.fill(f"{form} input[name=username]", "echo-admin")
    admin.select_option(f"{form} select[name=role]", "enterprise_admin")
    admin.click(f"{form} button[type=submit]")
    admin.wait_for_load_state("networkidle")
    echo_password = admin.inner_text("#new-password")
    owner = test_browser._log_in(browser, served, "echo-admin", echo_password)
    assert owner.url == f"{served}/enterprises/ECHO"
    assert "Echo Ceramics" in owner.content()
    owner.screenshot(path=str(tmp_path / "echo-enterprise.png"), full_page=True)
