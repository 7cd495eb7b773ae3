"""Manual activity and enterprise data, as park offices make the files: one reader for all of them.

Not every source is metered: gas and heat bills, diesel, green certificates and value added from
the statistics office arrive as files. This module reads them for the ``parkcarbon score`` command,
the monthly pipeline and (later) the platform's uploads alike:

- **Formats and encodings.** ``.xlsx``/``.xlsm`` (openpyxl), ``.xls`` (xlrd), and text: UTF-8 with
  or without a byte-order mark, else GB18030 (a superset of GBK, what Excel on a Chinese Windows
  saves as "CSV"). Commas, tabs or semicolons separate the columns.
- **Headers** in English or Chinese, from :data:`HEADERS` (case, spaces, underscores and brackets
  do not matter): ``企业`` or ``enterprise_id`` is ``enterprise``, ``工业增加值（万元）`` is
  ``value_added_10k_cny``, and so on.
- **Numbers** are parsed strictly: a comma is a thousands separator only in the unambiguous
  pattern ``1,234,567.8``; ``1003,5`` (a decimal comma, or a typo) is an error, never 10035.
- **Units** as bills write them (kWh, 度, 千瓦时, 万千瓦时, MWh; m3, 立方米, Nm3, 万立方米; t, 吨;
  GJ, 吉焦), case-insensitively: see :mod:`park.units`, which states each conversion.
- **Periods**: ``2023-01``, ``2023-1``, ``2023/01``, ``202301``, ``2023年1月`` or a date (an Excel
  date cell) in the month.
- **Industries**: ``39``, ``C39`` and ``C3911`` are the division C39; ``A39`` is an error
  (:mod:`park.industry`).
- **Duplicates** (the same enterprise, workshop, month and source twice) are errors; with
  ``later_wins`` the later row replaces the earlier one and a note says so.

Every bad row is reported with file, row, column and reason; nothing is dropped silently: the caller
fails with the full list, or, when the user asks to skip bad rows, keeps the list in the run record.
Row numbers are those a person sees in a spreadsheet: the header is row 1, the first data row 2.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from park.industry import normalize_industry
from park.units import UnitError, convert, normalize_unit
from scoring.accounting import ACCOUNTING_UNIT, Source

ACTIVITY_COLUMNS = ["enterprise", "period", "source", "quantity", "unit"]
ENTERPRISE_COLUMNS = ["enterprise", "name", "industry", "year", "value_added_10k_cny"]

# Column → the headers that name it (English, Chinese, and those of earlier versions of these files).
HEADERS: dict[str, list[str]] = {
    "enterprise": [
        "enterprise",
        "enterprise_id",
        "enterprise id",
        "企业",
        "企业编号",
        "企业代码",
        "企业ID",
        "单位编号",
    ],
    "workshop": ["workshop", "workshop_id", "车间", "车间编号"],
    "period": ["period", "month", "月份", "期间", "统计期", "年月", "账期"],
    "source": ["source", "activity", "能源品种", "能源类型", "能源种类", "品种", "来源"],
    "quantity": ["quantity", "amount", "数量", "用量", "消费量", "实物量", "消耗量"],
    "unit": ["unit", "单位", "计量单位"],
    "name": ["name", "enterprise name", "企业名称", "名称", "单位名称"],
    "industry": ["industry", "行业", "行业代码", "所属行业", "国民经济行业代码"],
    "year": ["year", "年份", "年度"],
    "value_added_10k_cny": [
        "value_added_10k_cny",
        "value added",
        "value added (10k cny)",
        "工业增加值",
        "工业增加值（万元）",
        "增加值",
        "增加值（万元）",
    ],
}
# Activity sources by the names a bill or a statistics form gives them.
SOURCE_NAMES: dict[str, Source] = {
    "电网电力": Source.GRID_ELECTRICITY,
    "外购电力": Source.GRID_ELECTRICITY,
    "电力": Source.GRID_ELECTRICITY,
    "绿证电量": Source.GREEN_ELECTRICITY_CERTIFIED,
    "绿色电力证书": Source.GREEN_ELECTRICITY_CERTIFIED,
    "光伏自用": Source.PV_SELF_CONSUMED,
    "光伏上网": Source.PV_EXPORTED,
    "上网电量": Source.EXPORTED_ELECTRICITY,
    "天然气": Source.NATURAL_GAS,
    "柴油": Source.DIESEL,
    "汽油": Source.GASOLINE,
    "液化石油气": Source.LPG,
    "燃料油": Source.FUEL_OIL,
    "烟煤": Source.COAL_BITUMINOUS,
    "焦炭": Source.COKE,
    "外购热力": Source.PURCHASED_HEAT,
    "热力": Source.PURCHASED_HEAT,
    "蒸汽": Source.PURCHASED_HEAT,
    "输出热力": Source.EXPORTED_HEAT,
}
KEY_COLUMNS = ["enterprise", "workshop", "period", "source"]

_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_GROUPED_NUMBER = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_PERIODS = [
    re.compile(r"^(\d{4})[-/.](\d{1,2})$"),
    re.compile(r"^(\d{4})(\d{2})$"),
    re.compile(r"^(\d{4})年(\d{1,2})月?$"),
    re.compile(r"^(\d{4})-(\d{2})-(\d{2})([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$"),
    re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})$"),
]


@dataclass(frozen=True, order=True)
class RowError:
    file: str
    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: row {self.row}: {self.column}: {self.reason}"


class InputError(ValueError):
    """One or more bad rows; ``errors`` holds every one."""

    def __init__(self, errors: Iterable[RowError]) -> None:
        self.errors = sorted(errors)
        super().__init__(f"{len(self.errors)} bad row(s):\n" + "\n".join(map(str, self.errors)))


def _header_key(text: str) -> str:
    return re.sub(r"[\s_（）()\[\]【】:：]", "", text.strip().lower())


_HEADER_COLUMN = {_header_key(alias): column for column, aliases in HEADERS.items() for alias in aliases}


# -- cells and files -----------------------------------------------------------------------------------


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value).strip()


def _decode(data: bytes) -> str:
    """Text of a file in UTF-8 (with or without BOM), UTF-16 with BOM, or GB18030; else ValueError."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise ValueError(f"it is neither UTF-8 nor GBK/GB18030 text (byte {exc.start})") from None


