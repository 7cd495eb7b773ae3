"""People, passwords, sessions and login throttling.

- Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile); a hash
  made with older parameters is replaced at the next login. There is no default password: the first
  park admin is made by ``parkcarbon platform create-admin``, which prints a generated one once.
- A session is a random token in an HttpOnly cookie; the database keeps its SHA-256, the user's
  ``session_epoch`` at login, its form token (CSRF) and an absolute expiry. Changing a password (or
  disabling a user) raises the epoch: every session opened before stops working at once.
- Throttling: ``max_failures`` wrong passwords in a row for a user name, or from one client address,
  lock that name or address for ``lockout_minutes``. While locked, a login is refused without looking
  at the password (no oracle). A success clears the user name's count, never the address's (a valid
  account of one's own must not reset a guessing run on others'); a count whose last failure is older
  than the lockout period starts anew.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select, update

from ledger.db import lock
from portal.audit import Actor, record
from portal.schema import ENTERPRISE_ROLES, ROLES, login_throttle, sessions, users

HASHER = PasswordHasher()
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MIN_PASSWORD_LENGTH = 12
# Verified against when the user name is unknown, so that a wrong name costs as long as a wrong password.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))


class AuthError(ValueError):
    """A request about users that is refused (bad name, role, enterprise, weak password)."""


def generate_password() -> str:
    """A new random password (about 143 bits), shown once and stored only as its hash."""
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(when: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: they were stored as UTC."""
    return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    enterprise_id: str | None
    session_epoch: int
    active: bool


def _user(row: object) -> User:
    m = row._mapping  # type: ignore[attr-defined]
    return User(m["id"], m["username"], m["role"], m["enterprise_id"], m["session_epoch"], bool(m["active"]))


def validate_user(username: str, role: str, enterprise_id: str | None, known_enterprises: set[str]) -> None:
    if not USERNAME.match(username):
        raise AuthError("a user name is 3 to 64 characters: lower-case letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}: one of {', '.join(ROLES)}")
    if (role in ENTERPRISE_ROLES) != (enterprise_id is not None):
        raise AuthError(f"role {role} {'needs' if role in ENTERPRISE_ROLES else 'takes no'} enterprise")
    if enterprise_id is not None and enterprise_id not in known_enterprises:
        raise AuthError(f"unknown enterprise {enterprise_id!r}")


def create_user(
    conn: Connection,
    username: str,
    role: str,
    enterprise_id: str | None,
    password: str,
    by: Actor,
    known_enterprises: set[str],
) -> User:
    """Add a user (audited as ``user.create``); refused if the name is taken."""
    validate_user(username, role, enterprise_id, known_enterprises)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    if conn.execute(select(users.c.id).where(users.c.username == username)).first() is not None:
        raise AuthError(f"user {username!r} exists already")
    now = datetime.now(UTC)
    conn.execute(
        insert(users).values(
            username=username,
            role=role,
            enterprise_id=enterprise_id,
            password_hash=HASHER.hash(password),
            session_epoch=1,
            active=True,
            created_at=now,
            created_by=by.name,
        )
    )
    record(conn, by, "user.create", f"user:{username}", "", f"role={role} enterprise={enterprise_id or '-'}", now)
    found = find_user(conn, username)
    assert found is not None
    return found


def find_user(conn: Connection, username: str) -> User | None:
    row = conn.execute(select(users).where(users.c.username == username)).first()
    return _user(row) if row is not None else None


def user_by_id(conn: Connection, user_id: int) -> User | None:
    row = conn.execute(select(users).where(users.c.id == user_id)).first()
    return _user(row) if row is not None else None


def list_users(conn: Connection, enterprise_id: str | None = None, every: bool = False) -> list[User]:
    """The users of ``enterprise_id``, or (``every``) all users."""
    query = select(users).order_by(users.c.enterprise_id, users.c.username)
    if not every:
        query = query.where(users.c.enterprise_id == enterprise_id)
    return [_user(r) for r in conn.execute(query)]


