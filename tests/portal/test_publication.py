"""Result versions, publication (公示), objections and reviewed issuance (portal/publication.py,
ledger/results.py): versions recorded only when the content changes, every illegal change refused with
its own error, the 公示 window counted in working days, an objection holding finalisation, the
upheld objection's correction published as version 2, two approvals at once booking once (SQLite and
the real PostgreSQL), and the park office's lists drawn reproducibly from a version."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from ledger.book import Ledger
from ledger.db import make_engine, migrate
from ledger.results import (
    ResultRow,
    ResultVersion,
    current_version,
    final_version,
    record_version,
    rows_of,
    versions,
)
from ledger.schema import transactions
from portal import publication
from portal.audit import Actor
from portal.schema import audit_log
from portal.scope import ForbiddenError, NotFoundError
from portal.workflow import IllegalTransitionError, InvalidInputError

TZ = "Asia/Shanghai"
DEADLINE = date(2027, 6, 30)
ADMIN = Actor("park-admin", "park_admin", None, "10.0.0.1")
ANALYST = Actor("ana-analyst", "park_analyst", None, "10.0.0.2")
AUDITOR = Actor("audrey", "auditor", None, "10.0.0.3")
VIEWER = Actor("vic", "park_viewer", None, "10.0.0.4")
ALPHA_ADMIN = Actor("alpha-admin", "enterprise_admin", "ALPHA", "10.0.1.1")
ALPHA_REPORTER = Actor("alpha-reporter", "enterprise_reporter", "ALPHA", "10.0.1.2")
BRAVO_ADMIN = Actor("bravo-admin", "enterprise_admin", "BRAVO", "10.0.2.1")
# Published on Friday 13 March 2026: 5 working days are 16-20 March, so the window's last day is Friday 20.
PUBLISHED_ON = date(2026, 3, 13)
WINDOW_ENDS = date(2026, 3, 20)
AFTER = date(2026, 3, 23)
NOW = datetime(2026, 3, 13, 2, tzinfo=UTC)


def row(enterprise: str, grade: int | None, credits_t: float | None, nearzero: str = "") -> ResultRow:
    return ResultRow(
        enterprise_id=enterprise,
        industry="C39",
        grade=grade,
        rating="B",
        rating_score=72.5,
        credits_t=credits_t,
        emissions_tco2=1000.0,
        value_added_10k_cny=5000.0,
        intensity_t_per_10k_cny=0.2,
        benchmark_t_per_10k_cny=0.25,
        inputs_sha256=f"{enterprise.lower():a<64}"[:64],
        policy_version="2026.1",
        factor_set="cn-national-2023",
        nearzero_workshops=nearzero,
        note="",
    )


ROWS = [
    row("ALPHA", 1, 120.125),
    row("BRAVO", 4, -35.5),
    row("CHARLIE", 3, 10.0, nearzero="CHARLIE-WS-1"),
    row("DELTA", 5, -80.0),
    row("ECHO", None, None),  # no value added: no credits, nothing booked
]


@dataclass
class Results:
    engine: Engine
    ledger: Ledger

    def record(self, rows: list[ResultRow] = ROWS, issuance: str = "proposed") -> tuple[ResultVersion, bool]:
        return record_version(self.engine, 2026, rows, DEADLINE, issuance, "airflow", NOW)

    def publish(self, version_id: int, actor: Actor = ANALYST, today: date = PUBLISHED_ON) -> date:
        with self.engine.begin() as conn:
            return publication.publish(conn, actor, version_id, 5, today, NOW)

    def finalise(self, version_id: int, actor: Actor = ANALYST, today: date = AFTER) -> None:
        with self.engine.begin() as conn:
            publication.finalise(conn, actor, version_id, today, NOW)

    def object(
        self, version_id: int, actor: Actor = ALPHA_ADMIN, enterprise: str = "ALPHA", reason: str = "wrong VA",
        today: date = PUBLISHED_ON,
    ) -> int:  # fmt: skip
        with self.engine.begin() as conn:
            return publication.file_objection(conn, actor, enterprise, version_id, reason, today, NOW)

    def decide(
        self, version_id: int, objection_id: int, to_state: str, reason: str = "checked", actor: Actor = ANALYST
    ) -> None:
        with self.engine.begin() as conn:
            publication.decide_objection(conn, actor, version_id, objection_id, to_state, reason, NOW)

    def approve(self, version_id: int, actor: Actor = ADMIN) -> dict[str, int]:
        return publication.approve_issuance(self.ledger, actor, version_id, NOW)

    def view(self, version_id: int) -> publication.VersionView:
        with self.engine.connect() as conn:
            return publication.load_version(conn, version_id)

    def held(self, enterprise_id: str) -> Decimal:
        frame = self.ledger.balances(enterprise_id)
        rows = frame[frame["vintage"] == 2026]["amount_t"]
        return Decimal(str(rows.iloc[0])) if len(rows) else Decimal(0)

    def final(self, rows: list[ResultRow] = ROWS) -> ResultVersion:
        version, _ = self.record(rows)
        self.publish(version.id)
        self.finalise(version.id)
        return version


@pytest.fixture
def results(ledger_url: str) -> Iterator[Results]:
    engine = make_engine(ledger_url)
    migrate(engine)
    ledger = Ledger(engine, TZ)
    ledger.open_accounts([r.enterprise_id for r in ROWS])
    yield Results(engine, ledger)
    engine.dispose()


# -- versions ---------------------------------------------------------------------------------------


def test_identical_content_keeps_its_version_and_a_change_makes_the_next(results):
    first, new = results.record()
    assert (first.version, first.state, first.issuance, new) == (1, "draft", "proposed", True)
    again, new = results.record(list(reversed(ROWS)))  # the same rows in another order
    assert (again.id, new) == (first.id, False)
    changed = [replace(ROWS[0], credits_t=130.0), *ROWS[1:]]
    second, new = results.record(changed)
    assert (second.version, second.state, new) == (2, "draft", True)
    with results.engine.connect() as conn:
        assert [(v.version, v.state) for v in versions(conn, 2026)] == [(2, "draft"), (1, "superseded")]
        assert current_version(conn, 2026) == second and final_version(conn, 2026) is None
        assert rows_of(conn, first.id, ["ALPHA"])[0].credits_t == 120.125  # the old version stays readable
        assert rows_of(conn, second.id, ["ALPHA"])[0].credits_t == 130.0


def test_a_versions_rows_and_identity_cannot_be_changed(results):
    version, _ = results.record()
    for statement in (
        "UPDATE result_rows SET credits_t = 1e9",
        "DELETE FROM result_rows",
        "DELETE FROM result_versions",
        "UPDATE result_versions SET content_sha256 = 'x'",
    ):
        with pytest.raises(DBAPIError, match="refused"), results.engine.begin() as conn:
            conn.execute(text(statement))
    assert results.view(version.id).rows == ROWS


# -- every illegal change ---------------------------------------------------------------------------


def test_publishing_and_finalising_refused_as_the_state_machine_says(results):
    version, _ = results.record()
    for actor in (ALPHA_ADMIN, AUDITOR, VIEWER):
        with pytest.raises(ForbiddenError, match="cannot make result version 2026 v1 published"):
            results.publish(version.id, actor)
    with pytest.raises(IllegalTransitionError, match="draft → final is not allowed"):
        results.finalise(version.id)
    assert results.publish(version.id) == WINDOW_ENDS
    with pytest.raises(IllegalTransitionError, match="published → published is not allowed"):
        results.publish(version.id)
    for today in (PUBLISHED_ON, WINDOW_ENDS):  # the window's last day is still in it
        with pytest.raises(IllegalTransitionError, match=r"published → final .*window runs until 2026-03-20"):
            results.finalise(version.id, today=today)
    with pytest.raises(ForbiddenError):
        results.finalise(version.id, ALPHA_ADMIN)
    results.finalise(version.id, today=AFTER)
    with pytest.raises(IllegalTransitionError, match="final → published is not allowed"):
        results.publish(version.id)
    with pytest.raises(IllegalTransitionError, match="final → final is not allowed"):
        results.finalise(version.id)
    # A superseded version is neither published nor finalised.
    newer, _ = results.record([replace(ROWS[0], credits_t=1.0), *ROWS[1:]])
    older, _ = results.record(ROWS)
    assert older.version == 3
    with pytest.raises(IllegalTransitionError, match="superseded → published is not allowed"):
        results.publish(newer.id)


def test_objections_refused_unless_the_enterprises_admin_objects_with_a_reason_in_the_window(results):
    version, _ = results.record()
    with pytest.raises(NotFoundError):  # a draft is not shown to enterprises: nothing to object to
        results.object(version.id)
    results.publish(version.id)
    with pytest.raises(ForbiddenError, match="cannot make an objection"):
        results.object(version.id, ALPHA_REPORTER)
    with pytest.raises(ForbiddenError, match="enterprise's own admin"):
        results.object(version.id, BRAVO_ADMIN, "ALPHA")
    for actor in (ANALYST, AUDITOR):
        with pytest.raises(ForbiddenError):
            results.object(version.id, actor)
    with pytest.raises(InvalidInputError, match="needs a reason"):
        results.object(version.id, reason="   ")
    with pytest.raises(IllegalTransitionError, match=r"new → open .*window closed on 2026-03-20"):
        results.object(version.id, today=AFTER)
    with pytest.raises(NotFoundError):  # a version without a row of the enterprise
        results.object(version.id, Actor("z", "enterprise_admin", "ZULU", "x"), "ZULU")
    objection = results.object(version.id, today=WINDOW_ENDS)
    with pytest.raises(ForbiddenError):
        results.decide(version.id, objection, "dismissed", actor=ALPHA_ADMIN)
    with pytest.raises(ForbiddenError):
        results.decide(version.id, objection, "dismissed", actor=AUDITOR)
    with pytest.raises(InvalidInputError, match="needs a reason"):
        results.decide(version.id, objection, "upheld", reason="")
    with pytest.raises(InvalidInputError, match="dismissed or upheld"):
        results.decide(version.id, objection, "withdrawn")
    with pytest.raises(NotFoundError):
        results.decide(version.id, objection + 100, "dismissed")
    results.decide(version.id, objection, "dismissed", "the value added is the audited one")
    with pytest.raises(IllegalTransitionError, match="dismissed → upheld is not allowed"):
        results.decide(version.id, objection, "upheld")
    results.finalise(version.id)
    with pytest.raises(IllegalTransitionError, match="version is final, not published"):
        results.object(version.id, today=WINDOW_ENDS)


def test_an_open_objection_holds_finalisation_and_an_upheld_one_needs_version_2(results):
    version, _ = results.record()
    results.publish(version.id)
    objection = results.object(version.id, reason="value added 2026 is 6,000, not 5,000")
    with pytest.raises(IllegalTransitionError, match=f"objection {objection} of ALPHA is open"):
        results.finalise(version.id)
    results.decide(version.id, objection, "upheld", "the tax return shows 6,000")
    with pytest.raises(IllegalTransitionError, match=f"objection {objection} of ALPHA was upheld"):
        results.finalise(version.id)
    # The correction is re-settled: version 2, which is published again and becomes final.
    corrected = [replace(ROWS[0], value_added_10k_cny=6000.0, credits_t=150.0), *ROWS[1:]]
    second, _ = results.record(corrected)
    assert second.version == 2 and results.view(version.id).version.state == "superseded"
    with pytest.raises(IllegalTransitionError, match="superseded → final"):
        results.finalise(version.id)
    assert results.publish(second.id, today=date(2026, 3, 27)) == date(2026, 4, 3)  # Fri → 5 working days
    with pytest.raises(IllegalTransitionError, match="window runs until 2026-04-03"):
        results.finalise(second.id, today=date(2026, 4, 3))
    results.finalise(second.id, today=date(2026, 4, 7))  # 4-6 April is Qingming (State Council 2026)
    assert results.view(second.id).version.state == "final"
    with results.engine.connect() as conn:
        actions = conn.execute(select(audit_log.c.action).order_by(audit_log.c.id)).scalars().all()
    assert actions == [
        "results.publish",
        "results.object",
        "results.objection.uphold",
        "results.publish",
        "results.finalise",
    ]


def test_issuance_approved_only_by_a_park_admin_for_a_final_proposed_version(results):
    version, _ = results.record()
    with pytest.raises(ForbiddenError, match="cannot make the issuance of result version 2026 v1 approved"):
        results.approve(version.id, ANALYST)
    with pytest.raises(IllegalTransitionError, match=r"proposed → approved .*draft, not final"):
        results.approve(version.id)
    results.publish(version.id)
    with pytest.raises(IllegalTransitionError, match="published, not final"):
        results.approve(version.id)
    results.finalise(version.id)
    assert results.held("ALPHA") == 0  # proposed: nothing booked yet
    assert results.approve(version.id) == {"ALPHA": 120_125, "CHARLIE": 10_000}
    assert results.held("ALPHA") == Decimal("120.125") and results.held("CHARLIE") == Decimal("10")
    assert results.ledger.obligation("BRAVO", 2026) == (Decimal("35.5"), Decimal(0))
    assert results.ledger.obligation("DELTA", 2026) == (Decimal("80"), Decimal(0))
    with pytest.raises(IllegalTransitionError, match="approved → approved is not allowed"):
        results.approve(version.id)
    # A version booked on settlement (a park without the platform) is not approved again.
    booked, _ = results.record([replace(ROWS[0], credits_t=125.0), *ROWS[1:]], issuance="on_settlement")
    results.publish(booked.id)
    results.finalise(booked.id)
    with pytest.raises(IllegalTransitionError, match="on_settlement → approved is not allowed"):
        results.approve(booked.id)
    assert results.ledger.check() == []


def test_version_2_approved_books_only_the_difference(results):
    first = results.final()
    results.approve(first.id)
    second = results.final([replace(ROWS[0], credits_t=150.0), *ROWS[1:]])
    assert results.approve(second.id) == {"ALPHA": 29_875}  # 150 − 120.125 t
    assert results.held("ALPHA") == Decimal("150")
    assert results.ledger.check() == []


THREADS = 6


def test_two_approvals_at_once_book_once(results):
    version = results.final()
    start = threading.Barrier(THREADS)

    def approve(_: int) -> str:
        start.wait(timeout=60)
        try:
            results.approve(version.id)
        except IllegalTransitionError:
            return "refused"
        return "approved"

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(approve, range(THREADS)))
    assert sorted(outcomes) == ["approved"] + ["refused"] * (THREADS - 1)
    assert results.held("ALPHA") == Decimal("120.125") and results.held("CHARLIE") == Decimal("10")
    with results.engine.connect() as conn:
        issued = conn.execute(select(transactions.c.reference).where(transactions.c.kind == "issue")).scalars().all()
        approvals = conn.execute(
            select(audit_log.c.id).where(audit_log.c.action == "results.issuance.approve")
        ).scalars()
        assert len(list(approvals)) == 1
    assert sorted(issued) == ["settle:2026:ALPHA:1:issue", "settle:2026:CHARLIE:1:issue"]
    assert results.view(version.id).version.issuance == "approved"
    assert results.ledger.check() == []


def test_finalising_and_objecting_at_once_do_one_or_the_other(results):
    version, _ = results.record()
    results.publish(version.id)
    start = threading.Barrier(2)

    def finalise() -> str:
        start.wait(timeout=60)
        try:
            results.finalise(version.id, today=AFTER)
        except IllegalTransitionError:
            return "refused"
        return "final"

    def object_() -> str:
        start.wait(timeout=60)
        try:
            results.object(version.id, today=WINDOW_ENDS)
        except IllegalTransitionError:
            return "refused"
        return "objected"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(f.result() for f in [pool.submit(finalise), pool.submit(object_)])
    view = results.view(version.id)
    assert outcomes in (["final", "refused"], ["objected", "refused"])
    assert (view.version.state == "final") == (outcomes[0] == "final")
    assert len(view.objections) == (1 if outcomes[0] == "objected" else 0)


# -- lists ------------------------------------------------------------------------------------------


def test_lists_by_grade_drawn_from_a_version_are_reproducible(results):
    version, _ = results.record()
    view = results.view(version.id)
    diagnosis = publication.list_csv(view, "diagnosis")
    assert diagnosis == publication.list_csv(results.view(version.id), "diagnosis")  # same version, same bytes
    assert diagnosis.startswith("\ufeff".encode())
    listed = list(csv.DictReader(io.StringIO(diagnosis.decode("utf-8-sig"))))
    assert [(r["enterprise"], r["grade"], r["credits_t"], r["why"]) for r in listed] == [
        ("BRAVO", "4", "-35.500", "grade 4"),
        ("DELTA", "5", "-80.000", "grade 5"),
    ]
    incentive = list(csv.DictReader(io.StringIO(publication.list_csv(view, "incentive").decode("utf-8-sig"))))
    assert [(r["enterprise"], r["why"]) for r in incentive] == [
        ("ALPHA", "grade 1"),
        ("CHARLIE", "near-zero workshops CHARLIE-WS-1"),
    ]
    # A later version changes the later list, never the earlier one.
    second, _ = results.record([replace(ROWS[1], grade=3), *(r for r in ROWS if r.enterprise_id != "BRAVO")])
    assert publication.list_csv(results.view(version.id), "diagnosis") == diagnosis
    assert "BRAVO" not in publication.list_csv(results.view(second.id), "diagnosis").decode()
    workbook = load_workbook(io.BytesIO(publication.list_xlsx(view, "diagnosis")))
    sheet = workbook["diagnosis"]
    cells = [[c.value for c in r] for r in sheet.iter_rows()]
    assert cells[0] == list(publication.LIST_COLUMNS)
    assert [(r[2], r[4], r[6]) for r in cells[1:]] == [("BRAVO", 4.0, -35.5), ("DELTA", 5.0, -80.0)]
    assert dict((k, v) for k, v in workbook["version"].iter_rows(values_only=True))["content_sha256"] == (
        version.content_sha256
    )
    with pytest.raises(NotFoundError):
        publication.list_csv(view, "everyone")


# -- over HTTP --------------------------------------------------------------------------------------


@pytest.mark.services
def test_http_lists_download_the_same_bytes_and_each_role_sees_what_it_may(park):
    """The seeded 2025 version (tests/portal/park.py): the park office downloads its lists, the same bytes
    twice, each download audited; an enterprise sees only its own row and may not reach the park's pages."""
    from tests.portal.park import ALPHA_OBJECTION, RESULT_VERSION, csrf_of

    analyst = park.login("ana-analyst")
    url = f"/park/results/{RESULT_VERSION}/lists/diagnosis.csv"
    first, second = analyst.get(url), analyst.get(url)
    assert first.status_code == 200 and first.content == second.content
    assert first.headers["content-type"].startswith("text/csv")
    assert [r["enterprise"] for r in csv.DictReader(io.StringIO(first.content.decode("utf-8-sig")))] == ["BRAVO"]
    excel = analyst.get(f"/park/results/{RESULT_VERSION}/lists/incentive.xlsx")
    assert excel.status_code == 200 and load_workbook(io.BytesIO(excel.content))["incentive"]["C2"].value == "ALPHA"
    assert analyst.get(f"/park/results/{RESULT_VERSION}/lists/everyone.csv").status_code == 404
    engine = make_engine(park.config.ledger_url)
    with engine.connect() as conn:
        query = select(audit_log.c.target).where(audit_log.c.action == "download", audit_log.c.actor == "ana-analyst")
        downloads = list(conn.execute(query).scalars())
    engine.dispose()
    assert sorted(downloads) == [
        f"results:2025:v{RESULT_VERSION} list:diagnosis",
        f"results:2025:v{RESULT_VERSION} list:diagnosis",
        f"results:2025:v{RESULT_VERSION} list:incentive",
    ]

    alpha = park.login("alpha-admin")
    page = alpha.get("/enterprises/ALPHA/results")
    assert page.status_code == 200 and "12.500" in page.text and "bravo" not in page.text.lower()
    assert f'data-objection="{ALPHA_OBJECTION}"' in page.text
    assert alpha.get("/park/results").status_code == 403
    assert alpha.get(f"/park/results/{RESULT_VERSION}").status_code == 403
    assert alpha.get(url).status_code == 403
    reporter = park.login("alpha-reporter")
    token = csrf_of(reporter.get("/account/password").text)
    refused = reporter.post(
        f"/enterprises/ALPHA/results/{RESULT_VERSION}/objections", data={"csrf_token": token, "reason": "x"}
    )
    assert refused.status_code == 403
    token = csrf_of(analyst.get("/account/password").text)
    held = analyst.post(f"/park/results/{RESULT_VERSION}/finalise", data={"csrf_token": token})
    assert held.status_code == 409 and "window runs until" in held.text


