"""Banks' consent (portal/consent.py) and the bank's scope: every illegal change of a consent refused
with its own error, a re-grant a new row, an expired consent marked and audited, two grants at once
booking once (SQLite and the real PostgreSQL); a bank's scope sees no enterprise and none of the park;
over HTTP a bank reads only the reports of enterprises whose consent stands at the time of the request,
and the JSON report's figures equal those computed here from the stored points."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import DBAPIError

from ledger import results
from ledger.db import make_engine, migrate
from ledger.results import ResultRow
from park.measurements import ACTIVITY_MONTHLY, CREDITS, CREDITS_ANNUAL, DATA_QUALITY
from park.month import Month
from park.registry import load_registry
from portal import auth, consent
from portal.audit import Actor
from portal.schema import ROLES, audit_log, consents
from portal.scope import ForbiddenError, NotFoundError, Scope
from portal.workflow import NEW, IllegalTransitionError, InvalidInputError
from tests.portal.park import FIGURES, REGISTRY, csrf_of, leaks_bravo, login

TZ = "Asia/Shanghai"
OFFICE = Actor("olga-admin", "park_admin", None, "10.0.0.9")
ALPHA_ADMIN = Actor("alpha-admin", "enterprise_admin", "ALPHA", "10.0.0.1")
ALPHA_REPORTER = Actor("alpha-reporter", "enterprise_reporter", "ALPHA", "10.0.0.2")
BRAVO_ADMIN = Actor("bravo-admin", "enterprise_admin", "BRAVO", "10.0.0.3")
ANALYST = Actor("ana-analyst", "park_analyst", None, "10.0.0.4")
BANKER = Actor("hz-banker", "bank_viewer", None, "10.0.0.5")
BANK, OTHER_BANK = "HZBANK", "NBBANK"


# -- the state machine and the scope (no services) --------------------------------------------------


def test_only_the_listed_transitions_by_the_listed_roles_pass():
    """Every (from, to, role) not in CONSENT_TRANSITIONS is refused: 403 for a role that never makes the
    change, 409 for one that may but not from this state."""
    states = (NEW, "granted", "revoked", "expired")
    allowed = 0
    for from_state, to_state, role in itertools.product(states, states, (*ROLES, consent.SYSTEM)):
        listed = consent.CONSENT_TRANSITIONS.get((from_state, to_state), ())
        if role in listed:
            consent.check_transition("x", from_state, to_state, role)
            allowed += 1
            continue
        may_reach = any(role in roles for (_, to), roles in consent.CONSENT_TRANSITIONS.items() if to == to_state)
        with pytest.raises(IllegalTransitionError if may_reach else ForbiddenError):
            consent.check_transition("x", from_state, to_state, role)
    assert allowed == 3


@pytest.fixture
def registry(tmp_path: Path):
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY, encoding="utf-8")
    return load_registry(path)


class TestBankScope:
    def test_a_bank_user_sees_no_enterprise_and_none_of_the_park(self, registry):
        """A bank's scope holds no enterprise: every enterprise id is 404, the park's views 403."""
        scope = Scope.of("hz-banker", "bank_viewer", None, registry, BANK)
        assert scope.is_bank and not scope.is_park
        assert scope.enterprise_ids == frozenset() and scope.enterprises() == []
        assert scope.home == "/bank" and scope.require_bank() == BANK
        for enterprise_id in ("ALPHA", "BRAVO", "NOPE"):
            with pytest.raises(NotFoundError):
                scope.enterprise(enterprise_id)
        with pytest.raises(ForbiddenError):
            scope.require_park()
        with pytest.raises(ForbiddenError):
            scope.require_user_admin(None)
        frame = pd.DataFrame({"enterprise": ["ALPHA", "BRAVO"], "x": [1, 2]})
        assert len(scope.rows(frame)) == 0

    def test_a_bank_user_without_a_bank_is_refused(self, registry):
        with pytest.raises(ForbiddenError, match="no bank"):
            Scope.of("hz-banker", "bank_viewer", None, registry, None)

    def test_a_bank_id_gives_other_roles_nothing(self, registry):
        """A bank id passed with another role is dropped: the park stays the park, an enterprise its own."""
        assert Scope.of("x", "park_viewer", None, registry, BANK).bank_id is None
        scope = Scope.of("x", "enterprise_admin", "ALPHA", registry, BANK)
        assert scope.bank_id is None and not scope.is_bank and scope.enterprise_ids == {"ALPHA"}
        with pytest.raises(ForbiddenError):
            Scope.of("x", "enterprise_admin", "ALPHA", registry).require_bank()


# -- consents in the database (SQLite and PostgreSQL) -----------------------------------------------


@dataclass
class Book:
    engine: Engine

    def grant(self, actor: Actor = ALPHA_ADMIN, enterprise_id: str = "ALPHA", bank_id: str = BANK, **kw) -> int:
        today = kw.get("today", date(2026, 5, 1))
        with self.engine.begin() as conn:
            return consent.grant(conn, actor, enterprise_id, bank_id, kw.get("until"), today, datetime.now(UTC))

    def revoke(self, consent_id: int, actor: Actor = ALPHA_ADMIN, enterprise_id: str = "ALPHA", **kw) -> bool:
        today = kw.get("today", date(2026, 5, 1))
        with self.engine.begin() as conn:
            return consent.revoke(conn, actor, enterprise_id, consent_id, today, datetime.now(UTC))

    def states(self, enterprise_id: str = "ALPHA") -> list[tuple[int, str]]:
        with self.engine.connect() as conn:
            return [(c.id, c.state) for c in consent.load_consents(conn, enterprise_id)]

    def standing(self, today: date = date(2026, 5, 1), bank_id: str = BANK) -> list[str]:
        with self.engine.connect() as conn:
            return consent.standing(conn, bank_id, today)

    def audit(self, action_prefix: str = "consent.") -> list[tuple[str, str, str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(audit_log.c.action, audit_log.c.actor, audit_log.c.target, audit_log.c.to_value)
                .where(audit_log.c.action.startswith(action_prefix))
                .order_by(audit_log.c.id)
            ).all()
        return [tuple(r) for r in rows]


@pytest.fixture
def book(ledger_url: str) -> Iterator[Book]:
    """Two banks on an empty platform database."""
    engine = make_engine(ledger_url)
    migrate(engine)
    with engine.begin() as conn:
        consent.create_bank(conn, OFFICE, BANK, "Huzhou Test Bank 湖州测试银行", datetime.now(UTC))
        consent.create_bank(conn, OFFICE, OTHER_BANK, "Ningbo Test Bank", datetime.now(UTC))
    yield Book(engine)
    engine.dispose()


def test_every_illegal_change_of_a_consent_is_refused(book):
    """Reporters, other enterprises' admins, the park office and banks cannot grant or revoke; a
    revoked consent cannot be revoked again; a second grant to the same bank while one stands is 409."""
    with pytest.raises(ForbiddenError, match="enterprise_reporter cannot make a consent granted"):
        book.grant(ALPHA_REPORTER)
    with pytest.raises(ForbiddenError, match="own admin"):  # BRAVO's admin, for ALPHA
        book.grant(BRAVO_ADMIN)
    for actor in (OFFICE, ANALYST, BANKER):
        with pytest.raises(ForbiddenError):
            book.grant(actor)
    with pytest.raises(InvalidInputError, match="no bank 'NOPE'"):
        book.grant(bank_id="NOPE")
    with pytest.raises(InvalidInputError, match="ended already"):
        book.grant(until=date(2026, 4, 30))
    assert book.states() == []
    granted = book.grant()
    with pytest.raises(IllegalTransitionError, match=r"granted → granted .*standing consent: revoke it first"):
        book.grant()
    with pytest.raises(NotFoundError):  # BRAVO's admin, under its own id: not found
        book.revoke(granted, BRAVO_ADMIN, "BRAVO")
    with pytest.raises(ForbiddenError, match="own admin"):  # ... under ALPHA's
        book.revoke(granted, BRAVO_ADMIN, "ALPHA")
    for actor in (ALPHA_REPORTER, OFFICE, BANKER):
        with pytest.raises(ForbiddenError):
            book.revoke(granted, actor)
    assert book.standing() == ["ALPHA"]
    assert book.revoke(granted)
    with pytest.raises(IllegalTransitionError, match="revoked → revoked"):
        book.revoke(granted)
    with pytest.raises(NotFoundError):
        book.revoke(9999)
    assert book.standing() == []
    assert book.audit() == [
        ("consent.grant", "alpha-admin", f"consent:{granted} ALPHA→{BANK}", "granted until revoked"),
        ("consent.revoke", "alpha-admin", f"consent:{granted} ALPHA→{BANK}", "revoked"),
    ]


def test_a_regrant_is_a_new_record_and_history_stays(book):
    first = book.grant()
    book.revoke(first)
    second = book.grant(until=date(2026, 12, 31))
    other = book.grant(bank_id=OTHER_BANK)  # another bank at the same time: its own consent
    assert second != first
    assert book.states() == [(other, "granted"), (second, "granted"), (first, "revoked")]
    assert book.standing() == ["ALPHA"] and book.standing(bank_id=OTHER_BANK) == ["ALPHA"]
    with pytest.raises(DBAPIError, match="refused"), book.engine.begin() as conn:
        conn.execute(update(consents).where(consents.c.id == first).values(bank_id=OTHER_BANK))
    assert book.states()[-1] == (first, "revoked")


def test_a_consent_stands_through_its_date_and_then_expires(book):
    """Until 2026-06-30: it stands on that day, not the next; revoking it then is 409 and marks it
    expired (audited), and a new grant to the bank is possible."""
    granted = book.grant(until=date(2026, 6, 30))
    assert book.standing(date(2026, 6, 30)) == ["ALPHA"]
    assert book.standing(date(2026, 7, 1)) == []
    assert not book.revoke(granted, today=date(2026, 7, 1))
    assert book.states() == [(granted, "expired")]
    with pytest.raises(IllegalTransitionError, match="expired → revoked"):
        book.revoke(granted, today=date(2026, 7, 1))
    again = book.grant(today=date(2026, 7, 1))
    assert book.states() == [(again, "granted"), (granted, "expired")]
    assert [a[0] for a in book.audit()] == ["consent.grant", "consent.expire", "consent.grant"]


def test_two_grants_at_once_book_one(book):
    """Two admins' grants to the same bank at the same moment: one consent, the other gets 409."""
    other_admin = Actor("alpha-admin-2", "enterprise_admin", "ALPHA", "10.0.0.6")

    def attempt(actor: Actor) -> str:
        try:
            book.grant(actor)
        except IllegalTransitionError:
            return "refused"
        return "granted"

    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(attempt, [ALPHA_ADMIN, other_admin]))
    assert results == ["granted", "refused"]
    assert [s for _, s in book.states()] == ["granted"]


