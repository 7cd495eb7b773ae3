"""Data requests and submissions (maker/checker, portal/workflow.py): the state machine's every
illegal transition, evidence and figures refused, the database's own guards, two analysts approving
the same version at once (SQLite and the real PostgreSQL), and the same rules over HTTP."""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, select, text

from ledger.db import make_engine, migrate
from ledger.manual import submissions
from portal import workflow
from portal.audit import Actor
from portal.schema import ROLES, audit_log
from portal.scope import ForbiddenError, NotFoundError
from tests.portal.park import (
    ALPHA_OVERDUE_REQUEST,
    ALPHA_REQUEST,
    BRAVO_EVIDENCE,
    BRAVO_REQUEST,
    JPEG,
    PDF,
    PNG,
    csrf_of,
)

ANALYST = Actor("ana-analyst", "park_analyst", None, "10.0.0.1")
OTHER_ANALYST = Actor("olga-admin", "park_admin", None, "10.0.0.2")
REPORTER = Actor("alpha-reporter", "enterprise_reporter", "ALPHA", "10.0.0.3")
BRAVO_REPORTER = Actor("bravo-reporter", "enterprise_reporter", "BRAVO", "10.0.0.4")
NOW = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)

# -- the state machine ------------------------------------------------------------------------------

MACHINES = [
    (workflow.REQUEST_TRANSITIONS, (workflow.NEW, "open", "closed")),
    (workflow.SUBMISSION_TRANSITIONS, (workflow.NEW, "submitted", "approved", "rejected", "superseded")),
]


@pytest.mark.parametrize(("transitions", "states"), MACHINES, ids=["request", "submission"])
def test_only_the_listed_transitions_by_the_listed_roles_pass(transitions, states):
    allowed = 0
    for from_state, to_state, role in itertools.product(states, states, ROLES):
        listed = transitions.get((from_state, to_state), ())
        if role in listed:
            workflow.check_transition(transitions, "x", from_state, to_state, role)
            allowed += 1
            continue
        may_reach = any(role in roles for (_, to), roles in transitions.items() if to == to_state)
        expected = workflow.IllegalTransitionError if may_reach else ForbiddenError
        with pytest.raises(expected):
            workflow.check_transition(transitions, "x", from_state, to_state, role)
    assert allowed == sum(len(roles) for roles in transitions.values())


@pytest.mark.parametrize(
    ("from_state", "to_state", "role", "error"),
    [
        ("rejected", "approved", "park_analyst", workflow.IllegalTransitionError),  # approving a rejected version
        ("approved", "approved", "park_analyst", workflow.IllegalTransitionError),  # approving twice
        ("superseded", "approved", "park_admin", workflow.IllegalTransitionError),
        ("approved", "rejected", "park_analyst", workflow.IllegalTransitionError),
        ("rejected", "submitted", "enterprise_reporter", workflow.IllegalTransitionError),  # resubmit = new version
        ("submitted", "approved", "enterprise_reporter", ForbiddenError),  # a reporter approving
        ("submitted", "approved", "enterprise_admin", ForbiddenError),
        ("submitted", "rejected", "park_viewer", ForbiddenError),
        ("submitted", "approved", "auditor", ForbiddenError),
        (workflow.NEW, "submitted", "park_analyst", ForbiddenError),  # the checker is not the maker
    ],
)
def test_named_illegal_transitions(from_state, to_state, role, error):
    with pytest.raises(error):
        workflow.check_transition(workflow.SUBMISSION_TRANSITIONS, "version 1", from_state, to_state, role)


def test_a_closed_request_cannot_be_closed_or_reopened():
    for to_state in ("closed", "open"):
        with pytest.raises(workflow.IllegalTransitionError):
            workflow.check_transition(workflow.REQUEST_TRANSITIONS, "request 1", "closed", to_state, "park_analyst")
    with pytest.raises(ForbiddenError):
        workflow.check_transition(workflow.REQUEST_TRANSITIONS, "request 1", "open", "closed", "enterprise_admin")