def _text_rows(path: Path) -> list[list[str]]:
    text = _decode(path.read_bytes())
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text), dialect)]


def _xlsx_rows(path: Path) -> list[list[str]]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:  # a read-only workbook keeps its file open until closed
        return [[_cell_text(c) for c in row] for row in workbook.worksheets[0].iter_rows(values_only=True)]
    finally:
        workbook.close()


def _xls_rows(path: Path) -> list[list[str]]:
    import xlrd

    book = xlrd.open_workbook(str(path))
    sheet = book.sheet_by_index(0)
    rows = []
    for r in range(sheet.nrows):
        row = []
        for cell in sheet.row(r):
            value: object = cell.value
            if cell.ctype == xlrd.XL_CELL_DATE:
                value = xlrd.xldate_as_datetime(float(cell.value), book.datemode)
            elif cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                value = None
            row.append(_cell_text(value))
        rows.append(row)
    return rows


def read_table(path: Path) -> pd.DataFrame:
    """All cells as text under their canonical column names, with ``_row`` the spreadsheet row number.

    Raises ValueError (naming the file) when the file cannot be read as a table.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in {".xlsx", ".xlsm"}:
            rows = _xlsx_rows(path)
        elif suffix == ".xls":
            rows = _xls_rows(path)
        else:
            rows = _text_rows(path)
    except (OSError, ValueError, KeyError, csv.Error) as exc:
        raise ValueError(f"{path.name} cannot be read: {exc}") from None
    except Exception as exc:  # a spreadsheet library's own error on a damaged file
        raise ValueError(f"{path.name} cannot be read as {suffix or 'text'}: {type(exc).__name__}: {exc}") from None
    if not rows:
        return pd.DataFrame(columns=["_row"])
    header = [_HEADER_COLUMN.get(_header_key(h), h.strip()) for h in rows[0]]
    named = [h for h in header if h]
    twice = sorted({h for h in named if named.count(h) > 1})
    if twice:
        raise ValueError(f"{path.name}: more than one column is {', '.join(twice)}")
    width = len(header)
    body = [(r + [""] * width)[:width] for r in rows[1:]]
    frame = pd.DataFrame(body, columns=header, dtype=str)
    frame = frame.loc[:, [h for h in frame.columns if h]]
    frame["_row"] = range(2, len(frame) + 2)
    blank = frame.drop(columns="_row").eq("").all(axis=1)
    return frame[~blank].reset_index(drop=True)


# -- values --------------------------------------------------------------------------------------------


def parse_number(text: str) -> float:
    """A number as an office writes it; raise ValueError with the reason.

    Examples
    --------
    >>> [parse_number(t) for t in ("1003.5", "1,234,567.25", "1,003", "-2e3", " 7 ")]
    [1003.5, 1234567.25, 1003.0, -2000.0, 7.0]
    >>> parse_number("1003,5")
    Traceback (most recent call last):
    ...
    ValueError: '1003,5' is not a number: a comma is read only as a thousands separator (as in 1,234.5)
    """
    stripped = text.strip()
    if _PLAIN_NUMBER.match(stripped):
        return float(stripped)
    if _GROUPED_NUMBER.match(stripped):
        return float(stripped.replace(",", ""))
    if "," in stripped or "，" in stripped:
        raise ValueError(f"{text!r} is not a number: a comma is read only as a thousands separator (as in 1,234.5)")
    raise ValueError(f"{text!r} is not a number")


def parse_period(text: str) -> str:
    """``YYYY-MM`` of a month as written in a file; raise ValueError with the reason.

    Examples
    --------
    >>> [parse_period(t) for t in ("2023-01", "2023-1", "2023/01", "202301", "2023年1月", "2023-01-01T00:00:00")]
    ['2023-01', '2023-01', '2023-01', '2023-01', '2023-01', '2023-01']
    """
    stripped = text.strip()
    for pattern in _PERIODS:
        match = pattern.match(stripped)
        if match:
            year, month = int(match.group(1)), int(match.group(2))
            if 1 <= month <= 12 and 1990 <= year <= 2100:
                return f"{year:04d}-{month:02d}"
            break
    raise ValueError(f"{text!r} is not a month (YYYY-MM, YYYY年M月 or a date in the month)")


def parse_source(text: str) -> Source:
    stripped = text.strip()
    if stripped.lower() in {s.value for s in Source}:
        return Source(stripped.lower())
    if stripped in SOURCE_NAMES:
        return SOURCE_NAMES[stripped]
    raise ValueError(f"unknown source {text!r}; expected one of {', '.join(s.value for s in Source)}")


# -- rows ----------------------------------------------------------------------------------------------


def _activity_row(
    row: pd.Series, name: str, known: set[str] | None, m3_to_nm3: float | None
) -> tuple[dict[str, object] | None, list[RowError]]:
    """The row's canonical values, or None and its errors."""
    errors = []
    line = int(row["_row"])

    def bad(column: str, reason: str) -> None:
        errors.append(RowError(name, line, column, reason))

    enterprise = row["enterprise"]
    if not enterprise:
        bad("enterprise", "empty")
    elif known is not None and enterprise not in known:
        bad("enterprise", f"unknown enterprise {enterprise!r} (not in the enterprises file)")
    period = source = quantity = unit = None
    try:
        period = parse_period(row["period"])
    except ValueError as exc:
        bad("period", str(exc))
    try:
        source = parse_source(row["source"])
    except ValueError as exc:
        bad("source", str(exc))
    try:
        quantity = parse_number(row["quantity"])
        if not math.isfinite(quantity):
            bad("quantity", f"{row['quantity']!r} is not a finite number")
        elif quantity < 0:
            bad(
                "quantity", "negative; exports are their own sources (exported_electricity, exported_heat, pv_exported)"
            )
    except ValueError as exc:
        bad("quantity", str(exc))
    try:
        unit = normalize_unit(row["unit"])
        if source is not None:
            convert(1.0, unit, ACCOUNTING_UNIT[source], m3_to_nm3=m3_to_nm3)
    except UnitError as exc:
        reason = str(exc)
        if unit == "m3" and m3_to_nm3 is None:
            reason = "gas in m3 as metered needs the policy's gas_m3_to_nm3 correction (or give Nm3)"
        bad("unit", f"{reason} for source {row['source']!r}")
    if errors:
        return None, errors
    values = {
        "enterprise": enterprise,
        "workshop": row.get("workshop", "") or "",
        "period": period,
        "source": str(source),
        "quantity": quantity,
        "unit": unit,
        "_row": line,
    }
    return values, []


