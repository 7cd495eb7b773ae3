"""The registry's pages (portal/registry_edit.py behind portal/app.py): issue #21's "done when" in
headless Chromium — a park admin adds an enterprise, a gateway and two meters; an enterprise admin
proposes a meter replacement; an analyst approves; the registry page as of the month shows it — and, over
HTTP, a refused change shown with every error naming the entry and the field, the export as of a date,
and another enterprise's proposal answering as one that does not exist."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
import yaml
from sqlalchemy import select

from ledger import registry_store
from ledger.db import make_engine
from park.registry import parse_registry
from portal.audit import Actor
from portal.registry_edit import parse_replacement, propose_replacement
from portal.schema import audit_log
from tests.portal import test_browser
from tests.portal.park import REGISTRY, csrf_of, leaks_bravo

pytestmark = pytest.mark.services
served, browser = test_browser.served, test_browser.browser  # the platform on uvicorn and Chromium, as there
START = date(2026, 1, 1)
PROPOSED_AT = datetime(2026, 3, 10, tzinfo=UTC)
TZ = "Asia/Shanghai"


def seed_registry(url: str, bravo_proposal: bool = False) -> None:
    """The test park's registry in the database from 2026-01-01 (and a replacement BRAVO proposes)."""
    engine = make_engine(url)
    with engine.begin() as conn:
        registry_store.import_registry(conn, parse_registry(yaml.safe_load(REGISTRY)), [], START, "office", "pilot")
        if bravo_proposal:
            bravo = Actor("bravo-admin", "enterprise_admin", "BRAVO", "local")
            replacement = parse_replacement("BRAVO-M", "2026-03-09T09:00", "97531.5", "0", "", "", TZ)
            propose_replacement(
                conn, bravo, "BRAVO", "BRAVO-M", replacement, "bravo furnace meter burnt", TZ, PROPOSED_AT
            )
    engine.dispose()


def test_a_refused_change_shows_each_error_naming_entry_and_field_keeps_the_form_and_is_audited(park):
    seed_registry(park.config.ledger_url)
    client = park.login("olga-admin")
    csrf = csrf_of(client.get("/park/registry?as_of=2026-03-01").text)
    typed = {"csrf_token": csrf, "mode": "add", "valid_from": "2026-03-01", "reason": "new line"}
    meter = {"f_id": "ALPHA-M9", "f_gateway": "gw-nowhere", "f_enterprise": "ALPHA", "f_carrier": "grid_electricity",
             "f_role": "main", "f_unit": "kWh", "f_multiplier": "four"}  # fmt: skip
    response = client.post("/park/registry/meter", data={**typed, **meter})
    assert response.status_code == 400
    page = response.text
    assert 'id="registry-errors"' in page
    assert "meters[3] (id &#39;ALPHA-M9&#39;): multiplier: Input should be a valid number" in page
    assert 'name="f_gateway" value="gw-nowhere"' in page and 'value="new line"' in page  # nothing typed is lost
    engine = make_engine(park.config.ledger_url)
    with engine.connect() as conn:
        assert registry_store.history(conn, "meter", "ALPHA-M9") == []
        refused = conn.execute(
            select(audit_log.c.action, audit_log.c.to_value).where(audit_log.c.actor == "olga-admin")
        )
        lines = [r for r in refused if r.action == "registry.refused"]
    engine.dispose()
    assert len(lines) == 1 and "(id 'ALPHA-M9'): multiplier:" in lines[0].to_value
    response = client.post("/park/registry/meter", data={**typed, **meter, "valid_from": "soon"})
    assert response.status_code == 400 and "valid_from: &#39;soon&#39; is not a date" in response.text
    assert 'name="f_multiplier" value="four"' in response.text
    response = client.post("/park/registry/meter", data={**typed, **meter, "f_multiplier": "2"})
    assert response.status_code == 400 and "(id &#39;ALPHA-M9&#39;): gateway: unknown gateway" in response.text
    response = client.post("/park/registry/meter", data={**typed, **meter, "f_gateway": "gw-alpha"})
    assert response.status_code == 400 and "multiplier" in response.text
    response = client.post(
        "/park/registry/meter", data={**typed, **meter, "f_gateway": "gw-alpha", "f_multiplier": "2"}
    )
    assert response.status_code == 303
    assert "ALPHA-M9" in client.get("/park/registry?as_of=2026-03-01").text
    # a change through the form: the fields left empty keep their values, "-" takes one out
    blank = {k: "" for k in meter}
    changed = {**typed, **blank, "mode": "change", "valid_from": "2026-04-01", "f_id": "ALPHA-M9", "f_serial": "SN-9"}
    assert client.post("/park/registry/meter", data=changed).status_code == 303
    assert (
        client.post("/park/registry/meter", data={**changed, "f_serial": "-", "valid_from": "2026-05-01"}).status_code
        == 303
    )
    engine = make_engine(park.config.ledger_url)
    with engine.connect() as conn:
        april = registry_store.registry_as_of(conn, date(2026, 4, 1)).meter_by_id["ALPHA-M9"]
        may = registry_store.registry_as_of(conn, date(2026, 5, 1)).meter_by_id["ALPHA-M9"]
    engine.dispose()
    assert (april.gateway, april.multiplier, april.serial) == ("gw-alpha", 2.0, "SN-9")
    assert (may.gateway, may.multiplier, may.serial) == ("gw-alpha", 2.0, "")
    assert "ALPHA-M9" not in client.get("/park/registry?as_of=2026-02-28").text
    analyst = park.login("ana-analyst")
    assert analyst.post("/park/registry/meter", data={**typed, **meter, "csrf_token": csrf}).status_code == 403