@pytest.mark.postgres
def test_the_application_role_records_and_moves_versions_but_cannot_change_their_rows(postgres):
    """The role settlement and the platform connect as (ledger.db.grant_app_role) has what the versions
    need, and no more: it records a version, publishes it, takes an objection; a row stays as settled."""
    from ledger.db import grant_app_role

    owner_url = postgres.create_database("resultsrole")
    with Ledger.open(owner_url, TZ) as owner:
        grant_app_role(owner.engine, "results_app")
    app_engine = make_engine(owner_url.replace("//postgres@", "//results_app@"))
    try:
        version, _ = record_version(app_engine, 2026, ROWS, DEADLINE, "proposed", "airflow", NOW)
        with app_engine.begin() as conn:
            conn.execute(text("UPDATE result_versions SET state = 'published', window_ends_on = '2026-03-20'"))
            conn.execute(
                text(
                    "INSERT INTO result_objections (version_id, enterprise_id, reason, state, filed_at, filed_by) "
                    "VALUES (:v, 'ALPHA', 'r', 'open', now(), 'alpha-admin')"
                ),
                {"v": version.id},
            )
        for statement in ("UPDATE result_rows SET credits_t = 0", "DELETE FROM result_objections"):
            with pytest.raises(DBAPIError), app_engine.begin() as conn:
                conn.execute(text(statement))
        with app_engine.connect() as conn:
            assert rows_of(conn, version.id) == ROWS
    finally:
        app_engine.dispose()
