"""A bank's credit report in Debian's headless Chromium, on the test park (SQLite and PostgreSQL): the
park admin adds a bank and its user; ALPHA's admin grants the bank consent from the enterprise page;
the bank's user finds ALPHA's report on its home page and reads it as HTML and as JSON, the figures
those of the stored results; ALPHA's admin revokes; the same URL then answers 404 and the report is gone
from the bank's list; the audit log holds the grant, the reads and the revocation."""

from __future__ import annotations

import json

import pytest

from tests.portal.park import FIGURES
from tests.portal.test_browser import _log_in, browser, served

__all__ = ["browser", "served"]
pytestmark = [pytest.mark.services, pytest.mark.browser]

BANK = "HZBANK"


def _bank_user(page, base: str) -> str:
    """As the park admin: add the bank and its user; the user's generated password."""
    page.goto(f"{base}/park/users")
    page.fill("#new-bank input[name=bank_id]", BANK)
    page.fill("#new-bank input[name=name]", "Huzhou Test Bank 湖州测试银行")
    page.click("#new-bank button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert BANK in page.inner_text("#banks")
    page.fill("form.stack:not(#new-bank) input[name=username]", "hz-banker")
    page.select_option("form.stack:not(#new-bank) select[name=role]", "bank_viewer")
    page.select_option("form.stack:not(#new-bank) select[name=bank_id]", BANK)
    page.click("form.stack:not(#new-bank) button[type=submit]")
    page.wait_for_load_state("networkidle")
    return page.inner_text("#new-password").strip()


def test_a_bank_reads_the_report_with_consent_and_is_refused_after_revocation(park, served, browser, tmp_path):
    office = _log_in(browser, served, "olga-admin", park.passwords["olga-admin"])
    password = _bank_user(office, served)

    admin = _log_in(browser, served, "alpha-admin", park.passwords["alpha-admin"])
    admin.click("#consents-link")
    admin.wait_for_load_state("networkidle")
    assert admin.url == f"{served}/enterprises/ALPHA/consents"
    admin.select_option("#grant select[name=bank_id]", BANK)
    admin.click("#grant button[type=submit]")
    admin.wait_for_load_state("networkidle")
    row = admin.locator(f'#consents tr[data-bank="{BANK}"]')
    assert row.get_attribute("data-state") == "granted"
    admin.screenshot(path=str(tmp_path / "consent-granted.png"), full_page=True)

    banker = _log_in(browser, served, "hz-banker", password)
    assert banker.url == f"{served}/bank"
    assert banker.locator("#reports tr[data-enterprise]").count() == 1
    banker.click('#reports tr[data-enterprise="ALPHA"] a.report:text("2026")')
    banker.wait_for_load_state("networkidle")
    url = banker.url
    assert url == f"{served}/reports/credit/ALPHA/2026.html"
    grade, credits = FIGURES["ALPHA"]["2026-03"][1], FIGURES["ALPHA"]["2026-03"][0]
    assert banker.inner_text("#grade") == str(grade)
    assert float(banker.inner_text("#intensity")) == 0.5 * grade  # as the fixture stored it
    assert banker.inner_text("#valid-until") == "2026-04-30"
    banker.screenshot(path=str(tmp_path / "credit-report.png"), full_page=True)
    response = banker.goto(url.replace(".html", ".json"))
    assert response is not None and response.status == 200
    report = json.loads(response.text())
    assert report["grade"] == grade and report["credits_tco2"] == credits
    assert report["enterprise"]["id"] == "ALPHA" and "bravo" not in response.text().lower()

    row.locator("button.revoke").click()
    admin.wait_for_load_state("networkidle")
    assert admin.locator(f'#consents tr[data-bank="{BANK}"]').get_attribute("data-state") == "revoked"

    refused = banker.goto(url)
    assert refused is not None and refused.status == 404
    refused = banker.goto(url.replace(".html", ".json"))
    assert refused is not None and refused.status == 404
    banker.goto(f"{served}/bank")
    assert banker.locator("#reports tr[data-enterprise]").count() == 0
    assert banker.locator("#none").count() == 1
    banker.screenshot(path=str(tmp_path / "bank-after-revocation.png"), full_page=True)

    office.goto(f"{served}/park/audit")
    audit = office.inner_text("main")
    for action in ("bank.create", "bank.user", "consent.grant", "report.read", "consent.revoke"):
        assert action in audit, action
