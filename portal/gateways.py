"""Gateways' broker credentials, issued, rotated and revoked by the park admin on the platform.

A gateway's broker user name is its registry id (the ACL lets it publish only under that id). The
password is generated here (``secrets``), returned once for the page to show, and stored only as the
Mosquitto ``$7$`` PBKDF2-SHA512 entry, so ``parkcarbon broker sync`` can rebuild the broker's password
file from the database without knowing any password. Nothing here logs or audits a password.

State machine of one gateway's row (``gateway_credentials``), every transition the park admin's only:

    (none)  --issue-->  active  --rotate-->  active
                        active  --revoke-->  revoked  --issue-->  active

Each change is one conditional statement: an issue INSERTs (a second issue of the same gateway meets
the primary key) or UPDATEs ``WHERE state = 'revoked'``; a rotation UPDATEs ``WHERE state = 'active'
AND generation = <the generation the admin saw>``; a revocation UPDATEs ``WHERE state = 'active'``.
So two admins (or a double click) acting at once change the row once, and the other gets 409 —
never a second password silently replacing the one just handed over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from park.mqtt_passwords import mosquitto_password_hash
from park.registry import Registry
from portal import auth
from portal.audit import Actor, record
from portal.schema import gateway_credentials
from portal.scope import ForbiddenError, NotFoundError
from portal.workflow import IllegalTransitionError, check_transition

GATEWAY_ADMINS = ("park_admin",)
NONE = "none"  # the state of a gateway that has never had credentials (no row)
TRANSITIONS: dict[tuple[str, str], tuple[str, ...]] = {
    (NONE, "active"): GATEWAY_ADMINS,  # issue
    ("active", "active"): GATEWAY_ADMINS,  # rotate
    ("active", "revoked"): GATEWAY_ADMINS,  # revoke
    ("revoked", "active"): GATEWAY_ADMINS,  # issue again
}


@dataclass(frozen=True)
class GatewayCredential:
    """One registry gateway and its broker credential's state (``none`` if never issued)."""

    gateway_id: str
    enterprise_id: str
    state: str
    generation: int
    issued_at: datetime | None = None
    issued_by: str | None = None
    rotated_at: datetime | None = None
    rotated_by: str | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None


@dataclass(frozen=True)
class BrokerAccounts:
    """What the broker must know from the platform: the active gateways' password entries, and the
    revoked gateways (whose run-directory passwords, if any, must not let them in either)."""

    active: dict[str, str]  # gateway id → $7$ entry
    revoked: frozenset[str]


def require_gateway_admin(actor: Actor) -> None:
    if actor.role not in GATEWAY_ADMINS:
        raise ForbiddenError("managing gateways' broker credentials needs the park admin")


def _gateway(registry: Registry, gateway_id: str) -> str:
    """The registry gateway's id; 404 for an id the registry does not have."""
    if gateway_id not in registry.gateway_by_id:
        raise NotFoundError(gateway_id)
    return gateway_id


def _row(conn: Connection, gateway_id: str) -> GatewayCredential | None:
    found = conn.execute(select(gateway_credentials).where(gateway_credentials.c.gateway_id == gateway_id)).first()
    if found is None:
        return None
    return GatewayCredential(enterprise_id="", **{k: v for k, v in found._mapping.items() if k != "password_hash"})


def listing(conn: Connection, actor: Actor, registry: Registry) -> list[GatewayCredential]:
    """Every registry gateway, in registry order, with its credential's state."""
    require_gateway_admin(actor)
    rows = {r.gateway_id: r for r in conn.execute(select(gateway_credentials)).all()}
    found = []
    for gateway in registry.gateways:
        row = rows.get(gateway.id)
        if row is None:
            found.append(GatewayCredential(gateway.id, gateway.enterprise, NONE, 0))
            continue
        values = {k: v for k, v in row._mapping.items() if k not in ("password_hash", "gateway_id")}
        found.append(GatewayCredential(gateway.id, gateway.enterprise, **values))
    return found


