"""A lint over every panel of every dashboard, without Grafana or InfluxDB: the grid (inside 24 columns,
no overlaps), units against what each field means (percentunit only for ratios in 0..1, counts as plain
numbers), one kind of quantity per axis, and a time grouping on every query of a raw measurement, so
that no panel makes InfluxDB return raw points however long the dashboard's range."""

from __future__ import annotations

import re
from itertools import combinations
from typing import Any

import pytest

from dashboards.build import all_dashboards
from park.measurements import COLLECTOR_STATS, GATEWAY_STATUS, METER_REGISTER, QUARANTINE
from park.registry import park_timezone
from park.settings import DEMO_REGISTRY, QualitySettings

# Measurements written per reading or per few seconds: a panel reads them only through GROUP BY time().
RAW = {m.name for m in (METER_REGISTER, COLLECTOR_STATS, GATEWAY_STATUS, QUARANTINE)}

# What each field a panel reads means. A field missing here fails the lint: classify it.
FIELD_KIND = {
    "tco2_location": "tco2",
    "tco2_market": "tco2",
    "credits_tco2": "tco2",
    "due_tco2": "tco2",
    "surrendered_tco2": "tco2",
    "emissions_tco2": "tco2",
    "grade": "grade",
    "rating_score": "score",
    "score": "score",
    "k_ratio": "factor",  # K = intensity / industry mean: 1.3 is 30 % above the mean, not "130 %"
    "intensity_t_per_10k_cny": "intensity",
    "benchmark_t_per_10k_cny": "intensity",
    "months_covered": "count",
    "quantity": "quantity",
    "value": "quantity",
    "completeness": "ratio",
    "completeness_sum": "ratio",  # read as Σ completeness_sum / Σ registers: the mean completeness
    "offset_ratio": "ratio",
    "required_ratio": "ratio",
    "target": "ratio",
    "estimated_intervals": "count",
    "gaps": "count",
    "resets": "count",
    "rollovers": "count",
    "late_readings": "count",
    "meters_silent": "count",
    "online": "count",
    "readings_written": "rate",
    "spool_depth_bytes": "bytes",
    "lag_s": "seconds",
    "rating": "text",
    "status": "text",
    "factor_set": "text",
    "policy_version": "text",
    "deadline": "text",
    "on_track": "text",
    # nearzero_evaluation: an indicator's value and threshold are in its own unit (a column beside them)
    "threshold": "quantity",
    "gap_tco2": "tco2",
    "value_text": "text",
    "unit": "text",
    "action": "text",
}
UNITS = {
    "ratio": {"percentunit"},
    "count": {"none", "short"},
    "tco2": {"none", "short"},
    "grade": {"none"},
    "score": {"none"},
    "factor": {"none"},
    "intensity": {"none", "short"},
    "quantity": {"none", "short", "kwatth"},
    "rate": {"ops"},
    "bytes": {"bytes", "decbytes"},
    "seconds": {"s"},
}

BOARDS = all_dashboards(park_timezone(DEMO_REGISTRY))
PANELS = [(uid, panel) for uid, model in BOARDS.items() for panel in model["panels"]]
IDS = [f"{uid}:{panel['title'][:40]}" for uid, panel in PANELS]


def statements(query: str) -> list[str]:
    """Each SELECT of ``query``, outermost first, with its subqueries cut out (as ``(…)``)."""
    found: list[str] = []

    def cut(text: str) -> str:
        out, i = "", 0
        while i < len(text):
            if text.startswith("(SELECT", i):
                depth, j = 0, i
                while True:
                    depth += {"(": 1, ")": -1}.get(text[j], 0)
                    if depth == 0:
                        break
                    j += 1
                found.append(cut(text[i + 1 : j]))
                out += "(…)"
                i = j + 1
            else:
                out += text[i]
                i += 1
        return out

    outer = cut(query)
    return [outer, *found]


def columns(query: str) -> list[tuple[str, str]]:
    """(column name, kind) for each item of the outer SELECT."""
    outer = statements(query)[0]
    items, depth, item = [], 0, ""
    for char in outer[len("SELECT ") : outer.index(" FROM ")] + ",":
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(item.strip())
            item = ""
        else:
            item += char
    result = []
    for text in items:
        alias = re.search(r'AS "([^"]+)"\s*$', text)
        function = re.match(r"([a-z_]+)\(", text)
        field = re.search(r'"([^"]+)"', text)
        assert field is not None, text
        name = alias.group(1) if alias else function.group(1) if function else field.group(1)
        if function and function.group(1) == "count":
            kind = "count"
        elif "derivative(" in text:
            kind = "rate"
        else:
            assert field.group(1) in FIELD_KIND, f"classify the field {field.group(1)!r} in FIELD_KIND"
            kind = FIELD_KIND[field.group(1)]
        result.append((name, kind))
    return result


