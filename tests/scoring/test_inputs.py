"""The one reader of manual data, on files made the way park offices make them: GBK CSV from Excel on a
Chinese Windows, .xls and .xlsx with Chinese headers and date cells as periods, thousands separators,
the units of Chinese bills, industry codes as offices write them, repeated rows.

Expected values are written out by hand from the file contents (and the conversions park/units.py
states: 1 万千瓦时 = 10^4 kWh, 1 吨 = 1 t, 立方米 on a gas bill = Nm3 at the supplier's standard
conditions)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
import xlwt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.inputs import parse_number, read_activity, read_enterprises

CHINESE_ACTIVITY = ["企业", "车间", "月份", "能源品种", "数量", "单位"]
CHINESE_FIRMS = ["企业", "企业名称", "行业代码", "年份", "工业增加值（万元）"]


def write_csv(path: Path, rows: list[list[object]], encoding: str) -> Path:
    text = "\r\n".join(",".join(f'"{c}"' if "," in str(c) else str(c) for c in row) for row in rows) + "\r\n"
    path.write_bytes(text.encode(encoding))
    return path


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def write_xls(path: Path, rows: list[list[object]]) -> Path:
    book = xlwt.Workbook(encoding="utf-8")
    sheet = book.add_sheet("数据")
    dates = xlwt.easyxf(num_format_str="yyyy-mm")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, datetime):
                sheet.write(r, c, value, dates)
            else:
                sheet.write(r, c, value)
    book.save(str(path))
    return path


class TestOfficeFiles:
    def test_gbk_csv_with_chinese_headers_and_bill_units(self, tmp_path):
        """What Excel on a Chinese Windows saves: GBK bytes, Chinese headers, 度/万千瓦时/立方米/吨/吉焦,
        a quoted thousands separator; every row reads back with its canonical unit."""
        path = write_csv(
            tmp_path / "能源台账.csv",
            [
                CHINESE_ACTIVITY,
                ["E01", "", "2026年1月", "电网电力", "1,234,567.5", "度"],
                ["E01", "", "2026-02", "grid_electricity", "12.5", "万千瓦时"],
                ["E02", "", "2026/1", "天然气", "35000", "立方米"],
                ["E02", "", "202601", "柴油", "3.2", "吨"],
                ["E03", "", "2026-01", "外购热力", "880", "吉焦"],
                ["E03", "", "2026-01", "natural_gas", "1.5", "万立方米"],
            ],
            "gbk",
        )
        table = read_activity(path)
        assert table.errors == [] and table.notes == []
        got = [(r.enterprise, r.period, r.source, r.quantity, r.unit) for r in table.frame.itertuples()]
        assert got == [
            ("E01", "2026-01", "grid_electricity", 1_234_567.5, "kWh"),
            ("E01", "2026-02", "grid_electricity", 12.5, "10^4 kWh"),
            ("E02", "2026-01", "natural_gas", 35_000.0, "Nm3"),
            ("E02", "2026-01", "diesel", 3.2, "t"),
            ("E03", "2026-01", "purchased_heat", 880.0, "GJ"),
            ("E03", "2026-01", "natural_gas", 1.5, "10^4 Nm3"),
        ]

    @pytest.mark.parametrize("unit", ["KWh", "Mwh", "kwh", "KWH", "mWh", "千瓦时", "兆瓦时"])
    def test_units_are_case_insensitive(self, tmp_path, unit):
        path = write_csv(tmp_path / "a.csv", [CHINESE_ACTIVITY, ["E01", "", "2026-01", "电网电力", "7", unit]], "utf-8")
        table = read_activity(path)
        assert table.errors == []
        assert table.frame["unit"].iloc[0] in {"kWh", "MWh"}

    def test_xls_with_date_cells_as_periods(self, tmp_path):
        """An .xls (Excel 97-2003) whose period column holds date cells formatted as months."""
        path = write_xls(
            tmp_path / "bills.xls",
            [
                CHINESE_ACTIVITY,
                ["E01", "", datetime(2026, 3, 1), "天然气", 2.25, "万立方米"],
                ["E01", "WS-1", datetime(2026, 3, 31), "电网电力", 1500.75, "kWh"],
            ],
        )
        table = read_activity(path)
        assert table.errors == []
        got = [(r.workshop, r.period, r.source, r.quantity, r.unit) for r in table.frame.itertuples()]
        assert got == [
            ("", "2026-03", "natural_gas", 2.25, "10^4 Nm3"),
            ("WS-1", "2026-03", "grid_electricity", 1500.75, "kWh"),
        ]

    def test_xlsx_enterprises_with_chinese_headers_and_industry_codes(self, tmp_path):
        """Value added from the statistics office: 39 and C3911 are division C39, 26 is C26."""
        path = write_xlsx(
            tmp_path / "增加值.xlsx",
            [
                CHINESE_FIRMS,
                ["E01", "芯瑞微电子", "39", 2026, 66540],
                ["E02", "晶显", "C3911", 2026, "12,860.5"],
                ["E03", "化工", 26, 2026, None],
            ],
        )
        table = read_enterprises(path)
        assert table.errors == []
        got = [(r.enterprise, r.industry, r.year) for r in table.frame.itertuples()]
        assert got == [("E01", "C39", 2026), ("E02", "C39", 2026), ("E03", "C26", 2026)]
        values = table.frame["value_added_10k_cny"].tolist()
        assert values[:2] == [66540.0, 12860.5] and math.isnan(values[2])

    def test_impossible_industry_is_an_error_naming_file_row_column(self, tmp_path):
        path = write_csv(tmp_path / "firms.csv", [CHINESE_FIRMS, ["E01", "x", "A39", "2026", "1"]], "gbk")
        assert [str(e) for e in read_enterprises(path).errors] == [
            "firms.csv: row 2: industry: 'A39': division 39 belongs to section C (GB/T 4754-2017), not A"
        ]

    def test_decimal_comma_is_an_error_never_ten_times_more(self, tmp_path):
        """1003,5 MWh is not 10,035 MWh: the row is refused with file, row and column."""
        path = write_csv(
            tmp_path / "a.csv",
            [
                ["enterprise", "period", "source", "quantity", "unit"],
                ["E01", "2026-01", "grid_electricity", "1003,5", "MWh"],
            ],
            "utf-8-sig",
        )
        table = read_activity(path)
        assert table.frame.empty
        assert [str(e) for e in table.errors] == [
            "a.csv: row 2: quantity: '1003,5' is not a number: a comma is read only as a thousands separator "
            "(as in 1,234.5)"
        ]

    def test_a_repeated_row_is_an_error_or_explicitly_replaced(self, tmp_path):
        """The same enterprise, month and source twice is never summed."""
        rows = [
            ["enterprise", "period", "source", "quantity", "unit"],
            ["E01", "2026-01", "natural_gas", "100", "Nm3"],
            ["E01", "2026-02", "natural_gas", "90", "Nm3"],
            ["E01", "2026-01", "natural_gas", "100", "Nm3"],
        ]
        path = write_csv(tmp_path / "gas.csv", rows, "utf-8")
        table = read_activity(path)
        assert [str(e) for e in table.errors] == [
            "gas.csv: row 4: source: repeats row 2 (enterprise, workshop, month, source E01, , 2026-01, "
            "natural_gas); remove one, or let the later row win explicitly"
        ]
        assert table.frame["quantity"].sum() == 190.0
        later = read_activity(path, later_wins=True)
        assert later.errors == []
        assert later.notes == [
            "gas.csv: row 4 replaces row 2 (enterprise, workshop, month, source E01, , 2026-01, natural_gas)"
        ]
        assert later.frame["quantity"].sum() == 190.0

    def test_bytes_that_are_no_text_name_the_file(self, tmp_path):
        path = tmp_path / "broken.csv"
        path.write_bytes(b"enterprise,period\n\x80\xff,2026-01\n")
        assert [str(e) for e in read_activity(path).errors] == [
            "broken.csv: row 1: (file): broken.csv cannot be read: it is neither UTF-8 nor GBK/GB18030 text (byte 18)"
        ]

    def test_a_damaged_spreadsheet_is_a_clear_error(self, tmp_path):
        path = tmp_path / "a.xlsx"
        path.write_bytes(b"PK\x03\x04 not really a workbook")
        (error,) = read_activity(path).errors
        assert error.file == "a.xlsx" and error.row == 1 and "a.xlsx cannot be read" in error.reason


class TestNumbers:
    @pytest.mark.parametrize(
        ("text", "value"),
        [("1,234", 1234.0), ("12,345,678.9", 12_345_678.9), ("-7.5", -7.5), ("1e3", 1000.0), ("0.000001", 1e-6)],
    )
    def test_valid(self, text, value):
        assert parse_number(text) == value

    @pytest.mark.parametrize("text", ["1003,5", "1,23", "12,3456", "1.234,5", "1 234", "12，345", "one", ""])
    def test_refused(self, text):
        with pytest.raises(ValueError, match="is not a number"):
            parse_number(text)


SOURCES = ["grid_electricity", "natural_gas", "purchased_heat", "diesel"]
UNITS = {"grid_electricity": "kWh", "natural_gas": "Nm3", "purchased_heat": "GJ", "diesel": "t"}
rows_strategy = st.lists(
    st.tuples(
        st.sampled_from(["E01", "E02", "企业三"]),
        st.integers(2020, 2030),
        st.integers(1, 12),
        st.sampled_from(SOURCES),
        # A bill's figure: at most 15 significant digits, which is what a spreadsheet cell keeps.
        st.decimals(min_value=0, max_value=999_999_999, places=3).map(float),
    ),
    min_size=1,
    max_size=25,
    unique_by=lambda r: (r[0], r[1], r[2], r[3]),
)


class TestRoundTrip:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        rows=rows_strategy,
        form=st.sampled_from(["utf-8", "utf-8-sig", "gbk", "gb18030", "xlsx", "xls"]),
        chinese=st.booleans(),
        grouped=st.booleans(),
    )
    def test_every_quantity_reads_back_exactly(self, tmp_path_factory, rows, form, chinese, grouped):
        """Random valid tables in each encoding and format, with Chinese or English headers and (in text)
        thousands separators, read back the exact same quantities."""
        folder = tmp_path_factory.mktemp("roundtrip")
        header = CHINESE_ACTIVITY if chinese else ["enterprise", "workshop", "period", "source", "quantity", "unit"]
        table: list[list[object]] = [header]
        for enterprise, year, month, source, quantity in rows:
            if form in {"xlsx", "xls"}:
                cell: object = quantity
                period: object = datetime(year, month, 1)
            else:
                cell = format(quantity, ",") if grouped else repr(quantity)
                period = f"{year}年{month}月" if chinese else f"{year}-{month:02d}"
            table.append([enterprise, "", period, source, cell, UNITS[source]])
        if form == "xlsx":
            path = write_xlsx(folder / "t.xlsx", table)
        elif form == "xls":
            path = write_xls(folder / "t.xls", table)
        else:
            path = write_csv(folder / "t.csv", table, form)
        result = read_activity(path)
        assert result.errors == []
        got = [(r.enterprise, r.period, r.source, r.quantity) for r in result.frame.itertuples()]
        assert got == [(e, f"{y}-{m:02d}", s, q) for e, y, m, s, q in rows]
