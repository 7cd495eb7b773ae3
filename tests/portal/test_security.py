"""The platform's security properties on real services: CSRF tokens on every form, sessions that end
with a password change, login throttling per user name and per address, no stack trace in a browser,
cookie flags, and the append-only, complete audit log (SQLite and the real PostgreSQL)."""

from __future__ import annotations

import logging

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from ledger.db import make_engine, migrate
from portal.app import SESSION_COOKIE
from portal.schema import audit_log, login_throttle
from tests.portal.park import csrf_of, login


def _audit(park):
    engine = make_engine(park.config.ledger_url, read_only=True)
    with engine.connect() as conn:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id)).mappings().all()
    engine.dispose()
    return [dict(r) for r in rows]


@pytest.mark.services
def test_every_form_refuses_a_post_without_its_token(park):
    posts = sorted(route.path for route in park.app.routes if isinstance(route, APIRoute) and "POST" in route.methods)
    assert "/login" in posts and "/logout" in posts and len(posts) >= 9
    mine = park.login("olga-admin")
    others = csrf_of(park.login("alpha-admin", client=park.client(address="10.1.1.1")).get("/account/password").text)
    form = {"username": "someone-new", "role": "park_viewer", "active": "false", "current": "x", "new": "y" * 12}
    for path in posts:
        url = path.replace("{enterprise_id}", "ALPHA").replace("{username}", "alpha-reporter")
        for token in (None, "", others, "forged-token"):
            data = form if token is None else form | {"csrf_token": token}
            response = mine.post(url, data=data)
            assert response.status_code == 403, (path, token)
            assert "Form refused" in response.text
    # Nothing of it happened: alpha-reporter is active, no user was made, the session still works.
    users = mine.get("/enterprises/ALPHA/users")
    assert users.status_code == 200 and "someone-new" not in users.text and users.text.count(">active<") == 2
    anonymous = park.client(address="10.1.1.2")
    anonymous.get("/login")  # the login page's own token, which the post leaves out
    refused = anonymous.post("/login", data={"username": "olga-admin", "password": park.passwords["olga-admin"]})
    assert refused.status_code == 403 and SESSION_COOKIE not in refused.cookies


@pytest.mark.services
def test_a_session_from_before_a_password_change_stops_working(park):
    first = park.login("alpha-admin")
    second = park.login("alpha-admin", client=park.client(address="10.2.2.2"))
    old_cookie = second.cookies[SESSION_COOKIE]
    assert second.get("/enterprises/ALPHA").status_code == 200
    csrf = csrf_of(first.get("/account/password").text)
    wrong = first.post(
        "/account/password", data={"csrf_token": csrf, "current": "nope", "new": "n" * 14, "repeat": "n" * 14}
    )
    assert wrong.status_code == 400
    assert second.get("/enterprises/ALPHA").status_code == 200  # a refused change ends nothing
    new_password = "a fresh password 42"
    changed = first.post(
        "/account/password",
        data={
            "csrf_token": csrf,
            "current": park.passwords["alpha-admin"],
            "new": new_password,
            "repeat": new_password,
        },
    )
    assert changed.status_code == 303
    assert first.get("/enterprises/ALPHA").status_code == 200  # the session that changed it gets a new cookie
    stale = second.get("/enterprises/ALPHA")
    assert stale.status_code == 303 and stale.headers["location"] == "/login"
    replay = park.client(address="10.2.2.3")
    replay.cookies.set(SESSION_COOKIE, old_cookie)
    assert replay.get("/enterprises/ALPHA/charts/trend.json").status_code == 401
    assert login(park.client(address="10.2.2.4"), "alpha-admin", park.passwords["alpha-admin"]).status_code == 401
    assert login(park.client(address="10.2.2.5"), "alpha-admin", new_password).status_code == 303
    actions = [(a["action"], a["to_value"]) for a in _audit(park) if a["target"] == "user:alpha-admin"]
    assert ("user.password", "refused: wrong current password") in actions and ("user.password", "changed") in actions


@pytest.mark.services
def test_ten_wrong_passwords_lock_the_user_name(park):
    for n in range(10):  # from ten addresses: the user name's count locks it
        assert login(park.client(address=f"10.3.0.{n}"), "alpha-reporter", f"wrong-{n}").status_code == 401
    right = login(park.client(address="10.3.1.1"), "alpha-reporter", park.passwords["alpha-reporter"])
    assert right.status_code == 429 and SESSION_COOKIE not in right.cookies
    assert "Too many wrong passwords" in right.text
    assert login(park.client(address="10.3.1.1"), "alpha-admin", park.passwords["alpha-admin"]).status_code == 303
    audit = [a for a in _audit(park) if a["target"] == "user:alpha-reporter"]
    assert [a["action"] for a in audit].count("login.failure") == 10
    assert [a["action"] for a in audit][-2:] == ["login.lockout", "login.locked"]


@pytest.mark.services
def test_ten_wrong_passwords_from_one_address_lock_the_address(park):
    for n in range(9):
        assert login(park.client(address="10.4.0.1"), f"guess-{n}", "wrong").status_code == 401
    # A right login of one's own account in between does not reset the address's count.
    assert login(park.client(address="10.4.0.1"), "vic-viewer", park.passwords["vic-viewer"]).status_code == 303
    assert login(park.client(address="10.4.0.1"), "guess-9", "wrong").status_code == 401
    locked = login(park.client(address="10.4.0.1"), "ana-analyst", park.passwords["ana-analyst"])
    assert locked.status_code == 429
    assert login(park.client(address="10.4.0.2"), "ana-analyst", park.passwords["ana-analyst"]).status_code == 303
    engine = make_engine(park.config.ledger_url, read_only=True)
    with engine.connect() as conn:
        rows = {r.key: r.failures for r in conn.execute(select(login_throttle))}
    engine.dispose()
    assert rows["addr:10.4.0.1"] == 10 and "addr:10.4.0.2" not in rows