# -- what is typed and uploaded ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "media_type"),
    [("bill.pdf", PDF, "application/pdf"), ("scan.PNG", PNG, "image/png"), ("photo.jpeg", JPEG, "image/jpeg")],
)
def test_evidence_is_typed_by_its_bytes(name, content, media_type):
    checked = workflow.evidence(f"C:\\scans\\{name}", content)
    assert (checked.file_name, checked.media_type) == (name, media_type)
    assert checked.sha256 == hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bill.pdf", b"<html>not a pdf</html>", "not a PDF, PNG or JPEG"),  # the name alone is not believed
        ("bill.exe", b"MZ\x90\x00", "not a PDF, PNG or JPEG"),
        ("scan.pdf", PNG, "its name says otherwise"),
        ("bill.pdf", b"", "empty"),
        ("bill.pdf", PDF + b"0" * (workflow.MAX_EVIDENCE_BYTES + 1 - len(PDF)), "larger than 10 MiB"),
        ("", PDF, "needs a name"),
    ],
)
def test_evidence_refused(name, content, reason):
    with pytest.raises(workflow.InvalidInputError, match=reason):
        workflow.evidence(name, content)


def test_evidence_of_exactly_the_limit_is_taken():
    content = PDF + b"0" * (workflow.MAX_EVIDENCE_BYTES - len(PDF))
    assert workflow.evidence("big.pdf", content).media_type == "application/pdf"


def test_figures_are_read_by_the_manual_files_rules():
    assert workflow.parse_figure("natural_gas", "1,234.5", "万立方米") == (1234.5, "10^4 Nm3")
    assert workflow.parse_figure("green_electricity_certified", "20000", "度") == (20000.0, "kWh")
    assert workflow.parse_figure("diesel", "1.5", "吨") == (1.5, "t")
    assert workflow.parse_figure("value_added", "1,500", "万元") == (1500.0, "10k CNY")
    assert workflow.parse_request_period("natural_gas", "2026年3月") == "2026-03"
    assert workflow.parse_request_period("value_added", "2025") == "2025"
    for kind, quantity, unit, reason in [
        ("natural_gas", "1003,5", "Nm3", "a comma is read only as a thousands separator"),
        ("natural_gas", "12", "m3", "give Nm3"),
        ("natural_gas", "12", "kWh", "natural_gas"),
        ("diesel", "-1", "t", ">= 0"),
        ("value_added", "12", "元", "万元"),
    ]:
        with pytest.raises(workflow.InvalidInputError, match=reason):
            workflow.parse_figure(kind, quantity, unit)
    for kind, period in [("value_added", "2025.5"), ("natural_gas", "2026-13"), ("coal", "2026-01")]:
        with pytest.raises(workflow.InvalidInputError):
            workflow.parse_request_period(kind, period)


# -- in the database --------------------------------------------------------------------------------


@pytest.fixture
def db(ledger_url: str) -> Iterator[Engine]:
    engine = make_engine(ledger_url)
    migrate(engine)
    yield engine
    engine.dispose()


def _bill() -> list[workflow.Evidence]:
    return [workflow.evidence("bill.pdf", PDF)]


def _open(db: Engine, kind: str = "natural_gas", period: str = "2026-03") -> int:
    with db.begin() as conn:
        return workflow.open_request(conn, ANALYST, "ALPHA", kind, period, "2026-04-15", "", NOW)


def _submit(db: Engine, request_id: int, quantity: str = "12.5", actor: Actor = REPORTER) -> int:
    with db.begin() as conn:
        return workflow.submit(conn, actor, "ALPHA", request_id, quantity, "Nm3", _bill(), NOW)


def _states(db: Engine, request_id: int) -> list[str]:
    with db.connect() as conn:
        return [v.state for v in workflow.load_request(conn, "ALPHA", request_id).versions]


