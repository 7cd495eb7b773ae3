"""Line protocol escaping: unit cases, and a hypothesis round trip through the real InfluxDB."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from park.lineprotocol import LineProtocolError, Point, encode, to_ns
from park.store import quote_literal


class TestEncode:
    def test_escapes(self):
        """Commas, spaces and equals signs in names; quotes and backslashes in string fields."""
        p = Point("meter reg,x", {"a b": "c=d,e"}, {"f g": 'he said "hi" \\o/', "n": 2, "x": 1.5, "ok": True}, 7)
        assert encode(p) == r'meter\ reg\,x,a\ b=c\=d\,e f\ g="he said \"hi\" \\o/",n=2i,x=1.5,ok=true 7'

    def test_floats_stay_floats(self):
        """An integral float is written as a float, never as an integer (field types are fixed)."""
        assert encode(Point("m", {}, {"v": 3.0}, 0)) == "m v=3.0 0"

    @pytest.mark.parametrize("bad", [{"v": math.nan}, {"v": math.inf}, {}])
    def test_unrepresentable_fields(self, bad):
        with pytest.raises(LineProtocolError):
            encode(Point("m", {}, bad, 0))

    @pytest.mark.parametrize("tag", ["a\nb", "ends\\"])
    def test_unrepresentable_tags(self, tag):
        with pytest.raises(LineProtocolError):
            encode(Point("m", {"t": tag}, {"v": 1.0}, 0))

    def test_to_ns_is_exact(self):
        """Microseconds survive exactly, whatever the offset."""
        when = datetime(2026, 1, 31, 23, 45, 0, 123456, tzinfo=timezone(timedelta(hours=8)))
        assert to_ns(when) == 1769874300123456000
        assert to_ns(when.astimezone(UTC)) == to_ns(when)


tag_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
    lambda s: not s.endswith("\\") and s.strip() == s and s != ""
)
field_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200)


@pytest.mark.services
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tag=tag_text, text=field_text, value=st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_round_trip_through_influxdb(store, tag, text, value):
    """Whatever hypothesis writes comes back from InfluxDB unchanged."""
    store.execute('DELETE FROM "rt"')
    store.write([Point("rt", {"tag": tag}, {"text": text, "value": value}, 1_000_000_000)])
    back = store.query('SELECT * FROM "rt"')
    assert len(back) == 1
    assert back["tag"].iloc[0] == tag
    assert back["text"].iloc[0] == text
    assert back["value"].iloc[0] == value
    selected = store.query(f'SELECT "value" FROM "rt" WHERE "tag" = {quote_literal(tag)}')
    assert len(selected) == 1  # the tag, quoted as an InfluxQL literal, selects its own point
