"""The demo enterprises file's rows (value added per enterprise and year), as `parkcarbon registry
import --enterprises` reads them: what a test imports into the registry database beside the demo
registry."""

from __future__ import annotations

import csv

from park.settings import DEMO_ENTERPRISES


def demo_enterprise_rows() -> list[dict[str, str]]:
    with DEMO_ENTERPRISES.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))