def field_config(panel: dict[str, Any], ref: str, column: str) -> dict[str, Any]:
    """The panel's defaults with the overrides that match this target's (``ref``) column applied."""
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    config = {"unit": defaults.get("unit"), "axis": defaults.get("custom", {}).get("axisPlacement", "auto")}
    for rule in panel.get("fieldConfig", {}).get("overrides") or []:
        matcher = rule["matcher"]
        matched = (matcher["id"] == "byFrameRefID" and matcher["options"] == ref) or (
            matcher["id"] == "byName" and matcher["options"] == column
        )
        assert matcher["id"] in {"byFrameRefID", "byName"}, f"teach the lint the matcher {matcher['id']}"
        if matched:
            for prop in rule["properties"]:
                if prop["id"] == "unit":
                    config["unit"] = prop["value"]
                elif prop["id"] == "custom.axisPlacement":
                    config["axis"] = prop["value"]
    return config


@pytest.mark.parametrize("uid", list(BOARDS))
def test_grid(uid):
    """Every panel inside the 24 columns, none overlapping another."""
    boxes = []
    for panel in BOARDS[uid]["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["y"] >= 0 and pos["w"] >= 1 and pos["h"] >= 1, panel["title"]
        assert pos["x"] + pos["w"] <= 24, f"{panel['title']!r} at x={pos['x']} with width {pos['w']}"
        boxes.append((panel["title"], pos))
    for (a, p), (b, q) in combinations(boxes, 2):
        apart = (
            p["x"] + p["w"] <= q["x"]
            or q["x"] + q["w"] <= p["x"]
            or p["y"] + p["h"] <= q["y"]
            or q["y"] + q["h"] <= p["y"]
        )
        assert apart, f"{a!r} overlaps {b!r}"


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=IDS)
def test_raw_measurements_are_read_by_time_interval(uid, panel):
    for target in panel["targets"]:
        for statement in statements(target["query"]):
            read = re.findall(r'FROM "([^"]+)"', statement)
            if RAW & set(read):
                assert "GROUP BY time($__interval)" in statement, (panel["title"], statement)


@pytest.mark.parametrize(("uid", "panel"), PANELS, ids=IDS)
def test_units_match_what_each_field_means(uid, panel):
    axes: dict[tuple[str, str | None], set[str]] = {}
    for target in panel["targets"]:
        for column, kind in columns(target["query"]):
            config = field_config(panel, target["refId"], column)
            if kind == "text":
                continue
            assert config["unit"] in UNITS[kind], (
                f"{panel['title']!r}: {column!r} ({kind}) shown in {config['unit']!r}; use one of {sorted(UNITS[kind])}"
            )
            axes.setdefault((config["axis"], config["unit"]), set()).add(kind)
    if panel["type"] == "timeseries":
        for (axis, unit), kinds in axes.items():
            assert len(kinds) == 1, f"{panel['title']!r}: {sorted(kinds)} share the {axis} axis in {unit}"


def test_late_data_shows_the_months_it_looks_back():
    """Late data is dated at its month's start, up to ``late_data_months`` back: the panel looks that far
    back whatever the dashboard's range (the data-quality board opens on 7 days)."""
    late = next(p for uid, p in PANELS if p["title"].startswith("Late data"))
    months = int(late["timeFrom"].removesuffix("M"))
    assert months > QualitySettings().late_data_months


def test_the_lint_sees_what_it_should():
    """The lint's parsers on the cases the issue found."""
    assert columns('SELECT last("credits_tco2") AS "credits", count("gaps") FROM "x" WHERE $timeFilter') == [
        ("credits", "tco2"),
        ("count", "count"),
    ]
    nested = 'SELECT sum("online") FROM (SELECT last("online") AS "online" FROM "gateway_status" GROUP BY "g")'
    assert statements(nested)[1] == 'SELECT last("online") AS "online" FROM "gateway_status" GROUP BY "g"'
    raw = {"targets": [{"refId": "A", "query": 'SELECT "value" FROM "meter_register" WHERE $timeFilter'}], "title": ""}
    with pytest.raises(AssertionError):
        test_raw_measurements_are_read_by_time_interval("x", raw)
    percent_counts = {
        "type": "table",
        "title": "completeness",
        "fieldConfig": {"defaults": {"unit": "percentunit"}, "overrides": []},
        "targets": [{"refId": "A", "query": 'SELECT last("completeness"), last("gaps") AS "gaps" FROM "q"'}],
    }
    with pytest.raises(AssertionError, match=r"'gaps' \(count\) shown in 'percentunit'"):
        test_units_match_what_each_field_means("x", percent_counts)
    one_axis = {
        "type": "timeseries",
        "title": "credits and grade",
        "fieldConfig": {"defaults": {"unit": "none"}, "overrides": []},
        "targets": [
            {"refId": "A", "query": 'SELECT last("credits_tco2") FROM "credits"'},
            {"refId": "B", "query": 'SELECT last("grade") FROM "credits"'},
        ],
    }
    with pytest.raises(AssertionError, match="share the auto axis"):
        test_units_match_what_each_field_means("x", one_axis)