def issue(conn: Connection, actor: Actor, registry: Registry, gateway_id: str, now: datetime) -> str:
    """New credentials for a gateway that has none or whose credentials were revoked; returns the
    password (to be shown once). 409 if the gateway already has active credentials (rotate those)."""
    require_gateway_admin(actor)
    _gateway(registry, gateway_id)
    current = _row(conn, gateway_id)
    from_state = NONE if current is None else current.state
    check_transition(TRANSITIONS, f"gateway {gateway_id}'s credentials", from_state, "active", actor.role)
    if from_state == "active":
        raise IllegalTransitionError(
            f"gateway {gateway_id}'s credentials", "active", "active", "already issued: rotate or revoke them"
        )
    password = auth.generate_password()
    entry = mosquitto_password_hash(password)
    if current is None:
        try:
            with conn.begin_nested():  # a concurrent issue meets the primary key: 409, nothing booked twice
                conn.execute(
                    insert(gateway_credentials).values(
                        gateway_id=gateway_id,
                        password_hash=entry,
                        state="active",
                        generation=1,
                        issued_at=now,
                        issued_by=actor.name,
                    )
                )
        except IntegrityError:
            raise IllegalTransitionError(
                f"gateway {gateway_id}'s credentials", NONE, "active", "issued by someone else just now"
            ) from None
        generation = 1
    else:
        generation = current.generation + 1
        done = conn.execute(
            update(gateway_credentials)
            .where(gateway_credentials.c.gateway_id == gateway_id, gateway_credentials.c.state == "revoked")
            .values(
                password_hash=entry,
                state="active",
                generation=generation,
                issued_at=now,
                issued_by=actor.name,
                rotated_at=None,
                rotated_by=None,
                revoked_at=None,
                revoked_by=None,
            )
        )
        if done.rowcount != 1:
            raise IllegalTransitionError(f"gateway {gateway_id}'s credentials", "revoked", "active", "changed just now")
    record(conn, actor, "gateway.issue", f"gateway:{gateway_id}", from_state, f"active #{generation}", now)
    return password


def rotate(
    conn: Connection, actor: Actor, registry: Registry, gateway_id: str, generation_seen: int, now: datetime
) -> str:
    """A new password for a gateway's active credentials, the old one refused from the broker's next
    reload; returns the new password. ``generation_seen`` is the generation the admin's page showed:
    if another rotation came first, 409 instead of replacing the password that one handed over."""
    require_gateway_admin(actor)
    _gateway(registry, gateway_id)
    current = _row(conn, gateway_id)
    from_state = NONE if current is None else current.state
    check_transition(TRANSITIONS, f"gateway {gateway_id}'s credentials", from_state, "active", actor.role)
    if from_state != "active":
        raise IllegalTransitionError(
            f"gateway {gateway_id}'s credentials",
            from_state,
            "active",
            "only active credentials are rotated; issue new",
        )
    password = auth.generate_password()
    done = conn.execute(
        update(gateway_credentials)
        .where(
            gateway_credentials.c.gateway_id == gateway_id,
            gateway_credentials.c.state == "active",
            gateway_credentials.c.generation == generation_seen,
        )
        .values(
            password_hash=mosquitto_password_hash(password),
            generation=generation_seen + 1,
            rotated_at=now,
            rotated_by=actor.name,
        )
    )
    if done.rowcount != 1:
        raise IllegalTransitionError(
            f"gateway {gateway_id}'s credentials", "active", "active", "rotated or revoked by someone else just now"
        )
    record(
        conn,
        actor,
        "gateway.rotate",
        f"gateway:{gateway_id}",
        f"active #{generation_seen}",
        f"active #{generation_seen + 1}",
        now,
    )
    return password


def revoke(conn: Connection, actor: Actor, registry: Registry, gateway_id: str, now: datetime) -> None:
    """Revoke a gateway's active credentials: the broker refuses it from its next reload (its
    connection closed, its reconnection refused, and its publishes denied by the ACL)."""
    require_gateway_admin(actor)
    _gateway(registry, gateway_id)
    current = _row(conn, gateway_id)
    from_state = NONE if current is None else current.state
    check_transition(TRANSITIONS, f"gateway {gateway_id}'s credentials", from_state, "revoked", actor.role)
    done = conn.execute(
        update(gateway_credentials)
        .where(gateway_credentials.c.gateway_id == gateway_id, gateway_credentials.c.state == "active")
        .values(state="revoked", revoked_at=now, revoked_by=actor.name)
    )
    if done.rowcount != 1:
        raise IllegalTransitionError(f"gateway {gateway_id}'s credentials", "active", "revoked", "revoked just now")
    assert current is not None
    record(
        conn,
        actor,
        "gateway.revoke",
        f"gateway:{gateway_id}",
        f"active #{current.generation}",
        "revoked",
        now,
    )


def broker_accounts(conn: Connection) -> BrokerAccounts:
    """The broker's view of the table (for ``parkcarbon broker sync``): active entries and revoked ids."""
    rows = conn.execute(
        select(gateway_credentials.c.gateway_id, gateway_credentials.c.password_hash, gateway_credentials.c.state)
    ).all()
    return BrokerAccounts(
        active={r.gateway_id: r.password_hash for r in rows if r.state == "active"},
        revoked=frozenset(r.gateway_id for r in rows if r.state == "revoked"),
    )
