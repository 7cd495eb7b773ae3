"""Several SELECTs in one request to a real InfluxDB (`InfluxStore.query_many`, `query_rows_many`):
each statement's answer comes back in order, equal to what `query` gives for it alone."""

from __future__ import annotations

import pytest

from park.store import InfluxError

pytestmark = pytest.mark.services

LINES = "\n".join(
    [
        "credits,enterprise=A credits_tco2=1.5 1700000000000000000",
        "credits,enterprise=A credits_tco2=2.5 1700000100000000000",
        "credits,enterprise=B credits_tco2=9 1700000000000000000",
        'month_coverage,enterprise=A status="data",meters=3i 1700000000000000000',
    ]
)
STATEMENTS = [
    'SELECT * FROM "credits" WHERE "enterprise" = $e',
    'SELECT * FROM "month_coverage" WHERE "enterprise" = $e',
    'SELECT * FROM "credits" WHERE "enterprise" = $e AND time > 1700000000000000000',
    'SELECT * FROM "activity_monthly" WHERE "enterprise" = $e',  # nothing
]


def test_each_statement_answers_as_alone(store):
    store.write_lines(LINES)
    many = store.query_many(STATEMENTS, {"e": "A"})
    assert len(many) == 4
    for statement, frame in zip(STATEMENTS, many, strict=True):
        alone = store.query(statement, {"e": "A"})
        assert frame.equals(alone), statement
    assert many[0]["credits_tco2"].tolist() == [1.5, 2.5] and set(many[0]["enterprise"]) == {"A"}
    assert many[1]["status"].tolist() == ["data"] and many[1]["meters"].tolist() == [3]
    assert many[2]["credits_tco2"].tolist() == [2.5]
    assert many[3].empty


def test_rows_are_the_frames_without_pandas(store):
    store.write_lines(LINES)
    frames = store.query_many(STATEMENTS, {"e": "A"})
    rows = store.query_rows_many(STATEMENTS, {"e": "A"})
    for frame, found in zip(frames, rows, strict=True):
        expected = [
            {**r, "time": int(r["time"].value)} for r in frame.to_dict("records")
        ]  # the frame's time is a Timestamp, the row's ns
        assert found == expected
    assert rows[0][0] == {"time": 1700000000000000000, "credits_tco2": 1.5, "enterprise": "A"}


def test_a_bad_statement_or_a_separator_is_refused(store):
    store.write_lines(LINES)
    with pytest.raises(InfluxError, match=r"answered 400.*error parsing query"):
        store.query_many(['SELECT * FROM "credits"', "SELECT nonsense FROM WHERE"])
    with pytest.raises(InfluxError, match=r"InfluxQL error: .*in: SELECT mean"):  # refused when run
        store.query_many(['SELECT * FROM "credits"', 'SELECT mean("status") FROM "month_coverage"'])
    # Statements are joined with ';': one that carries its own separator gives more answers than asked
    # for, and is refused whole (the read-only account could not drop anything anyway).
    with pytest.raises(InfluxError, match="answered 2 results to 1 statements"):
        store.query_many(['SELECT * FROM "credits"; SELECT * FROM "month_coverage"'])
    assert store.query_many(['SELECT * FROM "credits" WHERE "enterprise" = \'a;b\''])[0].empty  # quoted: fine
    with pytest.raises(ValueError):
        store.query_rows_many([])
