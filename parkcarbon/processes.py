"""The child processes the local stack starts (``parkcarbon services`` and ``parkcarbon airflow``): each
in a session of its own with its output appended to a private log, kept until reaped so a stopped child
is collected with wait() rather than left a zombie, and the ports they listen on waited for."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

# Handles of the processes this Python process started: kept so that they are reaped with wait()
# when stopped here, instead of being collected while still running.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def spawn(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
    """Start ``argv`` in a new session, its output appended to ``log`` (created 0600); its PID."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    return proc.pid


def reap(pid: int) -> None:
    """Collect ``pid`` if it is a child of ours that has exited."""
    child = _CHILDREN.get(pid)
    if child is not None and child.poll() is not None:
        del _CHILDREN[pid]


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, timeout_s: float, poll_s: float = 0.05) -> bool:
    """True once something listens on ``port`` on 127.0.0.1, False if nothing does within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not port_in_use(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True