def test_the_export_as_of_a_date_for_the_park_and_the_auditor_only(park):
    seed_registry(park.config.ledger_url)
    admin = park.login("olga-admin")
    csrf = csrf_of(admin.get("/park/registry").text)
    added = {"csrf_token": csrf, "mode": "add", "valid_from": "2026-04-01", "reason": "new enterprise",
             "f_id": "DELTA", "f_name": "Delta Glass", "f_industry": "C30"}  # fmt: skip
    assert admin.post("/park/registry/enterprise", data=added).status_code == 303
    for username in ("olga-admin", "aud-auditor", "vic-viewer", "ana-analyst"):
        client = park.login(username)
        march = client.get("/park/registry/export/registry.yaml?as_of=2026-03-31")
        april = client.get("/park/registry/export/registry.yaml?as_of=2026-04-01")
        assert march.status_code == april.status_code == 200, username
        assert "attachment; filename=registry-2026-04-01.yaml" in april.headers["content-disposition"]
        assert parse_registry(yaml.safe_load(march.text)) == parse_registry(yaml.safe_load(REGISTRY))
        assert [e.id for e in parse_registry(yaml.safe_load(april.text)).enterprises][-1] == "DELTA"
        rows = client.get("/park/registry/export/enterprises.csv?as_of=2026-04-01")
        assert list(csv.reader(io.StringIO(rows.text))) == [["enterprise", "name", "industry", "year",
                                                             "value_added_10k_cny"]]  # fmt: skip
    for username in ("alpha-admin", "alpha-reporter"):
        client = park.login(username)
        for path in ("/park/registry", "/park/registry/export/registry.yaml", "/park/registry/export/enterprises.csv"):
            response = client.get(path)
            assert response.status_code == 403 and leaks_bravo(response.text) == [], (username, path)


def test_another_enterprise_proposal_answers_as_one_that_does_not_exist(park):
    seed_registry(park.config.ledger_url, bravo_proposal=True)
    alpha = park.login("alpha-admin")
    own = alpha.get("/enterprises/ALPHA/registry")
    assert own.status_code == 200 and "ALPHA-M" in own.text and leaks_bravo(own.text) == []
    csrf = csrf_of(own.text)
    for method, path in (
        ("GET", "/enterprises/BRAVO/registry"),
        ("POST", "/enterprises/BRAVO/registry/proposals/1/withdraw"),
        ("POST", "/enterprises/ALPHA/registry/proposals/1/withdraw"),  # BRAVO's id under ALPHA's name
        ("POST", "/enterprises/ALPHA/registry/proposals/999/withdraw"),  # an id that does not exist
        ("POST", "/park/registry-proposals/1/approve"),
    ):
        response = alpha.request(method, path, data={"csrf_token": csrf})
        assert response.status_code in (403, 404), (method, path)
        assert response.status_code == 404 or path.startswith("/park/"), (method, path)
        assert leaks_bravo(response.text) == [], (method, path)
    replacement = {"csrf_token": csrf, "kind": "replacement", "meter": "BRAVO-M", "at": "2026-03-15T10:30",
                   "old_final_reading": "1", "new_initial_reading": "0", "reason": "not ours"}  # fmt: skip
    response = alpha.post("/enterprises/ALPHA/registry/proposals", data=replacement)
    assert response.status_code == 404 and leaks_bravo(response.text) == []
    analyst = park.login("ana-analyst")
    queue = analyst.get("/park/registry-proposals").text
    assert 'id="proposal-1" data-state="proposed"' in queue and "bravo furnace meter burnt" in queue


