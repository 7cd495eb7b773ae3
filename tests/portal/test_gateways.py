"""Gateways' broker credentials on the platform (portal/gateways.py): issued, rotated and revoked by the
park admin only, each change once under concurrency, audited without the password, and only the
Mosquitto hash stored."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import yaml
from sqlalchemy import Engine, select

from ledger.db import make_engine, migrate
from park.mqtt_passwords import verify_password
from park.registry import Registry, parse_registry
from portal import gateways
from portal.audit import Actor
from portal.schema import audit_log, gateway_credentials
from portal.scope import ForbiddenError, NotFoundError
from portal.workflow import IllegalTransitionError
from tests.portal.park import REGISTRY, csrf_of

ADMIN = Actor("olga-admin", "park_admin", None, "10.0.0.1")
ADMIN_2 = Actor("otto-admin", "park_admin", None, "10.0.0.2")
THREADS = 4


@dataclass
class Desk:
    engine: Engine
    registry: Registry

    def issue(self, gateway_id: str, actor: Actor = ADMIN) -> str:
        with self.engine.begin() as conn:
            return gateways.issue(conn, actor, self.registry, gateway_id, datetime.now(UTC))

    def rotate(self, gateway_id: str, generation: int, actor: Actor = ADMIN) -> str:
        with self.engine.begin() as conn:
            return gateways.rotate(conn, actor, self.registry, gateway_id, generation, datetime.now(UTC))

    def revoke(self, gateway_id: str, actor: Actor = ADMIN) -> None:
        with self.engine.begin() as conn:
            gateways.revoke(conn, actor, self.registry, gateway_id, datetime.now(UTC))

    def row(self, gateway_id: str):
        with self.engine.connect() as conn:
            return conn.execute(select(gateway_credentials).where(gateway_credentials.c.gateway_id == gateway_id)).one()

    def audit(self) -> list[tuple[str, str, str, str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    audit_log.c.action,
                    audit_log.c.actor,
                    audit_log.c.target,
                    audit_log.c.from_value,
                    audit_log.c.to_value,
                )
                .where(audit_log.c.action.like("gateway.%"))
                .order_by(audit_log.c.id)
            )
            return [tuple(r) for r in rows]


@pytest.fixture
def desk(ledger_url: str) -> Iterator[Desk]:
    engine = make_engine(ledger_url)
    migrate(engine)
    yield Desk(engine, parse_registry(yaml.safe_load(REGISTRY)))
    engine.dispose()


def test_issue_rotate_revoke_store_only_the_hash_and_are_audited(desk):
    """Each step keeps only a $7$ entry that verifies the password handed out; the audit log names every
    change (from → to, by whom) and never holds a password."""
    first = desk.issue("gw-alpha")
    row = desk.row("gw-alpha")
    assert (row.state, row.generation, row.issued_by) == ("active", 1, "olga-admin")
    assert row.password_hash.startswith("$7$101$") and verify_password(first, row.password_hash)
    assert first not in row.password_hash
    second = desk.rotate("gw-alpha", 1, ADMIN_2)
    row = desk.row("gw-alpha")
    assert (row.state, row.generation, row.rotated_by) == ("active", 2, "otto-admin")
    assert verify_password(second, row.password_hash) and not verify_password(first, row.password_hash)
    desk.revoke("gw-alpha")
    row = desk.row("gw-alpha")
    assert (row.state, row.revoked_by) == ("revoked", "olga-admin")
    third = desk.issue("gw-alpha")  # issued again after revocation: a new password, a new generation
    row = desk.row("gw-alpha")
    assert (row.state, row.generation, row.revoked_at) == ("active", 3, None)
    assert verify_password(third, row.password_hash)
    assert desk.audit() == [
        ("gateway.issue", "olga-admin", "gateway:gw-alpha", "none", "active #1"),
        ("gateway.rotate", "otto-admin", "gateway:gw-alpha", "active #1", "active #2"),
        ("gateway.revoke", "olga-admin", "gateway:gw-alpha", "active #2", "revoked"),
        ("gateway.issue", "olga-admin", "gateway:gw-alpha", "revoked", "active #3"),
    ]
    logged = " ".join(" ".join(r) for r in desk.audit())
    assert all(p not in logged for p in (first, second, third))


def test_every_illegal_change_is_refused_and_changes_nothing(desk):
    """Rotate or revoke without credentials, issue twice, rotate a stale generation, revoke twice, rotate a
    revoked gateway: 409 each; other roles: 403; an id not in the registry: 404."""
    with pytest.raises(IllegalTransitionError, match="none → active"):
        desk.rotate("gw-bravo", 0)
    with pytest.raises(IllegalTransitionError, match="none → revoked"):
        desk.revoke("gw-bravo")
    desk.issue("gw-bravo")
    with pytest.raises(IllegalTransitionError, match="already issued"):
        desk.issue("gw-bravo")
    with pytest.raises(IllegalTransitionError, match="rotated or revoked by someone else"):
        desk.rotate("gw-bravo", 0)  # the page showed an older generation
    before = desk.row("gw-bravo")
    desk.revoke("gw-bravo")
    with pytest.raises(IllegalTransitionError, match="revoked → revoked"):
        desk.revoke("gw-bravo")
    with pytest.raises(IllegalTransitionError, match="only active credentials are rotated"):
        desk.rotate("gw-bravo", before.generation)
    for actor in (
        Actor("ana-analyst", "park_analyst", None, "x"),
        Actor("aud-auditor", "auditor", None, "x"),
        Actor("bravo-admin", "enterprise_admin", "BRAVO", "x"),
    ):
        with pytest.raises(ForbiddenError):
            desk.issue("gw-charlie", actor)
        with pytest.raises(ForbiddenError):
            desk.revoke("gw-bravo", actor)
    with pytest.raises(NotFoundError):
        desk.issue("gw-nowhere")
    with pytest.raises(NotFoundError):
        desk.issue("collector-0")
    after = desk.row("gw-bravo")
    assert (after.state, after.generation, after.password_hash) == ("revoked", 1, before.password_hash)
    assert [a[0] for a in desk.audit()] == ["gateway.issue", "gateway.revoke"]
    with desk.engine.connect() as conn:
        assert conn.execute(select(gateway_credentials.c.gateway_id)).scalars().all() == ["gw-bravo"]


@pytest.mark.parametrize("action", ["issue", "rotate", "revoke"])
def test_concurrent_admins_change_a_gateway_once(desk, action):
    """THREADS admins clicking the same button at once: one succeeds, the others get 409, one audit line."""
    if action != "issue":
        desk.issue("gw-charlie")
    start = threading.Barrier(THREADS)

    def act(n: int) -> str:
        start.wait(timeout=60)
        who = ADMIN if n % 2 else ADMIN_2
        try:
            if action == "issue":
                desk.issue("gw-charlie", who)
            elif action == "rotate":
                desk.rotate("gw-charlie", 1, who)
            else:
                desk.revoke("gw-charlie", who)
        except IllegalTransitionError:
            return "refused"
        return "done"

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(act, range(THREADS)))
    assert sorted(outcomes) == ["done"] + ["refused"] * (THREADS - 1)
    assert [a[0] for a in desk.audit()].count(f"gateway.{action}") == 1
    assert desk.row("gw-charlie").generation == (2 if action == "rotate" else 1)


def test_broker_accounts_are_the_active_hashes_and_the_revoked_ids(desk):
    """What `parkcarbon broker sync` reads: active gateways with their entries, revoked ones by id."""
    alpha = desk.issue("gw-alpha")
    desk.issue("gw-bravo")
    desk.revoke("gw-bravo")
    with desk.engine.connect() as conn:
        accounts = gateways.broker_accounts(conn)
    assert set(accounts.active) == {"gw-alpha"} and verify_password(alpha, accounts.active["gw-alpha"])
    assert accounts.revoked == {"gw-bravo"}


@pytest.mark.services
def test_the_page_shows_the_password_once_and_only_to_the_park_admin(park):
    """Over HTTP: the park admin issues credentials, the answer shows the password, the list afterwards
    does not; a second issue is 409, an analyst's request 403, an unknown gateway 404."""
    admin = park.login("olga-admin")
    listing = admin.get("/park/gateways")
    assert listing.status_code == 200 and 'id="gateway-gw-alpha"' in listing.text
    issued = admin.post("/park/gateways/gw-alpha/issue", data={"csrf_token": csrf_of(listing.text)})
    assert issued.status_code == 200
    password = issued.text.split('id="gateway-password">')[1].split("<")[0]
    assert len(password) >= 32
    again = admin.get("/park/gateways")
    assert password not in again.text and "gateway-password" not in again.text
    assert "有效 active #1" in again.text
    twice = admin.post("/park/gateways/gw-alpha/issue", data={"csrf_token": csrf_of(again.text)})
    assert twice.status_code == 409 and password not in twice.text
    assert admin.post("/park/gateways/gw-nowhere/issue", data={"csrf_token": csrf_of(again.text)}).status_code == 404
    rotated = admin.post("/park/gateways/gw-alpha/rotate", data={"csrf_token": csrf_of(again.text), "generation": "1"})
    new_password = rotated.text.split('id="gateway-password">')[1].split("<")[0]
    assert rotated.status_code == 200 and new_password != password
    stale = admin.post("/park/gateways/gw-alpha/rotate", data={"csrf_token": csrf_of(again.text), "generation": "1"})
    assert stale.status_code == 409
    revoked = admin.post("/park/gateways/gw-alpha/revoke", data={"csrf_token": csrf_of(again.text)})
    assert revoked.status_code == 303
    analyst = park.login("ana-analyst")
    assert analyst.get("/park/gateways").status_code == 403
    page = analyst.get("/park")
    assert analyst.post("/park/gateways/gw-bravo/issue", data={"csrf_token": csrf_of(page.text)}).status_code == 403
    audit = admin.get("/park/audit").text
    assert "gateway.issue" in audit and "gateway.revoke" in audit
    assert password not in audit and new_password not in audit
