"""Hashes that tie every result row to its exact inputs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd


def _canonical(value: object) -> object:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def rows_sha256(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """SHA-256 of the rows' values in ``columns``, independent of row order."""
    rows = sorted(
        json.dumps([_canonical(v) for v in row], ensure_ascii=False)
        for row in frame[list(columns)].itertuples(index=False)
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