def test_every_illegal_transition_is_refused_in_the_database(db):
    request_id = _open(db)
    assert _submit(db, request_id) == 1
    with pytest.raises(workflow.IllegalTransitionError, match="version 1 awaits review"):
        _submit(db, request_id)
    with pytest.raises(ForbiddenError), db.begin() as conn:  # a reporter approving
        workflow.approve(conn, REPORTER, "ALPHA", request_id, 1, NOW)
    with pytest.raises(NotFoundError), db.begin() as conn:  # another enterprise's reporter
        workflow.submit(conn, BRAVO_REPORTER, "ALPHA", request_id, "1", "Nm3", _bill(), NOW)
    with pytest.raises(workflow.InvalidInputError, match="needs a reason"), db.begin() as conn:
        workflow.reject(conn, ANALYST, "ALPHA", request_id, 1, "   ", NOW)
    assert _states(db, request_id) == ["submitted"]
    with pytest.raises(workflow.IllegalTransitionError, match="awaits review"), db.begin() as conn:
        workflow.close_request(conn, ANALYST, "ALPHA", request_id, NOW)
    with db.begin() as conn:
        workflow.reject(conn, ANALYST, "ALPHA", request_id, 1, "the bill is for February", NOW)
    with pytest.raises(workflow.IllegalTransitionError, match="rejected → approved"), db.begin() as conn:
        workflow.approve(conn, ANALYST, "ALPHA", request_id, 1, NOW)
    assert _submit(db, request_id, "13") == 2  # resubmission: a new version
    with db.begin() as conn:
        workflow.approve(conn, ANALYST, "ALPHA", request_id, 2, NOW)
    with pytest.raises(workflow.IllegalTransitionError, match="approved → approved"), db.begin() as conn:
        workflow.approve(conn, OTHER_ANALYST, "ALPHA", request_id, 2, NOW)
    with pytest.raises(workflow.IllegalTransitionError, match="approved → rejected"), db.begin() as conn:
        workflow.reject(conn, ANALYST, "ALPHA", request_id, 2, "too late", NOW)
    assert _submit(db, request_id, "13.25") == 3  # a correction of approved data: a new version
    with db.begin() as conn:
        workflow.approve(conn, ANALYST, "ALPHA", request_id, 3, NOW)
    assert _states(db, request_id) == ["rejected", "superseded", "approved"]
    with db.begin() as conn:
        workflow.close_request(conn, ANALYST, "ALPHA", request_id, NOW)
    with pytest.raises(workflow.IllegalTransitionError, match="the request is closed"):
        _submit(db, request_id)
    with pytest.raises(workflow.IllegalTransitionError, match="closed → closed"), db.begin() as conn:
        workflow.close_request(conn, ANALYST, "ALPHA", request_id, NOW)
    with pytest.raises(NotFoundError), db.begin() as conn:  # the id under another enterprise
        workflow.approve(conn, ANALYST, "BRAVO", request_id, 3, NOW)
    with db.connect() as conn:
        request = workflow.load_request(conn, "ALPHA", request_id)
        lines = conn.execute(
            select(
                audit_log.c.action, audit_log.c.actor, audit_log.c.target, audit_log.c.from_value, audit_log.c.to_value
            )
            .where(audit_log.c.action.like("request.%") | audit_log.c.action.like("submission.%"))
            .order_by(audit_log.c.id)
        ).all()
    assert [v.quantity for v in request.versions] == [12.5, 13.0, 13.25]  # every version stays, unchanged
    assert request.approved is not None and request.approved.version == 3
    assert [(a, f, t.split(":")[0]) for a, _, _, f, t in lines] == [
        ("request.open", "new", "open"),
        ("submission.submit", "new", "submitted"),
        ("submission.reject", "submitted", "rejected"),
        ("submission.submit", "new", "submitted"),
        ("submission.approve", "submitted", "approved"),
        ("submission.submit", "new", "submitted"),
        ("submission.approve", "submitted", "approved"),
        ("submission.supersede", "approved", "superseded by version 3"),
        ("request.close", "open", "closed"),
    ]
    assert lines[2][4] == "rejected: the bill is for February" and lines[2][1] == "ana-analyst"
    assert lines[4][2] == f"enterprise:ALPHA request:{request_id} version:2"


def test_the_database_refuses_editing_figures_and_deleting_versions(db):
    request_id = _open(db)
    _submit(db, request_id)
    for statement in (
        "UPDATE submissions SET quantity = 99",
        "UPDATE submissions SET unit = 't'",
        "DELETE FROM submissions",
        "DELETE FROM data_requests",
        "UPDATE submission_evidence SET sha256 = 'x'",
        "DELETE FROM submission_evidence",
    ):
        with pytest.raises(Exception, match="refused"), db.begin() as conn:
            conn.execute(text(statement))
    with db.connect() as conn:
        assert conn.execute(select(submissions.c.quantity, submissions.c.state)).all() == [(12.5, "submitted")]


THREADS = 8


