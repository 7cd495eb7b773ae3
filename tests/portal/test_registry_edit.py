"""The registry edited on the platform (portal/registry_edit.py): the park admin's changes validated as
`registry check` validates (every error names the entry and the field) and audited; an enterprise
admin's proposals, approved by a park analyst, through their state machine only; two approvals at once
apply once — on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from ledger import registry_store
from ledger.db import make_engine, migrate
from park.registry import MeterReplacement, parse_registry
from portal import registry_edit as edit
from portal.audit import Actor
from portal.schema import audit_log, registry_proposals
from portal.scope import ForbiddenError, NotFoundError
from portal.workflow import IllegalTransitionError, InvalidInputError
from tests.portal.park import REGISTRY

TZ = "Asia/Shanghai"
ADMIN = Actor("olga-admin", "park_admin", None, "10.0.0.1")
ANALYST = Actor("ana-analyst", "park_analyst", None, "10.0.0.2")
ANALYST_2 = Actor("andy-analyst", "park_analyst", None, "10.0.0.3")
ALPHA = Actor("alpha-admin", "enterprise_admin", "ALPHA", "10.0.1.1")
BRAVO = Actor("bravo-admin", "enterprise_admin", "BRAVO", "10.0.2.1")
ALL = ("ALPHA", "BRAVO", "CHARLIE")
START = date(2026, 1, 1)
NOW = datetime(2026, 3, 20, 8, 0, tzinfo=UTC)
THREADS = 4


@pytest.fixture
def engine(ledger_url: str) -> Iterator[Engine]:
    engine = make_engine(ledger_url)
    migrate(engine)
    with engine.begin() as conn:
        registry_store.import_registry(conn, parse_registry(yaml.safe_load(REGISTRY)), [], START, "office", "pilot")
    yield engine
    engine.dispose()


def audit(engine: Engine, prefix: str = "registry") -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.action, audit_log.c.actor, audit_log.c.target)
            .where(audit_log.c.action.like(f"{prefix}%"))
            .order_by(audit_log.c.id)
        )
        return [tuple(r) for r in rows]


def as_of(engine: Engine, day: date):
    with engine.connect() as conn:
        return registry_store.registry_as_of(conn, day)


def put(engine: Engine, kind: str, fields: dict[str, str], mode: str = "add", actor: Actor = ADMIN, when="2026-03-01"):
    with engine.begin() as conn:
        return edit.put(conn, actor, kind, mode, fields, when, "delta joins the park", NOW)


DELTA_METER = {"gateway": "gw-delta", "enterprise": "DELTA", "carrier": "grid_electricity", "unit": "kWh"}


def add_delta(engine: Engine) -> None:
    put(engine, "enterprise", {"id": "DELTA", "name": "Delta Glass", "industry": "C30"})
    put(engine, "gateway", {"id": "gw-delta", "enterprise": "DELTA", "model": "", "format": ""})
    put(engine, "meter", {"id": "DELTA-M1", "role": "main", "multiplier": "40", **DELTA_METER})
    put(engine, "meter", {"id": "DELTA-M2", "role": "main", "registers": "active_energy_import", **DELTA_METER})


def test_the_park_admin_adds_an_enterprise_a_gateway_and_two_meters_from_a_month(engine):
    """Each entry is in the registry from 2026-03-01 on, not the day before, written as the registry file
    writes it (the empty fields not written, numbers as numbers), and each change is an audit line."""
    add_delta(engine)
    before, after = as_of(engine, date(2026, 2, 28)), as_of(engine, date(2026, 3, 1))
    assert "DELTA" not in before.enterprise_by_id and "DELTA-M1" not in before.meter_by_id
    assert after.enterprise_by_id["DELTA"].name == "Delta Glass"
    assert after.gateway_by_id["gw-delta"].enterprise == "DELTA"
    assert after.meter_by_id["DELTA-M1"].multiplier == 40.0
    assert [r.value for r in after.meter_by_id["DELTA-M2"].registers] == ["active_energy_import"]
    with engine.connect() as conn:
        documents = registry_store.documents_as_of(conn, date(2026, 3, 1))
    assert documents[("gateway", "gw-delta")] == {"id": "gw-delta", "enterprise": "DELTA"}
    assert audit(engine, "registry.add") == [
        ("registry.add", "olga-admin", "registry:enterprise:DELTA@2026-03-01"),
        ("registry.add", "olga-admin", "registry:gateway:gw-delta@2026-03-01"),
        ("registry.add", "olga-admin", "registry:meter:DELTA-M1@2026-03-01"),
        ("registry.add", "olga-admin", "registry:meter:DELTA-M2@2026-03-01"),
    ]


def test_a_change_keeps_the_fields_the_form_does_not_carry_and_a_close_keeps_the_history(engine):
    add_delta(engine)
    with engine.begin() as conn:  # a replacement first, which the meter's form does not show
        registry_store.replace_meter(
            conn, "DELTA-M1", MeterReplacement(at=datetime(2026, 4, 10, tzinfo=UTC), old_final_reading=10,
            new_initial_reading=0), TZ, "office", "swap",
        )  # fmt: skip
    changes = put(engine, "meter", {"id": "DELTA-M1", "multiplier": "80"}, "change", when="2026-05-01")
    assert [(c.action, c.target) for c in changes] == [("registry.change", "registry:meter:DELTA-M1@2026-05-01")]
    meter = as_of(engine, date(2026, 5, 1)).meter_by_id["DELTA-M1"]
    assert meter.multiplier == 80.0 and len(meter.replacements) == 1 and meter.gateway == "gw-delta"
    with engine.begin() as conn:
        edit.close(conn, ADMIN, "meter", "DELTA-M2", "2026-06-01", "removed", NOW)
    assert "DELTA-M2" in as_of(engine, date(2026, 5, 31)).meter_by_id
    assert "DELTA-M2" not in as_of(engine, date(2026, 6, 1)).meter_by_id
    with engine.connect() as conn:
        listed = edit.entries(conn, date(2026, 6, 1), "DELTA")
        history = edit.entries(conn, date(2026, 5, 1))
    assert [(e.kind, e.entity_id) for e in listed] == [("enterprise", "DELTA"), ("gateway", "gw-delta"),
                                                       ("meter", "DELTA-M1")]  # fmt: skip
    versions = next(e.versions for e in history if e.entity_id == "DELTA-M1")
    assert [(v["valid_from"], v["valid_to"]) for v in versions] == [
        (date(2026, 3, 1), date(2026, 4, 1)),
        (date(2026, 4, 1), date(2026, 5, 1)),
        (date(2026, 5, 1), None),
    ]
    assert audit(engine, "registry.close") == [("registry.close", "olga-admin", "registry:meter:DELTA-M2@2026-06-01")]


@pytest.mark.parametrize(
    ("kind", "fields", "when", "expected"),
    [
        ("meter", {"id": "DELTA-M9", "gateway": "gw-nowhere", "enterprise": "ALPHA", "carrier": "grid_electricity",
                   "role": "main", "unit": "kWh"}, "2026-03-01",
         "meters[3] (id 'DELTA-M9'): gateway: unknown gateway 'gw-nowhere'"),
        ("meter", {"id": "DELTA-M9", "gateway": "gw-alpha", "enterprise": "ALPHA", "carrier": "grid_electricity",
                   "role": "main", "unit": "kWh", "multiplier": "four"}, "2026-03-01",
         "meters[3] (id 'DELTA-M9'): multiplier: Input should be a valid number"),
        ("meter", {"id": "DELTA-M9", "gateway": "gw-alpha", "enterprise": "ALPHA", "carrier": "grid_electricity",
                   "role": "sub", "unit": "kWh"}, "2026-03-01",
         "meters[3] (id 'DELTA-M9'): workshop: a sub-meter needs the workshop it measures"),
        ("workshop", {"id": "W-9", "enterprise": "NOBODY", "name": "w"}, "2026-03-01",
         "workshops[2] (id 'W-9'): enterprise: unknown enterprise 'NOBODY'"),
        ("gateway", {"id": "gw-9", "enterprise": "ALPHA"}, "2026-03-15", "valid_from: a registry change applies from"),
        ("enterprise", {"id": "ALPHA", "name": "again", "industry": "C39"}, "2026-03-01",
         "enterprise 'ALPHA': id: already in the registry"),
        ("enterprise", {"id": "ECHO", "name": "Echo"}, "2026-03-01",
         "enterprises[3] (id 'ECHO'): industry: Field required"),
        ("enterprise", {"id": "ECHO", "name": "Echo", "industry": "C39", "pilot_status": "pilot"}, "2026-03-01",
         "enterprises[3] (id 'ECHO'): pilot_from: pilot_status pilot needs pilot_from"),
    ],
)  # fmt: skip
def test_every_refused_change_names_the_entry_and_the_field_and_stores_nothing(engine, kind, fields, when, expected):
    with engine.connect() as conn:
        before = registry_store.history(conn)
    with pytest.raises(InvalidInputError) as refused:
        put(engine, kind, fields, when=when)
    assert expected in str(refused.value)
    with engine.connect() as conn:
        assert registry_store.history(conn) == before
    assert audit(engine, "registry.") == []


def test_an_enterprise_joins_and_leaves_the_pilot_by_versions(engine):
    """Pilot status and dates are registry fields: the months before a change keep the old status."""
    put(engine, "enterprise", {"id": "ECHO", "name": "Echo", "industry": "C39", "pilot_status": "candidate"},
        when="2026-03-01")  # fmt: skip
    put(engine, "enterprise", {"id": "ECHO", "pilot_status": "pilot", "pilot_from": "2026-05-01"}, "change",
        when="2026-05-01")  # fmt: skip
    put(engine, "enterprise", {"id": "ECHO", "pilot_status": "exited", "pilot_until": "2026-08-31"}, "change",
        when="2026-09-01")  # fmt: skip
    status = [
        (lambda e: (str(e.pilot_status), e.pilot_from, e.pilot_until))(as_of(engine, day).enterprise_by_id["ECHO"])
        for day in (date(2026, 4, 30), date(2026, 5, 1), date(2026, 9, 1))
    ]
    assert status == [
        ("candidate", None, None),
        ("pilot", date(2026, 5, 1), None),
        ("exited", date(2026, 5, 1), date(2026, 8, 31)),
    ]


def test_only_the_park_admin_edits(engine):
    for actor in (ANALYST, ALPHA, Actor("vic", "park_viewer", None, "x"), Actor("aud", "auditor", None, "x")):
        with pytest.raises(ForbiddenError):
            put(engine, "gateway", {"id": "gw-9", "enterprise": "ALPHA"}, actor=actor)
    with pytest.raises(NotFoundError), engine.begin() as conn:
        edit.close(conn, ADMIN, "meter", "NO-SUCH-METER", "2026-03-01", "gone", NOW)


# -- proposals --------------------------------------------------------------------------------------

REPLACEMENT_AT = datetime(2026, 3, 15, 10, 30, tzinfo=ZoneInfo(TZ))


def propose_replacement(engine: Engine, actor: Actor = ALPHA, meter_id: str = "ALPHA-M") -> int:
    replacement = edit.parse_replacement(meter_id, "2026-03-15T10:30", "12,345.5", "0.25", "", "NEW-SN-7", TZ)
    with engine.begin() as conn:
        return edit.propose_replacement(conn, actor, actor.enterprise_id or "", meter_id, replacement, "meter broke",
                                        TZ, NOW)  # fmt: skip


def approve(engine: Engine, proposal_id: int, actor: Actor = ANALYST):
    with engine.begin() as conn:
        return edit.approve(conn, actor, ALL, proposal_id, TZ, NOW)


def reject(engine: Engine, proposal_id: int, reason: str = "readings do not match the photo", actor=ANALYST):
    with engine.begin() as conn:
        edit.reject(conn, actor, ALL, proposal_id, reason, NOW)


def withdraw(engine: Engine, proposal_id: int, actor: Actor = ALPHA, enterprise_id: str = "ALPHA"):
    with engine.begin() as conn:
        edit.withdraw(conn, actor, enterprise_id, proposal_id, NOW)


def state(engine: Engine, proposal_id: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(select(registry_proposals.c.state).where(registry_proposals.c.id == proposal_id)).scalar()
        )


def test_an_approved_replacement_is_in_the_registry_from_its_month_with_its_audit_lines(engine):
    proposal_id = propose_replacement(engine)
    assert state(engine, proposal_id) == "proposed"
    assert as_of(engine, date(2026, 3, 1)).meter_by_id["ALPHA-M"].replacements == []  # nothing before approval
    changes = approve(engine, proposal_id)
    assert [(c.action, c.target) for c in changes] == [("registry.replace_meter", "registry:meter:ALPHA-M@2026-03-01")]
    assert state(engine, proposal_id) == "approved"
    replacements = as_of(engine, date(2026, 3, 1)).meter_by_id["ALPHA-M"].replacements
    assert replacements == [
        MeterReplacement(at=REPLACEMENT_AT, old_final_reading=12345.5, new_initial_reading=0.25, new_serial="NEW-SN-7")
    ]
    assert replacements[0].at == datetime(2026, 3, 15, 2, 30, tzinfo=UTC)  # 10:30 in Shanghai
    assert as_of(engine, date(2026, 2, 28)).meter_by_id["ALPHA-M"].replacements == []
    target = f"enterprise:ALPHA registry_proposal:{proposal_id} replacement:ALPHA-M"
    assert audit(engine) == [
        ("registry_proposal.propose", "alpha-admin", target),
        ("registry_proposal.approve", "ana-analyst", target),
        ("registry.replace_meter", "ana-analyst", "registry:meter:ALPHA-M@2026-03-01"),
    ]
    with engine.connect() as conn:
        version = registry_store.history(conn, "meter", "ALPHA-M")[-1]
    assert version["changed_by"] == "ana-analyst" and f"proposal {proposal_id} of alpha-admin" in version["reason"]


def test_a_proposed_meter_of_the_own_enterprise_and_its_checks(engine):
    fields = {"id": "ALPHA-M2", "gateway": "gw-alpha", "carrier": "grid_electricity", "role": "sub", "unit": "kWh",
              "workshop": "ALPHA-WS-1"}  # fmt: skip
    with engine.begin() as conn:
        proposal_id = edit.propose_entry(conn, ALPHA, "ALPHA", "meter", fields, "2026-04-01", "new line", NOW)
    approve(engine, proposal_id)
    assert as_of(engine, date(2026, 4, 1)).meter_by_id["ALPHA-M2"].enterprise == "ALPHA"
    refused = [
        ({**fields, "id": "ALPHA-M3", "gateway": "gw-bravo"}, "meter 'ALPHA-M3': gateway: ALPHA has no gateway"),
        ({**fields, "id": "ALPHA-M3", "workshop": "BRAVO-WS-1"}, "meter 'ALPHA-M3': workshop: ALPHA has no workshop"),
        ({**fields, "id": "ALPHA-M3", "enterprise": "BRAVO"}, "meter: enterprise: a proposal is for ALPHA's own"),
        ({**fields, "id": "ALPHA-M3", "carrier": "steam-ish"}, "meter 'ALPHA-M3': carrier: Input should be"),
        ({**fields, "id": "BRAVO-M"}, "meter 'BRAVO-M': id: already used in the registry"),
    ]
    for typed, expected in refused:
        with pytest.raises(InvalidInputError, match=expected), engine.begin() as conn:
            edit.propose_entry(conn, ALPHA, "ALPHA", "meter", typed, "2026-04-01", "new line", NOW)
    month_start = "valid_from: a registry change applies from a month's first day"
    with pytest.raises(InvalidInputError, match=month_start), engine.begin() as conn:
        edit.propose_entry(conn, ALPHA, "ALPHA", "meter", {**fields, "id": "ALPHA-M3"}, "2026-04-02", "x", NOW)


def test_an_approval_the_registry_refuses_undoes_itself_and_names_the_entry_and_field(engine):
    """A sub-meter whose workshop is closed meanwhile: the approval is refused with the registry's error,
    the proposal stays proposed, nothing of it is stored; the analyst then rejects it."""
    fields = {"id": "ALPHA-M2", "gateway": "gw-alpha", "carrier": "grid_electricity", "role": "sub", "unit": "kWh",
              "workshop": "ALPHA-WS-1"}  # fmt: skip
    with engine.begin() as conn:
        proposal_id = edit.propose_entry(conn, ALPHA, "ALPHA", "meter", fields, "2026-04-01", "new line", NOW)
        edit.close(conn, ADMIN, "workshop", "ALPHA-WS-1", "2026-04-01", "shop closed", NOW)
    with pytest.raises(InvalidInputError, match=r"meters\[3\] \(id 'ALPHA-M2'\): workshop: unknown workshop"):
        approve(engine, proposal_id)
    assert state(engine, proposal_id) == "proposed"
    with engine.connect() as conn:
        assert registry_store.history(conn, "meter", "ALPHA-M2") == []
    assert [a[0] for a in audit(engine, "registry_proposal")] == ["registry_proposal.propose"]
    reject(engine, proposal_id, "the workshop is closed")
    assert state(engine, proposal_id) == "rejected"


def test_every_illegal_transition_is_refused_with_a_clear_error(engine):
    approved, rejected, withdrawn, open_ = (propose_replacement(engine) for _ in range(4))
    approve(engine, approved)
    reject(engine, rejected)
    withdraw(engine, withdrawn)
    for proposal_id, now in ((approved, "approved"), (rejected, "rejected"), (withdrawn, "withdrawn")):
        with pytest.raises(IllegalTransitionError, match=f"proposal {proposal_id}: {now} → approved is not allowed"):
            approve(engine, proposal_id)
        with pytest.raises(IllegalTransitionError, match=f"{now} → rejected is not allowed"):
            reject(engine, proposal_id)
        with pytest.raises(IllegalTransitionError, match=f"{now} → withdrawn is not allowed"):
            withdraw(engine, proposal_id)
        assert state(engine, proposal_id) == now
    with pytest.raises(InvalidInputError, match="reason: a rejection needs a reason"):
        reject(engine, open_, "  ")
    with pytest.raises(InvalidInputError, match="reason: a proposal needs a reason"), engine.begin() as conn:
        replacement = MeterReplacement(at=REPLACEMENT_AT, old_final_reading=1, new_initial_reading=0)
        edit.propose_replacement(conn, ALPHA, "ALPHA", "ALPHA-M", replacement, "", TZ, NOW)
    # roles that may never make the change: 403
    for actor in (ALPHA, ADMIN, Actor("vic", "park_viewer", None, "x"), Actor("aud", "auditor", None, "x")):
        with pytest.raises(ForbiddenError):
            approve(engine, open_, actor)
        with pytest.raises(ForbiddenError):
            reject(engine, open_, actor=actor)
    with pytest.raises(ForbiddenError):
        withdraw(engine, open_, ANALYST)  # an analyst has no enterprise: never its proposal to withdraw
    for actor in (ANALYST, ADMIN, Actor("alpha-reporter", "enterprise_reporter", "ALPHA", "x")):
        with pytest.raises((ForbiddenError, NotFoundError)):
            propose_replacement(engine, Actor(actor.name, actor.role, "ALPHA", "x"))
    # another enterprise's: 404, as for one that does not exist
    with pytest.raises(NotFoundError):
        withdraw(engine, open_, BRAVO)  # asking as ALPHA's
    with pytest.raises(NotFoundError):
        withdraw(engine, open_, BRAVO, "BRAVO")
    with pytest.raises(NotFoundError):
        propose_replacement(engine, ALPHA, "BRAVO-M")
    with pytest.raises(NotFoundError):
        propose_replacement(engine, ALPHA, "NO-SUCH-METER")
    with pytest.raises(NotFoundError), engine.begin() as conn:
        edit.approve(conn, ANALYST, ["BRAVO"], open_, TZ, NOW)
    assert state(engine, open_) == "proposed"


def test_a_replacement_as_typed_names_the_meter_and_the_field():
    with pytest.raises(InvalidInputError, match="meter 'ALPHA-M': replacement: at: 'yesterday' is not a time"):
        edit.parse_replacement("ALPHA-M", "yesterday", "1", "0", "", "", TZ)
    with pytest.raises(InvalidInputError, match="meter 'ALPHA-M': replacement: old_final_reading: Input should be"):
        edit.parse_replacement("ALPHA-M", "2026-03-15T10:30", "lots", "0", "", "", TZ)
    with pytest.raises(InvalidInputError, match="replacement: new_multiplier: Input should be greater than 0"):
        edit.parse_replacement("ALPHA-M", "2026-03-15T10:30", "1", "0", "0", "", TZ)


def test_a_proposal_content_is_fixed_and_never_deleted(engine):
    proposal_id = propose_replacement(engine)
    for statement in (
        f"UPDATE registry_proposals SET document = '{{}}' WHERE id = {proposal_id}",
        f"UPDATE registry_proposals SET enterprise_id = 'BRAVO' WHERE id = {proposal_id}",
        f"DELETE FROM registry_proposals WHERE id = {proposal_id}",
    ):
        with pytest.raises(DBAPIError, match="registry_proposals"), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        row = conn.execute(select(registry_proposals).where(registry_proposals.c.id == proposal_id)).one()
    assert json.loads(row.document)["old_final_reading"] == 12345.5 and row.enterprise_id == "ALPHA"


@pytest.mark.parametrize("action", ["approve", "mixed"])
def test_two_analysts_deciding_at_once_apply_once(engine, action):
    """THREADS analysts (approving, or approving and rejecting) at once: one decision stands, the others
    get 409; the replacement is in the registry at most once, one decision in the audit log."""
    proposal_id = propose_replacement(engine)
    start = threading.Barrier(THREADS)

    def act(n: int) -> str:
        start.wait(timeout=60)
        who = ANALYST if n % 2 else ANALYST_2
        try:
            if action == "approve" or n % 2:
                approve(engine, proposal_id, who)
                return "approved"
            reject(engine, proposal_id, actor=who)
            return "rejected"
        except IllegalTransitionError:
            return "refused"

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(act, range(THREADS)))
    done = [o for o in outcomes if o != "refused"]
    assert len(done) == 1 and outcomes.count("refused") == THREADS - 1
    assert state(engine, proposal_id) == done[0]
    replacements = as_of(engine, date(2026, 3, 1)).meter_by_id["ALPHA-M"].replacements
    assert len(replacements) == (1 if done[0] == "approved" else 0)
    decisions = [
        a for a in audit(engine, "registry") if a[0] in ("registry_proposal.approve", "registry_proposal.reject")
    ]
    assert len(decisions) == 1
    assert [a[0] for a in audit(engine, "registry.replace_meter")] == (
        ["registry.replace_meter"] if replacements else []
    )


def test_the_export_as_of_a_date_is_the_registry_of_that_date(engine):
    add_delta(engine)
    with engine.connect() as conn:
        february, february_csv = edit.export(conn, date(2026, 2, 15))
        march, _ = edit.export(conn, date(2026, 3, 1))
    assert february.startswith("# the park registry as of 2026-02-15")
    assert parse_registry(yaml.safe_load(february)) == parse_registry(yaml.safe_load(REGISTRY))
    assert "DELTA-M1" in parse_registry(yaml.safe_load(march)).meter_by_id
    assert february_csv == "enterprise,name,industry,year,value_added_10k_cny\n"
    with pytest.raises(InvalidInputError, match="no park on 2025-12-31"), engine.connect() as conn:
        edit.export(conn, date(2025, 12, 31))
