"""The InfluxDB contract in park/measurements.py is the one the README documents, and the one points obey."""

from __future__ import annotations

import re

import pytest

from park.measurements import ALL, CREDITS, ContractError
from park.settings import PROJECT_ROOT


def _readme_table() -> dict[str, tuple[set[str], set[str]]]:
    """README "InfluxDB measurements": measurement → (tags, fields), each cell a comma-separated list."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## InfluxDB measurements", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`\w+`", cells[0]):

            def names(cell: str) -> set[str]:
                return {n.strip() for n in cell.split(",") if n.strip()}

            table[cells[0].strip("`")] = (names(cells[1]), names(cells[2]))
    return table


class TestContract:
    def test_readme_documents_exactly_the_contract(self):
        """Every measurement, with exactly its tags and fields, and nothing else."""
        assert _readme_table() == {m.name: (set(m.tags), set(m.fields)) for m in ALL}

    def test_names_are_unique(self):
        assert len({m.name for m in ALL}) == len(ALL)

    def test_a_point_with_an_undeclared_field_is_refused(self):
        """A writer cannot add a field or tag the contract does not declare."""
        with pytest.raises(ContractError, match="declares no \\['credit'\\]"):
            CREDITS.point({"enterprise": "E01"}, {"credit": 1.0}, 0)
        with pytest.raises(ContractError, match="declares no \\['carrier'\\]"):
            CREDITS.point({"carrier": "x"}, {"credits_tco2": 1.0}, 0)

    def test_a_point_of_the_contract_is_built(self):
        point = CREDITS.point({"enterprise": "E01", "industry": "C39"}, {"credits_tco2": 1.5}, 7)
        assert (point.measurement, point.tags["enterprise"], point.fields["credits_tco2"], point.time_ns) == (
            "credits",
            "E01",
            1.5,
            7,
        )


class TestWritersFollowTheContract:
    def test_scoring_columns_written_are_the_contract_fields(self):
        """The monthly step writes every credit and quality column scoring makes, and the contract declares
        exactly those: a new scoring column is not dropped silently, nor a stored field left unwritten."""
        from park.measurements import CREDITS, DATA_QUALITY
        from pipeline.monthly import CREDIT_FIELDS, QUALITY_FIELDS
        from scoring.activity import QUALITY_COLUMNS
        from scoring.credits import CREDIT_COLUMNS, EXTRA_CREDIT_COLUMNS

        tags = {"enterprise", "year", "industry", "meter", "register"}
        assert set(CREDIT_FIELDS) == set(CREDITS.fields)
        assert set(CREDIT_COLUMNS + EXTRA_CREDIT_COLUMNS) - tags <= set(CREDITS.fields)
        assert set(QUALITY_FIELDS) == set(DATA_QUALITY.fields) == set(QUALITY_COLUMNS) - tags
