"""A stand-in for InfluxDB 1.x that keeps points and answers the collector's own InfluxQL: enough to
test the sink and the conflict guard without a server. Points with the same series and time
overwrite each other, as in InfluxDB."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from park.lineprotocol import Point, encode
from park.store import InfluxError

_CONDITION = re.compile(r'"(\w+)" = \'((?:[^\'\\]|\\.)*)\'')
_RANGE = re.compile(r"time >= (\d+) AND time <= (\d+)")


class FakeInfluxDB:
    def __init__(self) -> None:
        self.points: dict[tuple[str, int], dict[str, str]] = {}  # (series, time) → fields as written
        self.down = False
        self.statements: list[str] = []  # every InfluxQL statement asked
        self.requests: list[str] = []  # every write body

    # -- writing ------------------------------------------------------------------------------------------

    def write_lines(self, body: str) -> None:
        if self.down:
            raise InfluxError("not reachable")
        self.requests.append(body)
        for line in body.split("\n"):
            series, fields, at = _split(line)
            self.points[(series, at)] = fields

    def write(self, points: list[Point]) -> int:
        self.write_lines("\n".join(encode(p) for p in points))
        return len(points)

    # -- reading ------------------------------------------------------------------------------------------

    def execute(self, statement: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        if self.down:
            raise InfluxError("not reachable")
        results = []
        for statement_id, one in enumerate(statement.split(";")):
            self.statements.append(one)
            where = dict(_CONDITION.findall(one))
            bounds = _RANGE.search(one)
            rows = sorted(
                (at, float(fields["raw_value"]))
                for (series, at), fields in self.points.items()
                if series.startswith("meter_register,")
                and _tags(series) == {k: v for k, v in where.items() if v}
                and (bounds is None or int(bounds[1]) <= at <= int(bounds[2]))
            )
            if one.startswith('SELECT LAST("raw_value")'):
                rows = rows[-1:]
            result: dict[str, Any] = {"statement_id": statement_id}
            if rows:
                result["series"] = [{"name": "meter_register", "columns": ["time", "raw_value"], "values": rows}]
            results.append(result)
        return results

    def raw_values(self) -> dict[tuple[str, str, int], float]:
        """(meter, register, time) → raw_value of every reading."""
        return {
            (_tags(series)["meter"], _tags(series)["register"], at): float(fields["raw_value"])
            for (series, at), fields in self.points.items()
            if series.startswith("meter_register,")
        }

    def quarantine(self) -> list[tuple[dict[str, str], dict[str, str]]]:
        """(tags, fields) of every quarantine point."""
        return [(_tags(s), f) for (s, _), f in self.points.items() if s.startswith("quarantine")]


def _tags(series: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in series.split(",")[1:])


def _split(line: str) -> tuple[str, dict[str, str], int]:
    """Series, fields and time of a line (the collector's lines: no escaped space in the series)."""
    series, rest = line.split(" ", 1)
    fields_text, at = rest.rsplit(" ", 1)
    fields: dict[str, str] = {}
    for match in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,]*)', fields_text):
        fields[match[1]] = match[2].rstrip("i") if not match[2].startswith('"') else match[2][1:-1]
    return series, fields, int(at)