def test_concurrent_approvals_book_once(db):
    """Analysts approving the same version at the same instant, for several versions: each is
    approved once, with one audit line; the others get 409's error."""
    rounds = 4
    request_ids = [_open(db, period=f"2026-0{m}") for m in range(1, rounds + 1)]
    for request_id in request_ids:
        _submit(db, request_id)
    start = threading.Barrier(THREADS)

    def approve(n: int, request_id: int) -> str:
        actor = ANALYST if n % 2 else OTHER_ANALYST
        start.wait(timeout=60)
        try:
            with db.begin() as conn:
                workflow.approve(conn, actor, "ALPHA", request_id, 1, datetime.now(UTC))
        except workflow.IllegalTransitionError:
            return "refused"
        return "approved"

    for request_id in request_ids:
        with ThreadPoolExecutor(THREADS) as pool:
            outcomes = list(pool.map(approve, range(THREADS), [request_id] * THREADS))
        assert sorted(outcomes) == ["approved"] + ["refused"] * (THREADS - 1)
    with db.connect() as conn:
        approvals = (
            conn.execute(select(audit_log.c.target).where(audit_log.c.action == "submission.approve")).scalars().all()
        )
    assert sorted(approvals) == sorted(f"enterprise:ALPHA request:{r} version:1" for r in request_ids)
    assert all(_states(db, r) == ["approved"] for r in request_ids)


def test_concurrent_resubmissions_make_one_version(db):
    request_id = _open(db)
    start = threading.Barrier(THREADS)

    def submit(n: int) -> str:
        start.wait(timeout=60)
        try:
            with db.begin() as conn:
                workflow.submit(conn, REPORTER, "ALPHA", request_id, str(n + 1), "Nm3", _bill(), datetime.now(UTC))
        except workflow.IllegalTransitionError:
            return "refused"
        return "submitted"

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(submit, range(THREADS)))
    assert sorted(outcomes) == ["refused"] * (THREADS - 1) + ["submitted"]
    assert _states(db, request_id) == ["submitted"]


# -- over HTTP --------------------------------------------------------------------------------------

services = pytest.mark.services


