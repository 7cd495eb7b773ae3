"""Tenant isolation, route by route from the application's own route table (a new route is covered
without touching this test), for every role, with another enterprise's ids in every path parameter and
query parameter and in every form: an enterprise's people see zero rows of another enterprise, on
SQLite and on the real PostgreSQL."""

from __future__ import annotations

import itertools
from urllib.parse import urlencode

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from portal.schema import ENTERPRISE_ROLES
from tests.portal.park import (
    ALPHA_EVIDENCE,
    ALPHA_OBJECTION,
    ALPHA_OFFER,
    ALPHA_REQUEST,
    BRAVO_EVIDENCE,
    BRAVO_OBJECTION,
    BRAVO_OFFER,
    BRAVO_REQUEST,
    RESULT_VERSION,
    ROLES_USERS,
    csrf_of,
    leaks_bravo,
    login,
)

pytestmark = pytest.mark.services

# Values for every path parameter any route has: the other enterprise's (BRAVO) and the user's own.
PATH_VALUES = {
    "enterprise_id": {"other": ["BRAVO"], "own": ["ALPHA"]},
    "period": {"other": ["2026-03", "2026-02"], "own": ["2026-03"]},
    "username": {"other": ["bravo-admin", "bravo-reporter"], "own": ["alpha-nobody"]},
    "kind": {"other": ["csv", "xlsx"], "own": ["csv", "xlsx"]},
    "request_id": {"other": [str(BRAVO_REQUEST)], "own": [str(ALPHA_REQUEST)]},
    "version": {"other": ["1"], "own": ["1"]},
    "evidence_id": {"other": [str(BRAVO_EVIDENCE)], "own": [str(ALPHA_EVIDENCE)]},
    "offer_id": {"other": [str(BRAVO_OFFER)], "own": [str(ALPHA_OFFER)]},
    "year": {"other": ["2026"], "own": ["2026"]},  # credit reports: BRAVO's is refused by its enterprise_id
    "consent_id": {"other": ["1"], "own": ["1"]},  # no consent is seeded: any id is another's or none
    # result versions: the seeded one has rows of both; the objection ids are BRAVO's and ALPHA's own
    "version_id": {"other": [str(RESULT_VERSION)], "own": [str(RESULT_VERSION)]},
    "objection_id": {"other": [str(BRAVO_OBJECTION)], "own": [str(ALPHA_OBJECTION)]},
    "list_name": {"other": ["diagnosis"], "own": ["incentive"]},
    "fmt": {"other": ["csv"], "own": ["xlsx"]},
    # the registry edited on the platform (portal/registry_edit.py); no proposal is seeded: any id is
    # another's or none (tests/portal/test_registry_pages.py walks a seeded BRAVO proposal)
    "entry_kind": {"other": ["meter"], "own": ["meter"]},
    "entity_id": {"other": ["BRAVO-M"], "own": ["ALPHA-M"]},
    "proposal_id": {"other": ["1"], "own": ["1"]},
    # gateways' broker credentials (portal/gateways.py): the park admin's only, 403 for everyone else
    "gateway_id": {"other": ["gw-bravo"], "own": ["gw-alpha"]},
}
QUERY = {
    "period": "2026-03",
    "year": "2026",
    "enterprise_id": "BRAVO",
    "enterprise": "BRAVO",
    "username": "bravo-admin",
}
LAST = ("/logout",)  # ends the session: asked last


def _routes(app) -> list[tuple[str, str]]:
    """(method, path template) of every route; anything but API routes and the static files fails here."""
    found = []
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/static":
            continue
        assert isinstance(route, APIRoute), f"a route of an unknown kind: {route!r}"
        found += [(method, route.path) for method in sorted(route.methods)]
    return sorted(found, key=lambda r: (r[1] in LAST, r[1], r[0]))


