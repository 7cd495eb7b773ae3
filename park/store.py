"""The InfluxDB store, spoken to through the 1.x-compatible HTTP API: ``/write`` and ``/query``.

InfluxDB 1.x serves this API natively, 2.x through its compatibility API (DBRP mapping) and 3.x
through its v1 compatibility endpoints; no Flux is used anywhere.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any, Self

import httpx
import numpy as np
import pandas as pd

from park.lineprotocol import Point, encode
from park.measurements import Measurement
from park.settings import InfluxSettings


class InfluxError(RuntimeError):
    """InfluxDB refused a request; ``status`` is the HTTP status (0 when it could not be reached)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def retryable(self) -> bool:
        """True for outages and overload, False for requests InfluxDB will never accept (4xx)."""
        return self.status == 0 or self.status == 429 or self.status >= 500


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_literal(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _batches(points: Iterable[Point], size: int) -> Iterator[list[Point]]:
    it = iter(points)
    while batch := list(islice(it, size)):
        yield batch


class InfluxStore:
    """A thin client: create the database, write points in batches, run InfluxQL into pandas."""

    def __init__(self, settings: InfluxSettings, client: httpx.Client | None = None) -> None:
        self.settings = settings
        auth = None
        if settings.username and settings.password:
            auth = (settings.username, settings.password.get_secret_value())
        self._client = client or httpx.Client(base_url=settings.url, timeout=settings.timeout_s, auth=auth)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def database(self) -> str:
        return self.settings.database

    # -- requests ---------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise InfluxError(f"InfluxDB at {self.settings.url} not reachable: {exc}") from exc
        if response.status_code >= 300:
            raise InfluxError(
                f"InfluxDB {method} {path} answered {response.status_code}: {response.text.strip()[:500]}",
                response.status_code,
            )
        return response

    def ping(self) -> bool:
        try:
            return self._client.get("/ping", timeout=2.0).status_code == 204
        except httpx.TransportError:
            return False

    def database_exists(self) -> bool:
        """True if the database exists and this account may read or write it (InfluxDB lists only those)."""
        body = self._request("GET", "/query", params={"q": "SHOW DATABASES"}).json()
        for result in body.get("results", []):
            for series in result.get("series", []):
                if [self.database] in series.get("values", []):
                    return True
        return False

    def create_database(self) -> None:
        """Make sure the database exists. Creating one needs an admin account; a role's account (the
        collector, the pipeline) finds the database that ``parkcarbon services up`` or the deployment
        created and leaves it as it is."""
        if self.database_exists():
            return
        try:
            self.execute(f"CREATE DATABASE {quote_ident(self.database)}")
        except InfluxError as exc:
            if exc.status != 403:
                raise
            raise InfluxError(
                f"InfluxDB database {self.database!r} does not exist (or {self.settings.username!r} has no"
                " privilege on it), and only an admin may create it: `parkcarbon services up` creates the"
                " configured database and grants each role its privilege",
                exc.status,
            ) from exc

    def drop_database(self) -> None:
        self.execute(f"DROP DATABASE {quote_ident(self.database)}")

    def write_lines(self, body: str) -> None:
        """Write line protocol text (nanosecond timestamps) in one request."""
        if body:
            self._request("POST", "/write", params={"db": self.database, "precision": "n"}, content=body)

    def write(self, points: Iterable[Point], batch_size: int | None = None) -> int:
        """Write points in batches of ``batch_size`` (default from settings); return how many."""
        count = 0
        for batch in _batches(points, batch_size or self.settings.batch_points):
            self.write_lines("\n".join(encode(p) for p in batch))
            count += len(batch)
        return count

    def replace_at(self, measurement: Measurement, at_ns: int, points: Iterable[Point]) -> int:
        """Delete the points of ``measurement`` stamped ``at_ns``, then write ``points``: a re-run of a
        period's computation replaces exactly that period's results. Returns how many were written."""
        self.execute(f"DELETE FROM {measurement.q} WHERE time = {at_ns}")
        return self.write(points)

    def execute(self, statement: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run InfluxQL by POST (for statements that change things); return the raw results."""
        data: dict[str, str] = {"q": statement, "db": self.database}
        if params:
            data["params"] = json.dumps(dict(params))
        body = self._request("POST", "/query", params={"epoch": "ns"}, data=data).json()
        results: list[dict[str, Any]] = body.get("results", [])
        for result in results:
            if "error" in result:
                raise InfluxError(f"InfluxQL error: {result['error']} in: {statement}", 400)
        return results

    def query(self, statement: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Run one InfluxQL SELECT; return a DataFrame with ``time`` (UTC), the tags and the columns.

        Bind parameters (``$name`` in the statement) are passed as ``params`` and never spliced
        into the text, so values from meters or users cannot change the query.
        """
        return self.query_many([statement], params)[0]

    def query_many(self, statements: Sequence[str], params: Mapping[str, Any] | None = None) -> list[pd.DataFrame]:
        """Run several InfluxQL SELECTs in one request (one round trip, the same bind ``params`` for
        all); return one DataFrame per statement, in order, each as :meth:`query` returns it."""
        results = self._select(statements, params)
        return [_frame(result, statement) for result, statement in zip(results, statements, strict=True)]

    def query_rows_many(
        self, statements: Sequence[str], params: Mapping[str, Any] | None = None
    ) -> list[list[dict[str, Any]]]:
        """:meth:`query_many` without pandas, for small answers read often (a web page's): per statement,
        its points as dicts of ``time`` (int, ns since the epoch, UTC), the tags and the columns."""
        results = self._select(statements, params)
        return [_rows(result, statement) for result, statement in zip(results, statements, strict=True)]

    def query_csv(self, statement: str, group_by: Sequence[str] = (), text: Sequence[str] = ()) -> pd.DataFrame:
        """:meth:`query` for one large SELECT of float columns (raw readings, tens of megabytes), the
        same frame with the same values, asked as CSV and uncompressed. ``group_by`` names the
        statement's GROUP BY tags: CSV leaves out a tag a series lacks, JSON gives it as "". The
        ``text`` columns come as InfluxDB writes them ("" where a row has none; a boolean field as
        "true" or "false"), where :meth:`query` gives strings, booleans or None.

        Why: at 2,000 meters a day's readings took 0.18 s to decode from JSON and 0.06 s from CSV,
        and gzip cost InfluxDB and the client 0.15 s more than the bytes take over loopback or a LAN
        (bench/monthly.py, 2026-11-29). InfluxDB writes floats in their shortest round-trip form and
        pandas' default ("high") parser reads them back to the same float64 as JSON decoding (checked on
        a million values, tests/park/test_store_csv.py); time, tags and errors as :meth:`query` gives them.
        """
        response = self._request(
            "GET",
            "/query",
            params={"q": statement, "db": self.database, "epoch": "ns"},
            headers={"Accept": "application/csv", "Accept-Encoding": "identity"},
        )
        if not response.content.strip():
            # InfluxDB 1.x's CSV writer leaves out a statement's run-time error (a type error, a
            # query limit): an empty answer is asked again as JSON, which raises it if there was one.
            return self.query(statement)
        return _csv_frame(response.content, statement, group_by, text)

    def _select(self, statements: Sequence[str], params: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        if not statements:
            raise ValueError("no statement to run")
        request: dict[str, str] = {"q": ";".join(statements), "db": self.database, "epoch": "ns"}
        if params:
            request["params"] = json.dumps(dict(params))
        body = self._request("GET", "/query", params=request).json()
        results: list[dict[str, Any]] = body.get("results", [])
        if len(results) != len(statements):
            raise InfluxError(f"InfluxDB answered {len(results)} results to {len(statements)} statements", 500)
        return results


def _checked(result: Mapping[str, Any], statement: str) -> list[dict[str, Any]]:
    """A statement's series; InfluxError if InfluxDB refused the statement."""
    if "error" in result:
        raise InfluxError(f"InfluxQL error: {result['error']} in: {statement}", 400)
    series: list[dict[str, Any]] = result.get("series", [])
    return series


def _rows(result: Mapping[str, Any], statement: str) -> list[dict[str, Any]]:
    """One statement's result as dicts: ``time`` (ns), the tags and the columns."""
    rows: list[dict[str, Any]] = []
    for series in _checked(result, statement):
        columns, tags = series["columns"], series.get("tags") or {}
        rows.extend(dict(zip(columns, values, strict=True), **tags) for values in series["values"])
    return rows


def _frame(result: Mapping[str, Any], statement: str) -> pd.DataFrame:
    """One statement's result as a DataFrame: ``time`` (UTC), the tags and the columns.

    The series of a GROUP BY (one per meter register, thousands of them) become one frame at once,
    not a frame each and a concatenation: a tag a series lacks is NaN, as a concatenation gives it.
    """
    series = _checked(result, statement)
    if not series:
        return pd.DataFrame(columns=["time"])
    columns = series[0]["columns"]
    if any(s["columns"] != columns for s in series):  # different fields per series: let pandas align them
        frames = [_one_series(s) for s in series]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    else:
        frame = pd.DataFrame([row for s in series for row in s["values"]], columns=columns)
        lengths = [len(s["values"]) for s in series]
        tags = {}
        for s in series:
            tags.update(dict.fromkeys(s.get("tags") or {}))
        for tag in tags:
            values = [(s.get("tags") or {}).get(tag, np.nan) for s in series]
            frame[tag] = np.repeat(np.array(values, dtype=object), lengths)
    if "time" in frame:
        frame["time"] = pd.to_datetime(frame["time"], unit="ns", utc=True)
    return frame


_TAG_PAIR = re.compile(r"((?:[^\\,=]|\\.)+)=((?:[^\\,=]|\\.)*)(?:,|$)")
_UNESCAPE = re.compile(r"\\(.)")


def _tags(key: str) -> dict[str, str]:
    """A series' tags from InfluxDB's CSV ``tags`` cell, ``k=v,k2=v2`` escaped as line protocol."""
    pairs = {}
    position = 0
    while position < len(key):
        match = _TAG_PAIR.match(key, position)
        if match is None:
            raise InfluxError(f"InfluxDB answered tags it cannot have written: {key!r}", 500)
        pairs[_UNESCAPE.sub(r"\1", match[1])] = _UNESCAPE.sub(r"\1", match[2])
        position = match.end()
    return pairs


def _csv_frame(body: bytes, statement: str, group_by: Sequence[str] = (), text: Sequence[str] = ()) -> pd.DataFrame:
    """InfluxDB's CSV answer to one SELECT as :func:`_frame` makes the JSON one (values as float64,
    the ``text`` columns as written): the ``group_by`` tags in JSON's order (sorted), "" where a series
    lacks one."""
    if not body.strip():
        return pd.DataFrame(columns=["time"])  # as _frame gives an answer without series
    if body.startswith(b"error\n"):
        message = body[len(b"error\n") :].decode().strip().strip('"')
        raise InfluxError(f"InfluxQL error: {message} in: {statement}", 400)
    header = body[: body.index(b"\n")].decode().split(",")
    numbers = [column for column in header[3:] if column not in text]
    # The measurement's name is left out and the tags read as a category: the parser keeps one string
    # per series, not one per row (a day's read of 200 meters is 20,000 rows and 200 series), which
    # halves the parse (bench/monthly.py, 2026-11-29).
    data = pd.read_csv(
        io.BytesIO(body),
        usecols=header[1:],
        dtype={"tags": "category", "time": np.int64} | dict.fromkeys(numbers, np.float64) | dict.fromkeys(text, object),
        keep_default_na=False,
        na_values={column: [""] for column in numbers},
    )
    frame = data[header[3:]].copy()
    codes = data["tags"].cat.codes.to_numpy()
    tags = [_tags(str(key)) for key in data["tags"].cat.categories]
    unknown = {t for pairs in tags for t in pairs} - set(group_by)
    if unknown:
        raise ValueError(f"{statement} answered tags {sorted(unknown)} that group_by={list(group_by)} does not name")
    for tag in sorted(group_by):
        values = np.array([pairs.get(tag, "") for pairs in tags], dtype=object)
        frame[tag] = values[codes]
    frame.insert(0, "time", pd.to_datetime(data["time"].to_numpy(), unit="ns", utc=True))
    return frame


def _one_series(series: Mapping[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(series["values"], columns=series["columns"])
    for tag, value in (series.get("tags") or {}).items():
        frame[tag] = value
    return frame
