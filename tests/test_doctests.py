"""The ``Examples`` in the docstrings of the numeric modules run, and hold."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ["park", "scoring", "ledger", "collectors", "simulators", "pipeline", "reports", "portal", "parkcarbon"]
WITH_EXAMPLES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for package in PACKAGES
    for path in (ROOT / package).rglob("*.py")
    if ">>> " in path.read_text(encoding="utf-8") and "migrations" not in path.parts
)


def test_the_numeric_modules_have_examples():
    """Units, amounts, registers, accounting, factors, credits, ratings and near-zero progress show how they compute."""
    for module in ("park.units", "ledger.amounts", "scoring.registers", "scoring.accounting", "scoring.credits"):
        assert module in WITH_EXAMPLES


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_examples_hold(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