# -- over HTTP: the bank's reports ----------------------------------------------------------------------

services = pytest.mark.services
BANKER_NAME = "hz-banker"


@pytest.fixture
def bank_park(park):
    """The test park with the bank HZBANK and its user hz-banker (password in park.passwords)."""
    engine = make_engine(park.config.ledger_url)
    with engine.begin() as conn:
        consent.create_bank(conn, OFFICE, BANK, "Huzhou Test Bank", datetime.now(UTC))
        password = auth.generate_password()
        user = auth.create_user(conn, BANKER_NAME, "bank_viewer", None, password, OFFICE, set(FIGURES))
        consent.join_bank(conn, OFFICE, user.id, user.username, BANK)
    engine.dispose()
    park.passwords[BANKER_NAME] = password
    return park


def _grant(client, enterprise_id: str = "ALPHA", until: str = "") -> None:
    page = client.get(f"/enterprises/{enterprise_id}/consents")
    assert page.status_code == 200
    response = client.post(
        f"/enterprises/{enterprise_id}/consents",
        data={"csrf_token": csrf_of(page.text), "bank_id": BANK, "valid_until": until},
    )
    assert response.status_code == 303, response.text[:300]


@services
def test_a_bank_reads_only_while_consent_stands(bank_park):
    park = bank_park
    banker = park.login(BANKER_NAME)
    assert banker.get("/").headers["location"] == "/bank"
    assert "ALPHA" not in banker.get("/bank").text
    assert banker.get("/reports/credit/ALPHA/2026.json").status_code == 404  # no consent yet
    admin = park.login("alpha-admin", client=park.client(address="10.1.1.1"))
    _grant(admin)
    home = banker.get("/bank").text
    assert "/reports/credit/ALPHA/2026.html" in home and leaks_bravo(home) == []
    assert banker.get("/reports/credit/ALPHA/2026.json").status_code == 200
    assert banker.get("/reports/credit/ALPHA/2026.html").status_code == 200
    for refused in (
        "/reports/credit/BRAVO/2026.json",
        "/reports/credit/NOPE/2026.json",
        "/reports/credit/ALPHA/2019.json",
    ):
        response = banker.get(refused)
        assert response.status_code == 404 and leaks_bravo(response.text) == [], refused
    for page in ("/enterprises/ALPHA", "/enterprises/ALPHA/consents", "/enterprises/ALPHA/charts/trend.json"):
        assert banker.get(page).status_code == 404, page
    for page in ("/park", "/park/users", "/park/audit", "/park/requests", "/park/offers"):
        assert banker.get(page).status_code == 403, page
    consents_page = admin.get("/enterprises/ALPHA/consents").text
    consent_id = int(consents_page.split('data-consent="')[1].split('"')[0])
    revoked = admin.post(
        f"/enterprises/ALPHA/consents/{consent_id}/revoke", data={"csrf_token": csrf_of(consents_page)}
    )
    assert revoked.status_code == 303
    assert banker.get("/reports/credit/ALPHA/2026.json").status_code == 404  # the same session, at once
    assert "ALPHA" not in banker.get("/bank").text
    again = admin.post(f"/enterprises/ALPHA/consents/{consent_id}/revoke", data={"csrf_token": csrf_of(consents_page)})
    assert again.status_code == 409 and "revoked → revoked" in again.text
    for until, why in (("2026-13-01", "is not a date"), ("2020-01-01", "would have ended already")):
        bad = admin.post(
            "/enterprises/ALPHA/consents",
            data={"csrf_token": csrf_of(consents_page), "bank_id": BANK, "valid_until": until},
        )
        assert bad.status_code == 400 and why in bad.text, until
    reporter = park.login("alpha-reporter", client=park.client(address="10.1.1.2"))
    page = reporter.get("/enterprises/ALPHA/consents")
    assert page.status_code == 200 and 'class="revoke"' not in page.text  # no revoke button for a reporter
    for until in ("", "2020-01-01"):  # the role is refused first, whatever the date
        refused = reporter.post(
            "/enterprises/ALPHA/consents",
            data={"csrf_token": csrf_of(page.text), "bank_id": BANK, "valid_until": until},
        )
        assert refused.status_code == 403
    bravo = park.login("bravo-admin", client=park.client(address="10.1.1.3"))
    page = bravo.get("/enterprises/BRAVO/consents")
    refused = bravo.post(f"/enterprises/ALPHA/consents/{consent_id}/revoke", data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 404
    office = park.login("olga-admin", client=park.client(address="10.1.1.4"))
    audit = office.get("/park/audit").text
    assert "consent.grant" in audit and "consent.revoke" in audit and "report.read" in audit


def _change(now: float, then: float) -> float:
    return (now - then) / abs(then) * 100


@services
def test_the_json_report_equals_the_stored_points(bank_park, store):
    """ALPHA's 2026 report (provisional: March is the latest month) against FIGURES, the points the
    park fixture wrote, and activity points written here: intensity 0.5 × grade, green share
    (green ≤ grid + PV) / (grid + PV), completeness the mean of the meters' months; then a settled
    2025 (CREDITS_ANNUAL) is preferred over year to date and is the previous year of 2026."""
    park = bank_park
    march = Month.of("2026-03", TZ).start_ns
    feb = Month.of("2026-02", TZ).start_ns
    points = []
    for at, grid, green, pv in ((feb, 1000.0, 150.0, 40.0), (march, 1200.0, 300.0, 60.0)):
        for source, quantity in (
            ("grid_electricity", grid),
            ("green_electricity_certified", green),
            ("pv_self_consumed", pv),
        ):
            tags = {"enterprise": "ALPHA", "workshop": "", "source": source, "origin": "metered"}
            points.append(ACTIVITY_MONTHLY.point(tags, {"quantity": quantity, "unit": "kWh"}, at))
    points.append(  # a second meter in March, less complete
        DATA_QUALITY.point(
            {"enterprise": "ALPHA", "meter": "ALPHA-M2", "register": "active_energy_import"},
            {"completeness": 0.8},
            march,
        )
    )
    store.write(points)
    admin = park.login("alpha-admin", client=park.client(address="10.1.1.1"))
    _grant(admin)
    banker = park.login(BANKER_NAME)
    report = banker.get("/reports/credit/ALPHA/2026.json").json()
    grade_feb, grade_mar = FIGURES["ALPHA"]["2026-02"][1], FIGURES["ALPHA"]["2026-03"][1]
    assert report["schema"] == "parkcarbon.credit-report/1"
    assert report["status"] == "provisional" and report["latest_period"] == "2026-03"
    assert report["grade"] == grade_mar and report["rating"] == "B"
    assert report["credits_tco2"] == FIGURES["ALPHA"]["2026-03"][0]
    assert report["emissions_tco2"] == FIGURES["ALPHA"]["2026-03"][3] * 2
    intensity = report["intensity"]
    assert intensity["value_t_per_10k_cny"] == 0.5 * grade_mar
    assert [m["intensity_ytd_t_per_10k_cny"] for m in intensity["monthly_ytd"]] == [0.5 * grade_feb, 0.5 * grade_mar]
    assert intensity["previous_year_t_per_10k_cny"] is None and intensity["trend"] == "flat"  # 1.0 → 1.0
    green_kwh = min(150.0 + 300.0, 1000.0 + 1200.0) + 40.0 + 60.0
    assert math.isclose(report["green_share"], green_kwh / (1000.0 + 1200.0 + 40.0 + 60.0))
    assert math.isclose(report["data_completeness"]["mean_meter_completeness"], (0.99 + 0.99 + 0.8) / 3)
    assert report["data_completeness"]["months_with_data"] == 2
    assert report["validity"]["valid_until"] == "2026-04-30"  # the end of the month after March
    assert report["result_version"] is None and report["result_state"] is None  # 2026 is not settled
    assert report["provenance"]["inputs_sha256"] is None  # the fixture's CREDITS rows carry no hash

    store.write(  # 2025 settled, then 2026 against it
        [
            CREDITS_ANNUAL.point(
                {"enterprise": "ALPHA", "industry": "C39"},
                {
                    "grade": 3,
                    "rating": "C",
                    "intensity_t_per_10k_cny": 1.25,
                    "credits_tco2": 40.0,
                    "policy_version": "p-2025",
                    "factor_set": "cn-2025",
                    "inputs_sha256": "c" * 64,
                },
                Month.of("2025-01", TZ).start_ns,
            ),
            CREDITS.point(  # a year-to-date row of 2025 the settled one outranks
                {"enterprise": "ALPHA", "industry": "C39"},
                {"grade": 4, "intensity_t_per_10k_cny": 9.0},
                Month.of("2025-11", TZ).start_ns,
            ),
        ]
    )
    engine = make_engine(park.config.ledger_url)  # two settlements of 2025: the report names the newest
    with engine.connect() as conn:
        before = results.current_version(conn, 2025)
    for grade in (4, 3):
        row = ResultRow("ALPHA", "C39", grade, "C", None, 40.0, None, None, 1.25, None, "c" * 64, "p-2025", "cn-2025")
        newest, recorded = results.record_version(engine, 2025, [row], date(2026, 6, 30), "proposed", "office")
        assert recorded
    engine.dispose()
    settled = banker.get("/reports/credit/ALPHA/2025.json").json()
    assert settled["result_version"] == newest.version == (before.version if before else 0) + 2
    assert settled["result_state"] == "draft"
    assert settled["status"] == "settled" and settled["grade"] == 3 and settled["rating"] == "C"
    assert settled["provenance"] == {"inputs_sha256": "c" * 64, "policy_version": "p-2025", "factor_set": "cn-2025"}
    assert settled["validity"]["valid_until"] == "2026-12-31"
    now = banker.get("/reports/credit/ALPHA/2026.json").json()["intensity"]
    assert now["previous_year_t_per_10k_cny"] == 1.25
    assert math.isclose(now["change_from_previous_year_pct"], _change(1.0, 1.25)) and now["trend"] == "falling"
    html = banker.get("/reports/credit/ALPHA/2025.html")
    assert html.status_code == 200 and f'<code id="inputs-sha256">{"c" * 64}</code>' in html.text


@services
def test_the_park_admin_adds_a_bank_and_its_user(park):
    office = park.login("olga-admin")
    page = office.get("/park/users").text
    made = office.post("/park/banks", data={"csrf_token": csrf_of(page), "bank_id": "QZBANK", "name": "Quzhou Bank"})
    assert made.status_code == 303
    page = office.get("/park/users").text
    assert "Quzhou Bank" in page
    no_bank = office.post("/park/users", data={"csrf_token": csrf_of(page), "username": "qz-x", "role": "bank_viewer"})
    assert no_bank.status_code == 400 and "needs bank" in no_bank.text
    created = office.post(
        "/park/users",
        data={"csrf_token": csrf_of(page), "username": "qz-banker", "role": "bank_viewer", "bank_id": "QZBANK"},
    )
    assert created.status_code == 200 and "bank QZBANK" in created.text
    password = created.text.split('id="new-password">')[1].split("<")[0]
    banker = park.client(address="10.2.2.2")
    assert login(banker, "qz-banker", password).status_code == 303
    assert banker.get("/bank").status_code == 200
    assert banker.get("/park/users").status_code == 403
    alpha = park.login("alpha-admin", client=park.client(address="10.2.2.3"))
    page = alpha.get("/enterprises/ALPHA/users").text
    refused = alpha.post(
        "/enterprises/ALPHA/users", data={"csrf_token": csrf_of(page), "username": "a-b", "role": "bank_viewer"}
    )
    assert refused.status_code == 400
    refused = alpha.post("/park/banks", data={"csrf_token": csrf_of(page), "bank_id": "XBANK", "name": "X"})
    assert refused.status_code == 403


@services
def test_a_bank_reaches_nothing_but_its_consented_reports(bank_park):
    """Every route of the application, with BRAVO's and ALPHA's ids, asked by the bank's user while only
    ALPHA's consent stands: nothing of BRAVO's in any answer, and nothing answers 2xx but the bank's
    home, ALPHA's reports and the user's own account pages."""
    from tests.portal.test_isolation import _ask, _routes, _urls

    park = bank_park
    _grant(park.login("alpha-admin", client=park.client(address="10.3.3.1")))
    banker = park.login(BANKER_NAME, client=park.client(address="10.3.3.2"))
    csrf = csrf_of(banker.get("/account/password").text)
    allowed = {
        ("GET", "/bank"),
        ("GET", "/reports/credit/ALPHA/2026.html"),
        ("GET", "/reports/credit/ALPHA/2026.json"),
        ("GET", "/account/password"),
        ("GET", "/healthz"),
    }
    answered = set()
    asked = 0
    for method, template in _routes(park.app):
        for which in ("other", "own"):
            for url in _urls(template, which):
                response = _ask(banker, method, url, csrf, asked)
                asked += 1
                where = f"{method} {url}"
                assert response.status_code < 500, where
                assert leaks_bravo(response.text + response.headers.get("location", "")) == [], where
                if 200 <= response.status_code < 300:
                    answered.add((method, url))
    assert asked > 100
    assert answered - allowed == set()
    assert {("GET", "/bank"), ("GET", "/reports/credit/ALPHA/2026.json")} <= answered
