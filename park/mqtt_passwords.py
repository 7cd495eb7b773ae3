"""Mosquitto's password-file entries, spelled once: ``user:$7$iterations$salt$hash``.

The platform stores a gateway's broker password only as this entry, so the broker's password file can
be rebuilt from the database without knowing any password; the local stack hashes its service
accounts with the same function. Verified against ``mosquitto_passwd`` and a running Mosquitto 2.0.11
(tests/park/test_mqtt_passwords.py, tests/integration/test_broker_sync.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping

# source: mosquitto 2.0.11 apps/mosquitto_passwd/mosquitto_passwd.c (PW_DEFAULT_ITERATIONS 101,
# SALT_LEN 12, hash type 7 = PBKDF2-HMAC-SHA512); checked against `mosquitto_passwd -b` here.
MOSQUITTO_PBKDF2_ITERATIONS = 101
MOSQUITTO_SALT_BYTES = 12
_ENTRY = re.compile(r"^\$7\$(?P<iterations>[1-9][0-9]{0,6})\$(?P<salt>[A-Za-z0-9+/=]+)\$(?P<digest>[A-Za-z0-9+/=]+)$")
# A broker user name as a password file line can carry it: no ':' and nothing that ends a line.
_USER = re.compile(r"^[^:\s]{1,64}$")


def mosquitto_password_hash(
    password: str, salt: bytes | None = None, iterations: int = MOSQUITTO_PBKDF2_ITERATIONS
) -> str:
    """A password-file entry as ``mosquitto_passwd`` writes it: PBKDF2-HMAC-SHA512, ``$7$iterations$salt$hash``."""
    salt = secrets.token_bytes(MOSQUITTO_SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def is_password_hash(entry: str) -> bool:
    """Whether ``entry`` has the shape of a ``$7$`` entry (what a password file line may carry)."""
    return _ENTRY.match(entry) is not None


def verify_password(password: str, entry: str) -> bool:
    """Whether ``password`` is the one hashed in ``entry`` (compared in constant time)."""
    found = _ENTRY.match(entry)
    if found is None:
        return False
    salt = base64.b64decode(found["salt"])
    expected = mosquitto_password_hash(password, salt, int(found["iterations"]))
    return hmac.compare_digest(expected.encode(), entry.encode())


def password_file(entries: Mapping[str, str]) -> str:
    """Mosquitto's password file from already hashed ``entries`` (user → ``$7$`` entry), one line each,
    sorted by user so the same accounts always give the same file."""
    for user, entry in entries.items():
        if not _USER.match(user):
            raise ValueError(f"{user!r} cannot be a broker user name in a password file")
        if not is_password_hash(entry):
            raise ValueError(f"the entry of {user!r} is not a mosquitto $7$ hash")
    return "".join(f"{user}:{entries[user]}\n" for user in sorted(entries))


def read_password_file(text: str) -> dict[str, str]:
    """The entries (user → hash) of a password file's text; lines without ``user:`` are skipped."""
    entries: dict[str, str] = {}
    for line in text.splitlines():
        user, sep, entry = line.partition(":")
        if sep and user and not user.startswith("#"):
            entries[user] = entry
    return entries
