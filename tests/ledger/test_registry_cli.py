"""``parkcarbon registry import|export``: the demo registry into the database and back gives the same
registry and the same enterprises file; every change is in the audit log; the history exports as of
any date."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import select

from ledger import registry_store
from ledger.db import make_engine
from park.registry import load_registry
from park.settings import DEMO_ENTERPRISES, DEMO_REGISTRY, Settings
from parkcarbon.cli import main
from portal.schema import audit_log


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("PARKCARBON_RUN_DIR", str(tmp_path))
    return tmp_path


def test_import_then_export_gives_an_equal_registry(run, capsys):
    args = ["registry", "import", str(DEMO_REGISTRY), "--enterprises", str(DEMO_ENTERPRISES)]
    assert main([*args, "--as-of", "2026-01-01", "--reason", "pilot start", "--by", "park office"]) == 0
    demo = load_registry(DEMO_REGISTRY)
    changes = 1 + len(demo.enterprises) + len(demo.workshops) + len(demo.gateways) + len(demo.meters) + 36
    assert f"{changes} change(s), each in the audit log" in capsys.readouterr().out
    assert main(["registry", "export", "--as-of", "2026-07-15", "--out", str(run / "out")]) == 0
    assert load_registry(run / "out" / "registry.yaml") == demo
    assert (run / "out" / "enterprises.csv").read_bytes() == DEMO_ENTERPRISES.read_bytes()
    assert main(["registry", "check", str(run / "out" / "registry.yaml")]) == 0

    engine = make_engine(Settings(run_dir=run).ledger_url)
    with engine.connect() as conn:
        lines = conn.execute(select(audit_log).order_by(audit_log.c.id)).all()
    engine.dispose()
    assert len(lines) == changes
    assert {(line.action, line.actor, line.from_value) for line in lines} == {("registry.add", "park office", "")}
    first_meter = next(line for line in lines if line.target.startswith("registry:meter:"))
    assert first_meter.target == f"registry:meter:{demo.meters[0].id}@2026-01-01"
    assert load_registry(DEMO_REGISTRY).meters[0].model_dump(mode="json", exclude_defaults=True) == json.loads(
        first_meter.to_value
    )


def test_a_changed_file_imports_as_its_changes_and_history_exports_as_of_any_date(run, capsys):
    base = ["registry", "import"]
    options = ["--enterprises", str(DEMO_ENTERPRISES), "--by", "office"]
    assert main([*base, str(DEMO_REGISTRY), *options, "--as-of", "2026-01-01", "--reason", "start"]) == 0
    text = DEMO_REGISTRY.read_text(encoding="utf-8")
    demo = load_registry(DEMO_REGISTRY)
    meter = demo.meters[0]
    assert meter.id == "E01-M-GRID" and meter.multiplier == 80
    changed = text.replace("  multiplier: 80\n", "  multiplier: 123.0\n", 1)
    assert changed != text
    (run / "changed.yaml").write_text(changed, encoding="utf-8")
    assert main([*base, str(run / "changed.yaml"), *options, "--as-of", "2026-04-01", "--reason", "new CT"]) == 0
    assert "1 change(s)" in capsys.readouterr().out
    assert main(["registry", "export", "--as-of", "2026-03-31", "--out", str(run / "march")]) == 0
    assert main(["registry", "export", "--as-of", "2026-04-01", "--out", str(run / "april")]) == 0
    assert load_registry(run / "march" / "registry.yaml") == demo
    assert load_registry(run / "april" / "registry.yaml").meter_by_id[meter.id].multiplier == 123.0
    assert load_registry(run / "april" / "registry.yaml") == load_registry(run / "changed.yaml")

    assert main([*base, str(DEMO_REGISTRY), *options, "--as-of", "2026-04-15", "--reason", "mid-month"]) == 1
    assert "a month's first day, not 2026-04-15" in capsys.readouterr().err
    engine = make_engine(Settings(run_dir=run).ledger_url)
    with engine.connect() as conn:
        assert len(registry_store.history(conn, "meter", meter.id)) == 2
        assert registry_store.registry_as_of(conn, date(2026, 5, 1)).meter_by_id[meter.id].multiplier == 123.0
    engine.dispose()
