"""The ``parkcarbon nearzero`` contract: files in, a table or JSON out, bad input refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from numpy.testing import assert_allclose

from parkcarbon.cli import main

EF_LOC = 0.5306


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rows = ["enterprise,period,source,quantity,unit,workshop"]
    for year, grid in ((2021, 1.3e6), (2022, 1.2e6), (2023, 1.1e6), (2024, 1.0e6)):
        for m in range(1, 13):
            rows += [
                f"E1,{year}-{m:02d},grid_electricity,{grid / 12},kWh,",
                f"E1,{year}-{m:02d},green_electricity_certified,20000,kWh,",
                f"E1,{year}-{m:02d},grid_electricity,{grid / 24},kWh,E1-W1",
                f"E2,{year}-{m:02d},grid_electricity,50000,kWh,",
            ]
    activity = tmp_path / "A.csv"
    activity.write_text("\n".join(rows) + "\n")
    enterprises = tmp_path / "E.csv"
    enterprises.write_text(
        "enterprise,name,industry,year,value_added_10k_cny\n"
        + "".join(f"E1,One,C39,{y},5000\nE2,Two,C39,{y},800\n" for y in range(2021, 2025))
    )
    facts = tmp_path / "facts.yaml"
    facts.write_text(
        "facts:\n"
        "  - {enterprise: E1, year: 2024, fact: green_factory, value: provincial, reviewed_by: park office,"
        " reviewed_on: 2025-02-01, evidence: provincial list 2023}\n"
        "  - {enterprise: E1, year: 2024, fact: offsets_retired_tco2, value: 100, reviewed_by: park office,"
        " reviewed_on: 2025-02-01, evidence: CCER retirement 2024-117}\n"
    )
    return {"activity": activity, "enterprises": enterprises, "facts": facts}


def run(files: dict[str, Path], *extra: str) -> int:
    return main(
        [
            "nearzero",
            "--activity",
            str(files["activity"]),
            "--enterprises",
            str(files["enterprises"]),
            "--factor-set",
            "cn-national-2023",
            *extra,
        ]
    )


def test_table(files, capsys):
    assert run(files, "--profile", "suzhou-nzc-factory-2023", "--facts", str(files["facts"])) == 0
    out = capsys.readouterr().out
    assert "profile suzhou-nzc-factory-2023" in out and ", 2024" in out  # the latest year by default
    assert "E1 / workshop E1-W1" in out
    # E1 2024: (240 MWh x 0.5306 + 100 t) / (1000 MWh x 0.5306) = 227.344 / 530.6 = 0.4285
    # gap: 0.8 x 530.6 − 227.344 = 197 t
    assert "42.8 %" in out
    assert f"offset {0.8 * 530.6 - (240 * EF_LOC + 100):,.0f} t more" in out
    assert "no published threshold found" in out
    assert "https://ctoutiao.com/3138816.html" in out


def test_json_one_enterprise(files, capsys):
    code = run(files, "--profile", "sip-zc-factory-2026", "--enterprise", "E1", "--year", "2024", "--json")
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["profile"]["id"] == "sip-zc-factory-2026" and data["year"] == 2024
    subjects = {(s["enterprise"], s["workshop"]): s for s in data["subjects"]}
    assert set(subjects) == {("E1", ""), ("E1", "E1-W1")}
    offset = next(i for i in subjects[("E1", "")]["indicators"] if i["indicator"] == "offset_share")
    assert_allclose(offset["value"], 240 * EF_LOC / (1000 * EF_LOC), rtol=1e-9)
    assert offset["status"] == "unknown"  # no reviewed offsets without --facts
    assert offset["source"].startswith("苏州工业园区零碳")
    assert data["series"][0]["year"] == 2021


def test_park_profile(files, capsys):
    assert run(files, "--profile", "jiangsu-nzc-park-2024", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["enterprise"] for s in data["subjects"]] == ["PARK"]
    co2 = next(i for i in data["subjects"][0]["indicators"] if i["indicator"] == "co2_per_value_added")
    # (1000 MWh + 600 MWh) x 0.5306 / (5000 + 800)
    assert_allclose(co2["value"], 1600 * EF_LOC / 5800, rtol=1e-9)


def test_bad_input(files, capsys):
    assert run(files, "--profile", "no-such-profile") == 2
    assert "unknown profile 'no-such-profile'" in capsys.readouterr().err
    files["activity"].write_text(files["activity"].read_text() + "E1,2024-13,grid_electricity,5,kWh,\n")
    assert run(files, "--profile", "sip-zc-factory-2026") == 2
    err = capsys.readouterr().err
    assert "A.csv: row" in err and "bad row" in err
    assert run(files, "--profile", "sip-zc-factory-2026", "--enterprise", "E9", "--skip-bad-rows") == 2
    assert "no activity data for enterprise E9" in capsys.readouterr().err