def _urls(template: str, which: str) -> list[str]:
    names = [part.split("}")[0] for part in template.split("{")[1:]]
    unknown = [n for n in names if n not in PATH_VALUES]
    assert not unknown, f"{template}: add values for {unknown} to PATH_VALUES"
    urls = []
    for values in itertools.product(*(PATH_VALUES[n][which] for n in names)):
        url = template
        for name, value in zip(names, values, strict=True):
            url = url.replace("{" + name + "}", value)
        urls.append(url)
    return urls


def _ask(client, method: str, url: str, csrf: str, n: int):
    if method in ("GET", "HEAD"):
        return client.request(method, f"{url}?{urlencode(QUERY)}")
    form = {
        "csrf_token": csrf,
        "username": f"new-user-{n}",
        "role": "enterprise_reporter",
        "enterprise_id": "BRAVO",
        "active": "false",
        "password": "not-the-password",
        "current": "not-the-password",
        "new": "a-new-password-123",
        "repeat": "a-new-password-123",
        "item": "natural_gas",
        "period_asked": "2026-03",
        "due_on": "2026-04-15",
        "note": "asked by the isolation test",
        "quantity": "12",
        "unit": "Nm3",
        "reason": "refused by the isolation test",
    }
    return client.request(method, f"{url}?{urlencode(QUERY)}", data=form)


def test_every_route_every_role_shows_nothing_of_another_enterprise(park):
    routes = _routes(park.app)
    assert len(routes) >= 20
    asked = 0
    order = sorted(ROLES_USERS, key=lambda u: ROLES_USERS[u][0] not in ENTERPRISE_ROLES)  # enterprises' roles first
    checked_bravo = False
    for n, username in enumerate(order):
        role, enterprise = ROLES_USERS[username]
        if enterprise == "BRAVO":
            continue  # the other enterprise's own people
        if role not in ENTERPRISE_ROLES and not checked_bravo:
            _bravo_untouched(park)
            checked_bravo = True
        client = park.login(username, client=park.client(address=f"10.0.0.{n + 1}"))
        csrf = csrf_of(client.get("/account/password").text)
        for method, template in routes:
            for which in ("other", "own"):
                for url in _urls(template, which):
                    response = _ask(client, method, url, csrf, asked)
                    asked += 1
                    where = f"{username} ({role}) {method} {url}"
                    assert response.status_code < 500, where
                    if role in ENTERPRISE_ROLES:
                        shown = response.text + response.headers.get("location", "") + str(response.headers)
                        assert leaks_bravo(shown) == [], where
                        if which == "other" and "{enterprise_id}" in template:
                            assert response.status_code == 404, where
    assert checked_bravo
    assert asked > 300


def _bravo_untouched(park) -> None:
    """After every enterprise role asked everything of BRAVO's: its people are as they were."""
    client = park.login("olga-admin", client=park.client(address="10.9.9.9"))
    users = client.get("/enterprises/BRAVO/users").text
    assert users.count(">active<") == 2 and "new-user-" not in users
    requests = client.get("/enterprises/BRAVO/requests").text  # no new request, version or change of state
    assert requests.count("data-request=") == 1 and 'data-status="v1 submitted"' in requests
    offers = client.get("/enterprises/BRAVO/offers").text  # its offer to CHARLIE: still open, no new one
    assert offers.count("data-offer=") == 1 and 'data-state="open"' in offers
    for username in ("bravo-admin", "bravo-reporter"):
        fresh = park.client(address="10.9.9.8")
        assert login(fresh, username, park.passwords[username]).status_code == 303


def test_ids_of_another_enterprise_answer_as_unknown_ones(park):
    """BRAVO's id and an id that exists nowhere get the same answer: ids cannot be probed."""
    client = park.login("alpha-reporter")
    for path in ("/enterprises/{}", "/enterprises/{}/statement.csv", "/enterprises/{}/charts/trend.json"):
        other, unknown = client.get(path.format("BRAVO")), client.get(path.format("NOWHERE"))
        assert other.status_code == unknown.status_code == 404
        assert other.text.replace("BRAVO", "X") == unknown.text.replace("NOWHERE", "X")
    assert client.get("/park").status_code == 403