def _enterprise_row(row: pd.Series, name: str) -> tuple[dict[str, object] | None, list[RowError]]:
    errors = []
    line = int(row["_row"])
    industry = year = value_added = None
    if not row["enterprise"]:
        errors.append(RowError(name, line, "enterprise", "empty"))
    try:
        industry = normalize_industry(row["industry"])
    except ValueError as exc:
        errors.append(RowError(name, line, "industry", str(exc)))
    try:
        year = parse_number(row["year"])
        if not year.is_integer() or not 1990 <= year <= 2100:
            raise ValueError(f"{row['year']!r} is not a year")
    except ValueError:
        errors.append(RowError(name, line, "year", f"{row['year']!r} is not a year"))
    text = row["value_added_10k_cny"]
    if text:  # empty: value added not (yet) known for that year
        try:
            value_added = parse_number(text)
            if not math.isfinite(value_added) or value_added < 0:
                raise ValueError(f"{text!r} is not a number >= 0")
        except ValueError as exc:
            errors.append(RowError(name, line, "value_added_10k_cny", f"{exc}; value added is a number >= 0"))
    if errors:
        return None, errors
    values = {
        "enterprise": row["enterprise"],
        "name": row["name"],
        "industry": industry,
        "year": int(year or 0),
        "value_added_10k_cny": value_added if value_added is not None else math.nan,
        "_row": line,
    }
    return values, []