@pytest.mark.services
def test_no_stack_trace_reaches_the_browser(park, caplog):
    from portal.app import create_app

    dead = park.config.influx.model_copy(update={"port": _free_port()})
    broken = type(park)(type(park.config)(**{**park.config.__dict__, "influx": dead}), park.passwords)
    broken._app = create_app(broken.config)
    client = broken.login("alpha-reporter", client=broken.client(raise_server_exceptions=False))
    with caplog.at_level(logging.ERROR, logger="parkcarbon.platform"):
        page = client.get("/enterprises/ALPHA")
    broken.close()
    assert page.status_code == 500
    for leak in ("Traceback", "InfluxError", 'File "', ".py", "httpx", str(dead.port), "not reachable"):
        assert leak not in page.text, leak
    assert "Something went wrong" in page.text and 'id="error-id"' in page.text
    error_id = page.text.split('id="error-id">')[1].split("<")[0]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the detail is in the log, under the page's id
    assert page.headers["content-type"].startswith("text/html")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.services
def test_session_cookie_flags(park):
    response = login(park.client(), "alpha-reporter", park.passwords["alpha-reporter"])
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie.replace("samesite", "")
    over_tls = login(
        park.client(base_url="https://testserver", address="10.5.0.1"), "alpha-admin", park.passwords["alpha-admin"]
    )
    assert "; secure" in over_tls.headers["set-cookie"].lower()
    assert (
        response.headers["x-frame-options"] == "DENY"
        and "default-src 'self'" in response.headers["content-security-policy"]
    )
    assert response.headers["cache-control"] == "no-store"
    assert park.client().get("/static/charts.js").headers["cache-control"].startswith("public")


@pytest.mark.services
def test_disabling_a_user_and_logging_out_end_sessions(park):
    admin = park.login("alpha-admin")
    reporter = park.login("alpha-reporter", client=park.client(address="10.6.0.1"))
    csrf = csrf_of(admin.get("/enterprises/ALPHA/users").text)
    assert (
        admin.post(
            "/enterprises/ALPHA/users/alpha-reporter/active", data={"csrf_token": csrf, "active": "false"}
        ).status_code
        == 303
    )
    assert reporter.get("/enterprises/ALPHA").status_code == 303
    assert login(park.client(address="10.6.0.2"), "alpha-reporter", park.passwords["alpha-reporter"]).status_code == 401
    made = admin.post(
        "/enterprises/ALPHA/users", data={"csrf_token": csrf, "username": "alpha-new", "role": "enterprise_reporter"}
    )
    assert made.status_code == 200
    password = made.text.split('id="new-password">')[1].split("<")[0]
    newcomer = park.login("alpha-new", password, client=park.client(address="10.6.0.3"))
    assert newcomer.get("/").headers["location"] == "/enterprises/ALPHA"
    refused = admin.post(
        "/enterprises/ALPHA/users", data={"csrf_token": csrf, "username": "x-park", "role": "park_admin"}
    )
    assert refused.status_code == 400  # an enterprise admin gives its own enterprise's roles only
    out = newcomer.post("/logout", data={"csrf_token": csrf_of(newcomer.get("/account/password").text)})
    assert out.status_code == 303 and newcomer.get("/enterprises/ALPHA").status_code == 303
    actions = [(a["actor"], a["action"], a["target"]) for a in _audit(park)]
    assert ("alpha-admin", "user.active", "user:alpha-reporter") in actions
    assert ("alpha-admin", "user.create", "user:alpha-new") in actions
    assert ("alpha-new", "logout", "user:alpha-new") in actions


@pytest.mark.services
def test_the_audit_log_records_logins_and_reads_of_another_partys_data(park):
    assert login(park.client(address="10.7.0.1"), "olga-admin", "wrong password").status_code == 401
    office = park.login("olga-admin", client=park.client(address="10.7.0.2"))
    assert office.get("/enterprises/ALPHA/statement.csv").status_code == 200
    assert office.get("/enterprises/ALPHA/reports/2026-02.html").status_code == 200
    assert office.get("/enterprises/ALPHA?period=2026-02").status_code == 200
    lines = [(a["actor"], a["client"], a["action"], a["target"], a["to_value"]) for a in _audit(park)]
    assert ("olga-admin", "10.7.0.1", "login.failure", "user:olga-admin", "wrong name or password") in lines
    assert ("olga-admin", "10.7.0.2", "login.success", "user:olga-admin", "session opened") in lines
    assert ("olga-admin", "10.7.0.2", "download", "enterprise:ALPHA", "statement_ALPHA_all.csv") in lines
    assert ("olga-admin", "10.7.0.2", "download", "enterprise:ALPHA", "report_ALPHA_2026-02.html") in lines
    assert ("olga-admin", "10.7.0.2", "view", "enterprise:ALPHA", "page 2026-02") in lines
    page = office.get("/park/audit")
    assert page.status_code == 200 and "statement_ALPHA_all.csv" in page.text


def test_the_audit_log_refuses_update_and_delete(ledger_url):
    engine = make_engine(ledger_url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (at, actor, actor_role, client, action, target, from_value, to_value) "
                "VALUES (CURRENT_TIMESTAMP, 'someone', 'park_admin', 'here', 'login.success', 'user:someone', '', '')"
            )
        )
    statements = ["UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"]
    if engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT actor FROM audit_log")).scalars().all() == ["someone"]
    engine.dispose()
