"""``parkcarbon platform create-admin`` and ``parkcarbon platform serve`` as processes, as an operator
runs them: the generated password is printed once and works; the served platform shows the park."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import pytest

from tests.portal.park import FIGURES, csrf_of


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "parkcarbon", "platform", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKCARBON_")}
    return env | values


def test_create_admin_prints_a_password_once_and_refuses_a_taken_name(tmp_path):
    env = _env(PARKCARBON_RUN_DIR=str(tmp_path), PARKCARBON_LEDGER__URL=f"sqlite:///{tmp_path / 'platform.sqlite'}")
    made = _run(env, "create-admin", "--username", "first-admin")
    assert made.returncode == 0, made.stderr
    password = made.stdout.strip().splitlines()[-1]
    assert len(password) >= 24 and password not in made.stderr
    again = _run(env, "create-admin", "--username", "first-admin")
    assert again.returncode == 1 and "exists already" in again.stderr
    bad = _run(env, "create-admin", "--username", "X")
    assert bad.returncode == 1 and "user name" in bad.stderr


@pytest.mark.services
def test_serve_runs_the_platform_on_the_configured_database(park, settings, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = _env(
        PARKCARBON_RUN_DIR=str(settings.run_dir),  # the session's services: ports and the READ account
        PARKCARBON_LEDGER__URL=park.config.ledger_url,
        PARKCARBON_REGISTRY=str(park.config.registry),
        PARKCARBON_INFLUX__DATABASE=settings.influx.database,
    )
    made = _run(env, "create-admin", "--username", "ops-admin")
    assert made.returncode == 0, made.stderr
    password = made.stdout.strip().splitlines()[-1]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "parkcarbon", "platform", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        with httpx.Client(base_url=base, follow_redirects=True) as client:
            token = csrf_of(client.get("/login").text)
            logged_in = client.post("/login", data={"username": "ops-admin", "password": password, "csrf_token": token})
            assert logged_in.status_code == 200 and str(logged_in.url) == f"{base}/park"
            shown = set(re.findall(r'<tr data-enterprise="(\w+)">', logged_in.text))
            assert shown == set(FIGURES)
            assert "server" not in logged_in.headers  # uvicorn does not name itself
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_demo_users_writes_the_demo_logins_into_the_run_directory(tmp_path):
    import json
    import stat

    env = _env(PARKCARBON_RUN_DIR=str(tmp_path), PARKCARBON_LEDGER__URL=f"sqlite:///{tmp_path / 'platform.sqlite'}")
    first = _run(env, "demo-users")
    assert first.returncode == 0, first.stderr
    path = tmp_path / "platform-logins.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    logins = json.loads(path.read_text())
    assert logins["park-admin"]["role"] == "park_admin"
    assert logins["e01-admin"] == {
        "password": logins["e01-admin"]["password"],
        "role": "enterprise_admin",
        "enterprise": "E01",
    }
    assert len(logins) == 2 + 12  # the demo park's twelve enterprises
    again = _run(env, "demo-users")
    assert again.returncode == 0 and "0 new logins" in again.stdout
    assert json.loads(path.read_text()) == logins  # passwords are not replaced


@pytest.mark.postgres
def test_the_platform_runs_as_an_application_role_that_cannot_edit_the_audit_log(postgres, tmp_path):
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from ledger.db import make_engine
    from portal import workflow
    from portal.audit import Actor

    owner_url = postgres.create_database("platformrole")
    env = _env(PARKCARBON_RUN_DIR=str(tmp_path), PARKCARBON_LEDGER__URL=owner_url, ROLE_PASSWORD="s3cret:%'x")
    granted = _run(env, "grant-role", "--role", "platform_app", "--password-env", "ROLE_PASSWORD")
    assert granted.returncode == 0, granted.stderr
    app_url = owner_url.replace("//postgres@", "//platform_app@")
    made = _run(env | {"PARKCARBON_LEDGER__URL": app_url}, "demo-users")  # users, audit lines: as the role
    assert made.returncode == 0, made.stderr
    engine = make_engine(app_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM audit_log WHERE action = 'user.create'")).scalar() == 14
        with engine.begin() as conn:  # the role may run the data requests' workflow
            now = datetime.now(UTC)
            office = Actor("ana", "park_analyst", None, "test")
            reporter = Actor("e01-reporter", "enterprise_reporter", "E01", "test")
            request_id = workflow.open_request(conn, office, "E01", "diesel", "2026-03", "2026-04-15", "", now)
            bill = workflow.evidence("bill.pdf", b"%PDF-1.4")
            workflow.submit(conn, reporter, "E01", request_id, "1.5", "t", [bill], now)
            workflow.approve(conn, office, "E01", request_id, 1, now)
            workflow.close_request(conn, office, "E01", request_id, now)
        for statement in (
            "DELETE FROM submissions",
            "DELETE FROM submission_evidence",
            "UPDATE submission_evidence SET sha256 = 'x'",
            "UPDATE audit_log SET actor = 'x'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "ALTER TABLE audit_log DISABLE TRIGGER ALL",
            "DROP TRIGGER audit_log_append_only ON audit_log",
        ):
            with pytest.raises(DBAPIError, match=r"permission denied|must be owner"), engine.begin() as conn:
                conn.execute(text(statement))
    finally:
        engine.dispose()