def _form(client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, page.text[:300]
    return csrf_of(page.text)


@services
def test_http_answers_refusals_with_403_409_and_400(park):
    base = f"/enterprises/ALPHA/requests/{ALPHA_REQUEST}"
    reporter = park.login("alpha-reporter")
    token = _form(reporter, base)
    assert reporter.post(f"{base}/versions/1/approve", data={"csrf_token": token}).status_code == 403
    assert reporter.post("/enterprises/ALPHA/requests", data={"csrf_token": token, "item": "diesel"}).status_code == 403
    assert reporter.get("/park/requests").status_code == 403
    analyst = park.login("ana-analyst")
    token_a = _form(analyst, base)
    refused = analyst.post(f"{base}/versions/1/reject", data={"csrf_token": token_a, "reason": " "})
    assert refused.status_code == 400 and "needs a reason" in refused.text
    assert 'data-state="submitted"' in analyst.get(base).text
    assert analyst.post(f"{base}/versions/1/approve", data={"csrf_token": token_a}).status_code == 303
    twice = analyst.post(f"{base}/versions/1/approve", data={"csrf_token": token_a})
    assert twice.status_code == 409 and "approved → approved" in twice.text
    assert analyst.post(f"{base}/close", data={"csrf_token": token_a}).status_code == 303
    closed = reporter.post(
        f"{base}/submissions",
        data={"csrf_token": token, "quantity": "2", "unit": "t"},
        files={"evidence": ("bill.pdf", PDF, "application/pdf")},
    )
    assert closed.status_code == 409 and "closed" in closed.text
    # Another enterprise's request or evidence under this enterprise's id: as if it did not exist.
    for path in (
        f"/enterprises/ALPHA/requests/{BRAVO_REQUEST}",
        f"/enterprises/ALPHA/requests/{BRAVO_REQUEST}/evidence/{BRAVO_EVIDENCE}",
        f"/enterprises/ALPHA/requests/{ALPHA_REQUEST}/evidence/{BRAVO_EVIDENCE}",
    ):
        assert reporter.get(path).status_code == 404, path
        assert analyst.get(path).status_code == 404, path
    assert (
        analyst.post(
            f"/enterprises/ALPHA/requests/{BRAVO_REQUEST}/versions/1/approve", data={"csrf_token": token_a}
        ).status_code
        == 404
    )
    # The upload form carries its token like every form: without it, refused.
    no_token = reporter.post(
        f"/enterprises/ALPHA/requests/{ALPHA_OVERDUE_REQUEST}/submissions",
        data={"quantity": "2", "unit": "万元"},
        files={"evidence": ("bill.pdf", PDF, "application/pdf")},
    )
    assert no_token.status_code == 403


@services
def test_evidence_refused_by_type_and_size_and_downloaded_within_scope(park):
    base = f"/enterprises/ALPHA/requests/{ALPHA_OVERDUE_REQUEST}"
    reporter = park.login("alpha-reporter")
    token = _form(reporter, base)
    form = {"csrf_token": token, "quantity": "1,500", "unit": "万元"}
    for name, content, media, reason in [
        ("bill.pdf", b"GIF89a not a pdf", "application/pdf", "not a PDF, PNG or JPEG"),
        ("bill.pdf", PDF + b"0" * workflow.MAX_EVIDENCE_BYTES, "application/pdf", "larger than 10 MiB"),
        ("scan.pdf", PNG, "application/pdf", "its name says otherwise"),
    ]:
        refused = reporter.post(f"{base}/submissions", data=form, files={"evidence": (name, content, media)})
        assert refused.status_code == 400 and reason in refused.text, refused.text[:500]
    assert reporter.post(f"{base}/submissions", data=form).status_code == 400  # no evidence at all
    assert "Nothing submitted yet" in reporter.get(base).text
    scan = PNG + b"alpha statistics office"
    done = reporter.post(
        f"{base}/submissions",
        data=form,
        files=[("evidence", ("va.pdf", PDF, "application/pdf")), ("evidence", ("scan.png", scan, "image/png"))],
    )
    assert done.status_code == 303
    page = reporter.get(base).text
    links = re.findall(rf'href="({base}/evidence/(\d+))" title="sha256 ([0-9a-f]{{64}})">([^<]+)<', page)
    assert [(name, sha) for _, _, sha, name in links] == [
        ("va.pdf", hashlib.sha256(PDF).hexdigest()),
        ("scan.png", hashlib.sha256(scan).hexdigest()),
    ]
    download = reporter.get(links[1][0])
    assert download.status_code == 200 and download.content == scan
    assert download.headers["content-type"] == "image/png" and "attachment" in download.headers["content-disposition"]
    analyst = park.login("ana-analyst")
    assert analyst.get(links[0][0]).content == PDF
    bravo = park.login("bravo-reporter")
    assert bravo.get(links[0][0]).status_code == 404
    assert bravo.get(links[0][0].replace("/ALPHA/", "/BRAVO/")).status_code == 404
    assert analyst.get(base).status_code == 200  # the park office reading an enterprise's request: audited
    assert reporter.get(base).status_code == 200  # the enterprise reading its own: not
    audit = park.login("olga-admin").get("/park/audit").text
    assert audit.count(f"data request {ALPHA_OVERDUE_REQUEST}") == 1
    evidence_id = links[1][1]
    target = f"enterprise:ALPHA request:{ALPHA_OVERDUE_REQUEST} evidence:{evidence_id}"
    assert audit.count(target) == 1 and "alpha-reporter" in audit and "ana-analyst" in audit


@services
def test_overdue_and_submitted_requests_are_shown_to_both_sides(park):
    reporter = park.login("alpha-reporter")
    own = reporter.get("/enterprises/ALPHA/requests").text
    assert re.search(rf'data-request="{ALPHA_OVERDUE_REQUEST}" data-status="open" class="neg" data-overdue="true"', own)
    assert f'data-request="{ALPHA_REQUEST}" data-status="v1 submitted">' in own
    queue = park.login("ana-analyst").get("/park/requests").text
    submitted, overdue = queue.split('id="overdue"')
    assert f'data-enterprise="ALPHA" data-request="{ALPHA_REQUEST}"' in submitted
    assert f'data-enterprise="BRAVO" data-request="{BRAVO_REQUEST}"' in submitted
    assert f'data-request="{ALPHA_OVERDUE_REQUEST}"' in overdue.split('id="enterprise-requests"')[0]
    assert f'data-request="{ALPHA_REQUEST}"' not in overdue.split('id="enterprise-requests"')[0]
