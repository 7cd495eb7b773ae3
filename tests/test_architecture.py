"""The house reads top-down, and each wire contract is spelled in one module.

- Layers (pyproject.toml ``[tool.importlinter]``): the top layer ``parkcarbon`` → ``pipeline`` →
  ``reports`` → the independent parts → the shared core ``park``; no import runs upward and no two
  folders import each other. The DAG files (not a package) import only the layers below the top.
- Every measurement name is spelled only in ``park/measurements.py``, every topic layout only in
  ``park/topics.py``, the default park time zone only in ``park/registry.py``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from park.measurements import ALL

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    "parkcarbon",
    "portal",
    "pipeline",
    "reports",
    "scoring",
    "ledger",
    "collectors",
    "simulators",
    "dashboards",
    "park",
]
SOURCES = sorted(p for package in [*PACKAGES, "dags"] for p in (ROOT / package).rglob("*.py"))


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _string_constants(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def _point_measurements(path: Path) -> list[str]:
    """Literal measurement names given to ``Point(...)`` (the line-protocol point's first argument)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Point":
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.append(first.value)
    return names


class TestLayers:
    def test_import_contracts_are_kept(self):
        """import-linter's layers contract holds on the code as it is (its report names any broken import)."""
        from importlinter.cli import lint_imports

        assert lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0

    def test_the_layers_contract_catches_an_upward_import(self, tmp_path, monkeypatch):
        """The contract is not vacuous: a core module that imports the top layer breaks it."""
        from importlinter.cli import lint_imports

        (tmp_path / "park_bad").mkdir()
        config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
        config = config.replace('root_packages = ["parkcarbon",', 'root_packages = ["park_bad", "parkcarbon",')
        config = config.replace('  "park",\n]', '  "park | park_bad",\n]')
        (tmp_path / "park_bad" / "__init__.py").write_text("import parkcarbon.cli\n")
        (tmp_path / "pyproject.toml").write_text(config, encoding="utf-8")
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.chdir(tmp_path)
        assert lint_imports(config_filename=str(tmp_path / "pyproject.toml"), no_cache=True, no_logo=True) == 1

    @pytest.mark.parametrize("dag_file", sorted((ROOT / "dags").glob("*.py")), ids=lambda p: p.name)
    def test_dag_files_import_only_the_layers_below_the_top(self, dag_file):
        """A DAG file wires task bodies: it may import pipeline, reports and the core, never the top layer."""
        allowed = {"pipeline", "reports", "park"}
        ours = set(PACKAGES)
        for node in ast.walk(ast.parse(dag_file.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in ours or top in allowed, f"{dag_file.name} imports {name}"


class TestOneModulePerContract:
    @pytest.mark.parametrize("measurement", ALL, ids=lambda m: m.name)
    def test_measurement_name_spelled_once(self, measurement):
        """No module but park/measurements.py spells the name quoted in a string (InfluxQL identifiers
        and aliases), in backquotes in a docstring (which names the constant instead), or as the literal
        measurement of a ``Point``; readers and writers take a ``Measurement``."""
        spelled_in = [f'"{measurement.name}"', f"'{measurement.name}'", f"`{measurement.name}`"]
        spelled = {
            _relative(path)
            for path in SOURCES
            for text in _string_constants(path)
            if any(q in text for q in spelled_in)
        } | {_relative(path) for path in SOURCES if measurement.name in _point_measurements(path)}
        assert spelled - {"park/measurements.py"} == set()

    @pytest.mark.parametrize(
        "fragment", ["carbon/v1", "tele/", "/SENSOR", "/LWT", "events/rpc", "/online", "device/power/up"]
    )
    def test_topic_layout_spelled_once(self, fragment):
        """Topic layouts live in park/topics.py: collector, simulator and broker ACL all read them there."""
        spelled = {_relative(p) for p in SOURCES if fragment in p.read_text(encoding="utf-8")}
        assert spelled == {"park/topics.py"}

    def test_park_time_zone_spelled_once(self):
        """The registry is the one source of the park's time zone; its default is written once."""
        spelled = {_relative(p) for p in SOURCES if "Asia/Shanghai" in p.read_text(encoding="utf-8")}
        assert spelled == {"park/registry.py"}