@pytest.mark.browser
def test_admin_adds_entries_enterprise_proposes_a_replacement_analyst_approves(park, served, browser, tmp_path):
    seed_registry(park.config.ledger_url)
    admin = test_browser._log_in(browser, served, "olga-admin", park.passwords["olga-admin"])
    admin.click("nav a[href='/park/registry']")
    admin.wait_for_load_state("networkidle")

    def put(kind: str, fields: dict[str, str]) -> None:
        form = f"#put-{kind}"
        for name, value in fields.items():
            admin.fill(f"{form} input[name=f_{name}]", value)
        admin.fill(f"{form} input[name=valid_from]", "2026-03-01")
        admin.fill(f"{form} input[name=reason]", "Delta Glass joins the park")
        admin.click(f"{form} button[type=submit]")
        admin.wait_for_load_state("networkidle")

    meter = {"gateway": "gw-delta", "enterprise": "DELTA", "carrier": "grid_electricity", "role": "main", "unit": "kWh"}
    put("enterprise", {"id": "DELTA", "name": "Delta Glass", "industry": "C30"})
    put("gateway", {"id": "gw-delta", "enterprise": "DELTA"})
    put("meter", {"id": "DELTA-M1", **meter, "multiplier": "40"})
    put("meter", {"id": "DELTA-M2", **meter, "gateway": "gw-nowhere"})  # refused: the page says which field
    errors = admin.inner_text("#registry-errors")
    assert "meters[4] (id 'DELTA-M2'): gateway: unknown gateway 'gw-nowhere'" in errors
    admin.screenshot(path=str(tmp_path / "registry-refused.png"), full_page=True)
    admin.fill("#put-meter input[name=f_gateway]", "gw-delta")  # what was typed is still there: fix one field
    admin.click("#put-meter button[type=submit]")
    admin.wait_for_load_state("networkidle")
    assert admin.locator("#registry-errors").count() == 0
    for row in ("#entry-enterprise-DELTA", "#entry-gateway-gw-delta", "#entry-meter-DELTA-M1", "#entry-meter-DELTA-M2"):
        assert admin.locator(row).count() == 1, row
    assert "multiplier: 40.0" in admin.inner_text("#entry-meter-DELTA-M1 .document")
    admin.goto(f"{served}/park/registry?as_of=2026-02-28")
    assert admin.locator("#entry-meter-DELTA-M1").count() == 0

    owner = test_browser._log_in(browser, served, "alpha-admin", park.passwords["alpha-admin"])
    owner.click("nav a[href='/enterprises/ALPHA/registry']")
    owner.wait_for_load_state("networkidle")
    owner.select_option("#propose-replacement select[name=meter]", "ALPHA-M")
    owner.fill("#propose-replacement input[name=at]", "2026-03-15T10:30")
    owner.fill("#propose-replacement input[name=old_final_reading]", "12,345.5")
    owner.fill("#propose-replacement input[name=new_initial_reading]", "0.25")
    owner.fill("#propose-replacement input[name=new_serial]", "NEW-SN-7")
    owner.fill("#propose-replacement input[name=reason]", "the main meter's display failed")
    owner.click("#propose-replacement button[type=submit]")
    owner.wait_for_load_state("networkidle")
    assert owner.get_attribute("#proposal-1", "data-state") == "proposed"

    analyst = test_browser._log_in(browser, served, "ana-analyst", park.passwords["ana-analyst"])
    analyst.goto(f"{served}/park/registry-proposals")
    assert "the main meter's display failed" in analyst.inner_text("#proposal-1")
    analyst.click("#proposal-1 button.approve")
    analyst.wait_for_load_state("networkidle")
    assert analyst.get_attribute("#proposal-1", "data-state") == "approved"

    analyst.goto(f"{served}/park/registry?as_of=2026-03-01")
    shown = analyst.inner_text("#entry-meter-ALPHA-M .document")
    assert "2026-03-15T10:30:00+08:00" in shown and "12345.5" in shown and "NEW-SN-7" in shown
    analyst.click("#entry-meter-ALPHA-M summary")
    history = analyst.inner_text("#entry-meter-ALPHA-M .history")
    assert "2026-01-01 → 2026-03-01 · office" in history and "2026-03-01 → in force · ana-analyst" in history
    analyst.screenshot(path=str(tmp_path / "registry-approved.png"), full_page=True)
    analyst.goto(f"{served}/park/registry?as_of=2026-02-28")
    assert "replacements" not in analyst.inner_text("#entry-meter-ALPHA-M .document")
    owner.reload()
    assert owner.get_attribute("#proposal-1", "data-state") == "approved"
