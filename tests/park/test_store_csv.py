"""Large reads as CSV (`InfluxStore.query_csv`, used by the daily rollup's raw read): the frame is the
one `query` builds from JSON, value for value, for awkward floats and escaped tags; errors and empty
answers come back as `query` gives them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from park.store import InfluxError, _csv_frame, _tags

pytestmark = pytest.mark.services

# Floats whose decimal form is long or extreme: the CSV parser must give the same float64 as JSON's.
AWKWARD = [0.1 + 0.2, 1e-300, 5e-324, 1.7976931348623157e308, 2.0, 123456.78901234567, 999999.9999999999, 1 / 3]


def _lines(rng: np.random.Generator) -> str:
    lines = []
    for tags, n in [
        ("meter=M1,register=import", 2000),
        (r"meter=odd\,id\=x\ y,register=import", 500),  # a comma, an equals sign and a space, escaped
        ("register=import", 300),  # a series without the meter tag
    ]:
        values = np.concatenate([AWKWARD, rng.uniform(0, 1e6, n), np.exp(rng.normal(0, 40, n))])
        lines += [
            f"meter_register,{tags} raw_value={v!r},value={v / 2!r} {1_700_000_000_000_000_000 + i * 10**9}"
            for i, v in enumerate(values.tolist())
        ]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("statement", "group_by"),
    [
        ('SELECT "raw_value" FROM "meter_register" GROUP BY "meter", "register"', ("register", "meter")),
        ('SELECT "raw_value", "value" FROM "meter_register" GROUP BY "meter"', ("meter",)),
        ('SELECT "raw_value" FROM "meter_register" WHERE "meter" = \'M1\'', ()),
        ('SELECT "raw_value" FROM "meter_register" WHERE time < 0 GROUP BY "meter"', ("meter",)),  # nothing
    ],
)
def test_csv_frame_equals_json_frame(store, statement, group_by):
    store.write_lines(_lines(np.random.default_rng(3)))
    expected, found = store.query(statement), store.query_csv(statement, group_by)
    # JSON gives whole floats as ints (an object column when mixed), CSV float64: the float64 values
    # the rollup takes (``to_numpy(dtype=float)``) are the same, bit for bit.
    assert list(found.columns) == list(expected.columns) and len(found) == len(expected)
    for column in expected.columns:
        if column in ("raw_value", "value"):
            assert found[column].dtype == np.float64
            assert found[column].to_numpy().tobytes() == expected[column].to_numpy(dtype=float).tobytes()
        else:
            pd.testing.assert_series_equal(found[column], expected[column], check_exact=True)
    if "meter" in expected:
        assert set(found["meter"]) == {"M1", "odd,id=x y", ""}  # "" for the series without a meter


def test_csv_errors_are_refused(store):
    store.write_lines(
        'month_coverage,enterprise=A status="data" 1700000000000000000\n'
        "credits,enterprise=A credits_tco2=1.5 1700000000000000000"
    )
    with pytest.raises(InfluxError, match=r"(?s)answered 400.*error parsing query"):
        store.query_csv("SELECT nonsense FROM WHERE")
    with pytest.raises(InfluxError, match=r"InfluxQL error: .*in: SELECT mean"):  # refused when run
        store.query_csv('SELECT mean("status") FROM "month_coverage"')
    with pytest.raises(ValueError, match="does not name"):  # a GROUP BY tag the caller did not name
        store.query_csv('SELECT "credits_tco2" FROM "credits" GROUP BY "enterprise"')


def test_a_million_floats_parse_as_json_decodes_them():
    """Pure parsing: a million readings in the shortest round-trip form (as InfluxDB writes them)
    come back as the exact float64 that was written."""
    rng = np.random.default_rng(11)
    values = np.concatenate([rng.uniform(0, 1e6, 600_000), rng.random(200_000), np.exp(rng.normal(0, 60, 200_000))])
    body = "name,tags,time,raw_value\n" + "".join(
        f'meter_register,"meter=M{i % 7},register=import",{i},{v!r}\n' for i, v in enumerate(values.tolist())
    )
    frame = _csv_frame(body.encode(), "SELECT ...", ("meter", "register"))
    assert frame["raw_value"].to_numpy().tobytes() == values.tobytes()
    assert frame["meter"].tolist()[:8] == [f"M{i % 7}" for i in range(8)]
    assert frame["time"].iloc[3] == pd.Timestamp(3, unit="ns", tz="UTC")


def test_tag_keys_are_unescaped_or_refused():
    assert _tags(r"meter=a\,b\=c\ d,register=x") == {"meter": "a,b=c d", "register": "x"}
    assert _tags("") == {}
    with pytest.raises(InfluxError, match="cannot have written"):
        _tags("meter")


def test_text_columns_come_as_written(store):
    """A string and a boolean field asked as ``text``: what JSON gives as str and bool, CSV gives as the
    words InfluxDB writes; floats and integers beside them as float64, "" for a field a row lacks."""
    store.write_lines(
        'meter_daily,meter=M1,register=import quantity=1.5,has_start=true,rules_sha256="ab,c d",readings=96i 1\n'
        "meter_daily,meter=M1,register=import quantity=2.25,has_start=false,readings=95i 2\n"
        'meter_daily,meter=M2,register=import quantity=0.1,has_start=true,rules_sha256="x",readings=1i 3'
    )
    statement = 'SELECT "quantity", "has_start", "rules_sha256", "readings" FROM "meter_daily" GROUP BY "meter"'
    expected = store.query(statement)
    found = store.query_csv(statement, ("meter",), text=("has_start", "rules_sha256"))
    assert list(found.columns) == list(expected.columns)
    assert found["has_start"].tolist() == [str(v).lower() for v in expected["has_start"]] == ["true", "false", "true"]
    assert found["rules_sha256"].tolist() == ["ab,c d", "", "x"] and pd.isna(expected["rules_sha256"].tolist()[1])
    assert found["quantity"].tolist() == expected["quantity"].tolist()
    assert found["readings"].dtype == np.float64 and found["readings"].tolist() == [96.0, 95.0, 1.0]
