"""The parsed-registry cache: same document as a fresh parse, keyed by content, private, never trusted to build code."""

from __future__ import annotations

import os
import pickle
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from park.registry import RegistryError, load_registry
from park.registry_cache import CACHE_DIR_VARIABLE, KEPT_ENTRIES, MIN_CACHED_BYTES, cached_document
from park.settings import DEMO_REGISTRY

DOCUMENT = b"park: {metering_start: 2026-01-01}\nat: 2026-03-05T10:00:00+08:00\nvalues: [1.5, null, true]\n"


class CountingParse:
    """YAML's safe loader, counting its calls: a parse served from the cache does not call it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, content: bytes) -> object:
        self.calls += 1
        return yaml.safe_load(content)


def entries(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pickle"))


def big_registry(tmp_path: Path, n_extra: int = 800) -> Path:
    """The demo registry with a replaced meter and enough extra meters to be cached (> MIN_CACHED_BYTES)."""
    data = yaml.safe_load(DEMO_REGISTRY.read_text(encoding="utf-8"))
    meter = data["meters"][0]
    data["meters"][0] = {
        **meter,
        "replacements": [
            {
                "at": datetime(2025, 6, 1, 9, 30, tzinfo=timezone(timedelta(hours=8))),
                "old_final_reading": 1234.5,
                "new_initial_reading": 0.0,
                "new_multiplier": 40.0,
            }
        ],
    }
    for i in range(n_extra):
        data["meters"].append({**meter, "id": f"X-{i:04d}", "device_ref": f"x{i}", "replacements": []})
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert path.stat().st_size >= MIN_CACHED_BYTES
    return path


class TestCachedDocument:
    def test_second_read_is_served_from_the_cache_with_the_same_objects(self, tmp_path):
        """The second call does not parse and returns a document equal to the parse, dates and offsets included."""
        parse = CountingParse()
        first = cached_document(DOCUMENT, parse, tmp_path / "c", min_bytes=0)
        second = cached_document(DOCUMENT, parse, tmp_path / "c", min_bytes=0)
        assert parse.calls == 1
        assert second == first == yaml.safe_load(DOCUMENT)
        assert type(second["park"]["metering_start"]) is date
        assert second["at"].utcoffset() == timedelta(hours=8)

    def test_changed_content_is_parsed_again(self, tmp_path):
        """One byte more is another key: the new content is parsed, not served from the old entry."""
        parse = CountingParse()
        cached_document(DOCUMENT, parse, tmp_path, min_bytes=0)
        changed = cached_document(DOCUMENT.replace(b"1.5", b"2.5"), parse, tmp_path, min_bytes=0)
        assert parse.calls == 2
        assert changed["values"][0] == 2.5
        assert len(entries(tmp_path)) == 2

    def test_small_content_is_not_stored(self, tmp_path):
        """Below min_bytes nothing is written: small registries parse as before."""
        parse = CountingParse()
        cached_document(DOCUMENT, parse, tmp_path, min_bytes=len(DOCUMENT) + 1)
        cached_document(DOCUMENT, parse, tmp_path, min_bytes=len(DOCUMENT) + 1)
        assert parse.calls == 2
        assert entries(tmp_path) == []

    def test_parse_error_propagates_and_stores_nothing(self, tmp_path):
        """A YAML error reaches the caller and leaves no entry (nor a temporary file)."""
        with pytest.raises(yaml.YAMLError):
            cached_document(b"a: [1, 2\n", yaml.safe_load, tmp_path, min_bytes=0)
        assert list(tmp_path.iterdir()) == []

    def test_planted_entry_cannot_build_code(self, tmp_path):
        """An entry naming any class beyond datetime's is refused, re-parsed and replaced."""
        parse = CountingParse()
        cached_document(DOCUMENT, parse, tmp_path, min_bytes=0)
        (entry,) = entries(tmp_path)
        entry.write_bytes(pickle.dumps(os.getcwd))  # a global outside the allowed datetime classes
        document = cached_document(DOCUMENT, parse, tmp_path, min_bytes=0)
        assert parse.calls == 2
        assert document == yaml.safe_load(DOCUMENT)
        assert pickle.loads(entry.read_bytes()) == document  # replaced by the fresh parse

    def test_directory_others_may_write_is_not_used(self, tmp_path):
        """A cache directory with group or other permissions is neither read nor written."""
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        parse = CountingParse()
        cached_document(DOCUMENT, parse, shared, min_bytes=0)
        cached_document(DOCUMENT, parse, shared, min_bytes=0)
        assert parse.calls == 2
        assert entries(shared) == []

    def test_new_directory_is_private(self, tmp_path):
        """The directory is created for this user alone (mode 0700)."""
        cached_document(DOCUMENT, CountingParse(), tmp_path / "a" / "b", min_bytes=0)
        assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o700

    def test_old_entries_are_pruned(self, tmp_path):
        """Only the KEPT_ENTRIES most recently used versions stay."""
        for i in range(KEPT_ENTRIES + 3):
            cached_document(DOCUMENT + f"# {i}\n".encode(), yaml.safe_load, tmp_path, min_bytes=0)
        assert len(entries(tmp_path)) == KEPT_ENTRIES


class TestLoadRegistry:
    def test_cached_load_equals_fresh_parse(self, tmp_path, monkeypatch):
        """A large registry loads from the cache to a Registry equal to the one parsed from YAML."""
        monkeypatch.setenv(CACHE_DIR_VARIABLE, str(tmp_path / "cache"))
        path = big_registry(tmp_path)
        fresh = load_registry(path)
        assert len(entries(tmp_path / "cache")) == 1
        cached = load_registry(path)
        assert cached == fresh
        assert cached.meters[0].replacements[0].at == fresh.meters[0].replacements[0].at
        assert cached.meters[0].multiplier_at(datetime(2025, 7, 1, tzinfo=UTC)) == 40.0

    def test_cached_document_is_validated_again(self, tmp_path, monkeypatch):
        """The cache keeps the parse, not the verdict: an invalid registry stays an error on every load."""
        monkeypatch.setenv(CACHE_DIR_VARIABLE, str(tmp_path / "cache"))
        path = big_registry(tmp_path)
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        data["meters"][5]["multiplier"] = -1
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        for _ in range(2):
            with pytest.raises(RegistryError, match=r"meters\[5\].*multiplier"):
                load_registry(path)
        assert len(entries(tmp_path / "cache")) == 1
