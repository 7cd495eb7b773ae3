"""Headless Chromium (Debian's ``chromium``) for tests of what a person sees: the DOM after
rendering, and a screenshot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        raise RuntimeError("chromium is not installed: run `make bootstrap` (apt-get install chromium)")
    return found


def render(page: Path, screenshot: Path, width: int = 1280, height: int = 2400) -> str:
    """Open ``page`` in headless Chromium; write a PNG screenshot; return the rendered DOM."""
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        common = [chromium(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        dom = subprocess.run(
            [*common, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True, timeout=120, check=True
        ).stdout
        subprocess.run(
            [*common, f"--screenshot={screenshot}", page.resolve().as_uri()],
            capture_output=True,
            timeout=120,
            check=True,
        )
    return dom