def verify_password(conn: Connection, user: User, password: str) -> bool:
    """True if ``password`` is ``user``'s."""
    row = conn.execute(select(users.c.password_hash).where(users.c.id == user.id)).first()
    try:
        return row is not None and HASHER.verify(row.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def set_password(conn: Connection, user: User, password: str, by: Actor) -> None:
    """Replace the password and raise the session epoch: every older session ends."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"a password has at least {MIN_PASSWORD_LENGTH} characters")
    conn.execute(
        update(users)
        .where(users.c.id == user.id)
        .values(password_hash=HASHER.hash(password), session_epoch=users.c.session_epoch + 1)
    )
    conn.execute(delete(sessions).where(sessions.c.user_id == user.id))
    record(conn, by, "user.password", f"user:{user.username}", f"epoch={user.session_epoch}", "changed")


def set_active(conn: Connection, user: User, active: bool, by: Actor) -> None:
    """Disable (or enable again) a user; disabling ends its sessions."""
    conn.execute(
        update(users)
        .where(users.c.id == user.id)
        .values(active=active, session_epoch=users.c.session_epoch + (0 if active else 1))
    )
    if not active:
        conn.execute(delete(sessions).where(sessions.c.user_id == user.id))
    record(conn, by, "user.active", f"user:{user.username}", str(user.active).lower(), str(active).lower())


# -- login --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    user: User | None  # None: refused
    locked: bool = False  # refused because the name or address is locked
    token: str = ""  # the new session's cookie value
    csrf_token: str = ""


def _throttle_keys(username: str, client: str) -> list[str]:
    return [f"user:{username.lower()[:150]}", f"addr:{client[:150]}"]


def _locked(conn: Connection, keys: list[str], now: datetime) -> bool:
    rows = conn.execute(select(login_throttle.c.locked_until).where(login_throttle.c.key.in_(keys))).all()
    return any((until := _aware(r.locked_until)) is not None and until > now for r in rows)


def _count_failure(conn: Connection, key: str, now: datetime, max_failures: int, lockout: timedelta) -> bool:
    """One more wrong password for ``key``; True if that locks it."""
    row = conn.execute(select(login_throttle).where(login_throttle.c.key == key)).first()
    failures = 1
    if row is not None:
        last = _aware(row.last_failure_at)
        until = _aware(row.locked_until)
        stale = (last is not None and now - last > lockout) or (until is not None and until <= now)
        failures = 1 if stale else int(row.failures) + 1
    locked_until = now + lockout if failures >= max_failures else None
    values = {"failures": failures, "last_failure_at": now, "locked_until": locked_until}
    if row is None:
        conn.execute(insert(login_throttle).values(key=key, **values))
    else:
        conn.execute(update(login_throttle).where(login_throttle.c.key == key).values(**values))
    return locked_until is not None


def login(
    conn: Connection,
    username: str,
    password: str,
    client: str,
    max_failures: int,
    lockout: timedelta,
    session_lifetime: timedelta,
) -> LoginResult:
    """Check a login and, if it is right, open a session. Audited: ``login.success``, ``login.failure``,
    ``login.locked`` (a refusal because of throttling) and ``login.lockout`` (the failure that locks)."""
    now = datetime.now(UTC)
    username = username.strip().lower()[:64]
    keys = _throttle_keys(username, client)
    lock(conn, *(f"platform-login:{k}" for k in keys))  # PostgreSQL; SQLite's writers queue already
    user = find_user(conn, username)
    who = Actor(username, user.role if user else "", user.enterprise_id if user else None, client)
    if _locked(conn, keys, now):
        record(conn, who, "login.locked", f"user:{username}", "", "refused: locked", now)
        return LoginResult(None, locked=True)
    row = conn.execute(select(users.c.password_hash).where(users.c.username == username)).first()
    try:
        HASHER.verify(row.password_hash if row is not None else _DUMMY_HASH, password)
        right = row is not None
    except (VerificationError, InvalidHashError):
        right = False
    if not right or user is None or not user.active:
        newly_locked = [_count_failure(conn, key, now, max_failures, lockout) for key in keys]
        record(conn, who, "login.failure", f"user:{username}", "", "wrong name or password", now)
        if any(newly_locked):
            record(conn, who, "login.lockout", f"user:{username}", "", f"locked until {now + lockout:%Y-%m-%dT%H:%M}Z")
        return LoginResult(None)
    assert row is not None
    if HASHER.check_needs_rehash(row.password_hash):
        conn.execute(update(users).where(users.c.id == user.id).values(password_hash=HASHER.hash(password)))
    conn.execute(delete(login_throttle).where(login_throttle.c.key == keys[0]))
    token, csrf = open_session(conn, user, client, now, session_lifetime)
    record(conn, who, "login.success", f"user:{username}", "", "session opened", now)
    return LoginResult(user, token=token, csrf_token=csrf)


def open_session(conn: Connection, user: User, client: str, now: datetime, lifetime: timedelta) -> tuple[str, str]:
    """A new session for ``user`` under its current epoch: (cookie token, form token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    conn.execute(
        insert(sessions).values(
            token_sha256=token_hash(token),
            user_id=user.id,
            epoch=user.session_epoch,
            csrf_token=csrf,
            created_at=now,
            expires_at=now + lifetime,
            client=client[:64],
        )
    )
    return token, csrf


@dataclass(frozen=True)
class Session:
    token_sha256: str
    user: User
    csrf_token: str


def session_for(conn: Connection, token: str, now: datetime | None = None) -> Session | None:
    """The live session of cookie value ``token``: known, not expired, opened under the user's current
    epoch, the user active. None otherwise."""
    if not token or len(token) > 200:
        return None
    digest = token_hash(token)
    row = conn.execute(
        select(sessions.c.epoch, sessions.c.csrf_token, sessions.c.expires_at, users)
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.token_sha256 == digest)
    ).first()
    if row is None:
        return None
    user = _user(row)
    expires = _aware(row.expires_at)
    if row.epoch != user.session_epoch or not user.active or expires is None or expires <= (now or datetime.now(UTC)):
        return None
    return Session(digest, user, row.csrf_token)


def close_session(conn: Connection, token_sha256: str) -> None:
    conn.execute(delete(sessions).where(sessions.c.token_sha256 == token_sha256))