def _validated(
    path: Path,
    required: list[str],
    check: Callable[[pd.Series], tuple[dict[str, object] | None, list[RowError]]],
) -> tuple[list[dict[str, object]], list[RowError]]:
    name = path.name
    try:
        frame = read_table(path)
    except ValueError as exc:
        return [], [RowError(name, 1, "(file)", str(exc))]
    missing = [RowError(name, 1, col, "required column is missing") for col in required if col not in frame]
    if missing:
        return [], missing
    errors: list[RowError] = []
    rows = []
    for _, row in frame.iterrows():
        values, row_errors = check(row)
        errors.extend(row_errors)
        if values is not None:
            rows.append(values)
    return rows, errors


def _duplicates(
    rows: list[dict[str, object]], keys: list[str], name: str, later_wins: bool, what: str
) -> tuple[list[dict[str, object]], list[RowError], list[str]]:
    """Rows with each key once; a repeated key is an error, or with ``later_wins`` replaces the earlier row."""
    kept: dict[tuple[object, ...], dict[str, object]] = {}
    errors, notes = [], []
    for row in rows:
        key = tuple(row[k] for k in keys)
        first = kept.get(key)
        if first is None:
            kept[key] = row
        elif later_wins:
            notes.append(f"{name}: row {row['_row']} replaces row {first['_row']} ({what} {', '.join(map(str, key))})")
            kept[key] = row
        else:
            errors.append(
                RowError(
                    name,
                    int(str(row["_row"])),
                    keys[-1],
                    f"repeats row {first['_row']} ({what} {', '.join(map(str, key))}); remove one, or let the "
                    "later row win explicitly",
                )
            )
    return list(kept.values()), errors, notes


@dataclass(frozen=True)
class Table:
    """A file's good rows, its bad rows' errors, and notes on what was decided (a later row winning)."""

    frame: pd.DataFrame
    errors: list[RowError]
    notes: list[str]


def read_enterprises(path: Path, later_wins: bool = False) -> Table:
    """``enterprise, name, industry, year, value_added_10k_cny``; empty value added means unknown."""
    rows, errors = _validated(path, ENTERPRISE_COLUMNS, lambda row: _enterprise_row(row, path.name))
    rows, duplicate_errors, notes = _duplicates(rows, ["enterprise", "year"], path.name, later_wins, "enterprise, year")
    frame = pd.DataFrame(rows, columns=[*ENTERPRISE_COLUMNS, "_row"])
    frame["year"] = frame["year"].astype(int)
    frame["value_added_10k_cny"] = frame["value_added_10k_cny"].astype(float)
    return Table(frame, errors + duplicate_errors, notes)


def read_activity(
    path: Path, known_enterprises: set[str] | None = None, m3_to_nm3: float | None = None, later_wins: bool = False
) -> Table:
    """``enterprise, period, source, quantity, unit`` and an optional ``workshop``."""
    rows, errors = _validated(
        path, ACTIVITY_COLUMNS, lambda row: _activity_row(row, path.name, known_enterprises, m3_to_nm3)
    )
    rows, duplicate_errors, notes = _duplicates(
        rows, KEY_COLUMNS, path.name, later_wins, "enterprise, workshop, month, source"
    )
    frame = pd.DataFrame(rows, columns=[*ACTIVITY_COLUMNS, "workshop", "_row"])
    frame["quantity"] = frame["quantity"].astype(float)
    return Table(frame, errors + duplicate_errors, notes)
