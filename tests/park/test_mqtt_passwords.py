"""Mosquitto password-file entries (park/mqtt_passwords.py) against the real ``mosquitto_passwd``."""

from __future__ import annotations

import base64
import shutil
import subprocess

import pytest

from park.mqtt_passwords import (
    is_password_hash,
    mosquitto_password_hash,
    password_file,
    read_password_file,
    verify_password,
)

pytestmark = pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto-clients' mosquitto_passwd")


class TestMosquittoPasswordHash:
    def test_same_entry_as_mosquitto_passwd_for_its_salt(self, tmp_path):
        """Hashing mosquitto_passwd's password with the salt it chose gives its entry byte for byte."""
        path = tmp_path / "passwd"
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(path), "gw-x", "s3cret:ü"], check=True)
        user, entry = path.read_text().strip().split(":", 1)
        _, kind, iterations, salt_b64, _ = entry.split("$")
        salt = base64.b64decode(salt_b64)
        assert (user, kind, iterations, len(salt)) == ("gw-x", "7", "101", 12)
        assert mosquitto_password_hash("s3cret:ü", salt) == entry
        assert verify_password("s3cret:ü", entry)
        assert not verify_password("s3cret:u", entry)

    def test_new_entries_differ_by_salt_and_verify(self):
        """Two hashes of one password differ (random 12-byte salt) and both verify; junk never does."""
        a, b = mosquitto_password_hash("pw"), mosquitto_password_hash("pw")
        assert a != b and verify_password("pw", a) and verify_password("pw", b)
        assert is_password_hash(a)
        assert not verify_password("pw", "plain") and not verify_password("pw", "$6$abc$def")

    def test_password_file_is_sorted_and_checked(self):
        """The file lists users in order; a user name with ':' or a clear-text entry is refused."""
        a = mosquitto_password_hash("a")
        text = password_file({"zz": a, "aa": a})
        assert text == f"aa:{a}\nzz:{a}\n"
        assert read_password_file(text) == {"aa": a, "zz": a}
        with pytest.raises(ValueError, match="user name"):
            password_file({"a:b": a})
        with pytest.raises(ValueError, match=r"\$7\$"):
            password_file({"gw": "clear-text"})
