"""Manual activity and enterprise data from CSV or Excel, validated row by row.

Not every source is metered: diesel bills, purchased steam, green certificates and value added
from the statistics office arrive as files. Every bad row is reported with file, row, column and
reason; nothing is dropped silently: the caller fails with the full list, or, when the user asks
to skip bad rows, keeps the list in the run record.

Row numbers are those a person sees in a spreadsheet: the header is row 1, the first data row 2.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pandas as pd

from park.units import UnitError, convert, normalize_unit
from scoring.accounting import ACCOUNTING_UNIT, Source

ACTIVITY_COLUMNS = ["enterprise", "period", "source", "quantity", "unit"]
# Headers of earlier versions of these files, still read: ``enterprise_id``, ``workshop_id`` and
# ``amount`` were renamed to the InfluxDB contract's ``enterprise``, ``workshop`` and ``quantity``.
HEADER_ALIASES = {"enterprise_id": "enterprise", "workshop_id": "workshop", "amount": "quantity"}
ENTERPRISE_COLUMNS = ["enterprise", "name", "industry", "year", "value_added_10k_cny"]
_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")
_INDUSTRY = re.compile(r"^[A-T]\d{2}$")


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


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value)) if not math.isnan(value) else ""
    return str(value).strip()


def read_table(path: Path) -> pd.DataFrame:
    """All cells as text, with a ``_row`` column holding the spreadsheet row number."""
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        from openpyxl import load_workbook

        workbook = load_workbook(path, read_only=True, data_only=True)
        try:  # a read-only workbook keeps its file open until closed
            rows = list(workbook.worksheets[0].iter_rows(values_only=True))
        finally:
            workbook.close()
        if not rows:
            return pd.DataFrame(columns=["_row"])
        header = [_cell_text(h) for h in rows[0]]
        body = [[_cell_text(c) for c in r] for r in rows[1:]]
        frame = pd.DataFrame(body, columns=header, dtype=str)
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
        frame = frame.apply(lambda col: col.str.strip())
    frame = frame.rename(columns=lambda header: HEADER_ALIASES.get(header, header))
    frame["_row"] = range(2, len(frame) + 2)
    blank = frame.drop(columns="_row").eq("").all(axis=1)
    return frame[~blank].reset_index(drop=True)


def _missing_columns(frame: pd.DataFrame, name: str, required: list[str]) -> list[RowError]:
    return [RowError(name, 1, col, "required column is missing") for col in required if col not in frame]


def _number(text: str) -> float | None:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        return None
    return value


def _period_text(text: str) -> str:
    # Excel turns "2023-01" into a date; accept the ISO date it becomes.
    if re.match(r"^\d{4}-\d{2}-01(T00:00:00)?$", text):
        return text[:7]
    return text


def _validate_activity_row(
    row: pd.Series, name: str, known: set[str] | None, m3_to_nm3: float | None
) -> list[RowError]:
    errors = []
    line = int(row["_row"])

    def bad(column: str, reason: str) -> None:
        errors.append(RowError(name, line, column, reason))

    enterprise = row["enterprise"]
    if not enterprise:
        bad("enterprise", "empty")
    elif known is not None and enterprise not in known:
        bad("enterprise", f"unknown enterprise {enterprise!r} (not in the enterprises file)")
    match = _PERIOD.match(row["period"])
    if not match or not 1 <= int(match.group(2)) <= 12:
        bad("period", f"{row['period']!r} is not a month as YYYY-MM")
    source = row["source"]
    if source not in {s.value for s in Source}:
        bad("source", f"unknown source {source!r}; expected one of {', '.join(s.value for s in Source)}")
    quantity = _number(row["quantity"])
    if quantity is None:
        bad("quantity", f"{row['quantity']!r} is not a number")
    elif not math.isfinite(quantity):
        bad("quantity", f"{row['quantity']!r} is not a finite number")
    elif quantity < 0:
        bad(
            "quantity",
            "negative; exports are their own sources (exported_electricity, exported_heat, pv_exported)",
        )
    try:
        unit = normalize_unit(row["unit"])
        if source in {s.value for s in Source}:
            convert(1.0, unit, ACCOUNTING_UNIT[Source(source)], m3_to_nm3=m3_to_nm3)
    except UnitError as exc:
        reason = str(exc)
        if row["unit"].strip() in {"m3", "m³"} and m3_to_nm3 is None:
            reason = "gas in m3 as metered needs the policy's gas_m3_to_nm3 correction (or give Nm3)"
        bad("unit", f"{reason} for source {source!r}")
    return errors


def _validate_enterprise_row(row: pd.Series, name: str) -> list[RowError]:
    errors = []
    line = int(row["_row"])
    if not row["enterprise"]:
        errors.append(RowError(name, line, "enterprise", "empty"))
    if not _INDUSTRY.match(row["industry"]):
        errors.append(
            RowError(name, line, "industry", f"{row['industry']!r} is not a GB/T 4754 division code like C39")
        )
    year = _number(row["year"])
    if year is None or not year.is_integer() or not 1990 <= year <= 2100:
        errors.append(RowError(name, line, "year", f"{row['year']!r} is not a year"))
    text = row["value_added_10k_cny"]
    if text:  # empty: value added not (yet) known for that year
        value = _number(text)
        if value is None or not math.isfinite(value) or value < 0:
            errors.append(RowError(name, line, "value_added_10k_cny", f"{text!r} is not a number >= 0"))
    return errors


def _validated(
    path: Path,
    required: list[str],
    check: Callable[[pd.Series], list[RowError]],
) -> tuple[pd.DataFrame, list[RowError]]:
    name = path.name
    try:
        frame = read_table(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        return pd.DataFrame(), [RowError(name, 0, "(file)", f"cannot be read: {exc}")]
    missing = _missing_columns(frame, name, required)
    if missing:
        return pd.DataFrame(), missing
    errors: list[RowError] = []
    good = []
    for _, row in frame.iterrows():
        row_errors = check(row)
        errors.extend(row_errors)
        good.append(not row_errors)
    return frame[good].reset_index(drop=True), errors


def read_enterprises(path: Path) -> tuple[pd.DataFrame, list[RowError]]:
    """``enterprise,name,industry,year,value_added_10k_cny``; empty value added means unknown."""
    frame, errors = _validated(path, ENTERPRISE_COLUMNS, lambda row: _validate_enterprise_row(row, path.name))
    if frame.empty:
        return pd.DataFrame(columns=[*ENTERPRISE_COLUMNS, "_row"]), errors
    dupes = frame[frame.duplicated(["enterprise", "year"], keep="first")]
    for _, row in dupes.iterrows():
        errors.append(
            RowError(
                path.name,
                int(row["_row"]),
                "enterprise",
                f"second row for {row['enterprise']} in {row['year']}",
            )
        )
    frame = frame.drop(index=dupes.index)
    frame["year"] = frame["year"].astype(float).astype(int)
    frame["value_added_10k_cny"] = pd.to_numeric(frame["value_added_10k_cny"].str.replace(",", ""), errors="coerce")
    return frame.reset_index(drop=True), errors


def read_activity(
    path: Path, known_enterprises: set[str] | None = None, m3_to_nm3: float | None = None
) -> tuple[pd.DataFrame, list[RowError]]:
    """``enterprise,period,source,quantity,unit`` and an optional ``workshop``."""

    def check(row: pd.Series) -> list[RowError]:
        row = row.copy()
        row["period"] = _period_text(row["period"])
        return _validate_activity_row(row, path.name, known_enterprises, m3_to_nm3)

    frame, errors = _validated(path, ACTIVITY_COLUMNS, check)
    if frame.empty:
        return pd.DataFrame(columns=[*ACTIVITY_COLUMNS, "workshop", "_row"]), errors
    frame["period"] = frame["period"].map(_period_text)
    frame["quantity"] = frame["quantity"].str.replace(",", "").astype(float)
    frame["unit"] = frame["unit"].map(normalize_unit)
    if "workshop" not in frame:
        frame["workshop"] = ""
    return frame, errors
