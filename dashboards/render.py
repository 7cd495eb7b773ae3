"""A panel's query as Grafana's InfluxDB (InfluxQL) datasource sends it: ``$timeFilter`` for the range
(the panel's own ``timeFrom`` overriding the dashboard's, when asked), ``$__interval`` as Grafana
computes it (the range over the panel's data points, rounded to a round value, never below the
panel's minimum ``interval``), and the template variables' values, regex-escaped as Grafana does for
``=~ /^$var$/``. The dashboards' tests and ``bench/dashboards.py`` run every panel through it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

# Grafana's round intervals (its ``roundInterval``), in seconds.
ROUND_INTERVALS_S = (1, 5, 10, 15, 20, 30, 60, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 30 * 86400, "y": 365 * 86400}
MAX_DATA_POINTS = 1000  # about a panel's width in pixels


def duration_s(text: str) -> int:
    """Grafana's duration text in seconds: ``"15m"`` → 900, ``"1d"`` → 86400.

    >>> duration_s("15m"), duration_s("24h"), duration_s("7d"), duration_s("14M")
    (900, 86400, 604800, 36288000)
    """
    match = re.fullmatch(r"(\d+)([smhdwMy])", text.strip())
    if match is None:
        raise ValueError(f"not a Grafana duration: {text!r}")
    return int(match.group(1)) * UNITS_S[match.group(2)]


def interval_s(range_s: float, min_interval_s: int = 1, max_data_points: int = MAX_DATA_POINTS) -> int:
    """``$__interval`` for a range: range / data points, rounded to a round value, at least the minimum.

    >>> interval_s(365 * 86400), interval_s(7 * 86400), interval_s(7 * 86400, 86400)
    (43200, 900, 86400)
    """
    raw = range_s / max_data_points
    rounded = next((r for r in ROUND_INTERVALS_S if r >= raw), ROUND_INTERVALS_S[-1])
    return max(rounded, min_interval_s)


def _text_s(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def rendered(
    panel: dict[str, Any],
    query: str,
    start: datetime,
    end: datetime,
    variables: dict[str, str],
    *,
    panel_time: bool = True,
    interval: str | None = None,
) -> str:
    """``query`` of ``panel`` over ``start``–``end`` with every macro and variable replaced. With
    ``panel_time`` the panel's ``timeFrom`` (e.g. ``"24h"``) replaces the range's start; ``interval``
    forces ``$__interval`` (else it is computed as Grafana does)."""
    if panel_time and panel.get("timeFrom"):
        start = end - timedelta(seconds=duration_s(panel["timeFrom"]))
    if interval is None:
        minimum = duration_s(panel["interval"]) if panel.get("interval") else 1
        interval = _text_s(interval_s((end - start).total_seconds(), minimum))
    time_filter = f"time >= {int(start.timestamp() * 1000)}ms and time <= {int(end.timestamp() * 1000)}ms"
    query = query.replace("$timeFilter", time_filter).replace("$__interval", interval)
    for name, value in variables.items():
        query = query.replace(f"${name}", re.escape(value))
    if re.search(r"\$[A-Za-z_]", query):
        raise ValueError(f"a macro or variable is left in: {query}")
    return query
