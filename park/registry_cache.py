"""A private cache of parsed registry documents, keyed by the sha256 of the registry file's bytes.

Why: libyaml hands every parse event to Python, so reading a registry of 50,000 meters takes ~7 s
(2.1 s of 2.5 s at 20,000 meters is the parse events alone, before any object is built), and every
daily rollup and every monthly task pays it. The same document unpickled takes ~0.05 s.

Only the parse is cached, never its judgement: :func:`park.registry.parse_registry` validates and
cross-checks the document on every load, so a cached document is judged by today's code, and a file
that changes by one byte has another key. The document is stored as PyYAML's safe loader built it
(dates and offsets included), so validation sees exactly the objects a fresh parse would give it.

The directory is the user's own (mode 0700, refused if anyone else may write it), and the unpickler
builds nothing but plain data and ``datetime`` values: a planted file cannot run code, it can only be
rejected and re-parsed.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Small files parse in well under 0.1 s: the cache only serves registries at least this large
# (~700 meters in the bench's layout); smaller ones are parsed as before and leave nothing behind.
MIN_CACHED_BYTES = 100_000
# Registry versions kept: a park edits its registry a few times a month; older entries are removed.
KEPT_ENTRIES = 8
# The cache directory: this variable, else $XDG_CACHE_HOME/parkcarbon/registry, else ~/.cache/parkcarbon/registry.
CACHE_DIR_VARIABLE = "PARKCARBON_REGISTRY_CACHE"

# The only classes a cached document may name: what PyYAML's safe loader builds beyond plain data.
_ALLOWED_CLASSES = {("datetime", "date"), ("datetime", "datetime"), ("datetime", "timezone"), ("datetime", "timedelta")}


def default_cache_dir() -> Path:
    """Where registry documents are cached for this user (see ``CACHE_DIR_VARIABLE``)."""
    if explicit := os.environ.get(CACHE_DIR_VARIABLE):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "parkcarbon" / "registry"


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles plain data and ``datetime`` values only (the "restricting globals" recipe of the
    ``pickle`` documentation)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_CLASSES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a cached registry document may not build {module}.{name}")


def _private_dir(path: Path) -> bool:
    """Create ``path`` for this user alone; False if it exists but is not this user's own private directory."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def cached_document(
    content: bytes, parse: Callable[[bytes], Any], cache_dir: Path | None = None, min_bytes: int = MIN_CACHED_BYTES
) -> Any:
    """The document ``parse(content)`` returns, from the cache when an earlier call stored it.

    Parameters
    ----------
    content
        the registry file's bytes; their sha256 names the entry.
    parse
        parses ``content`` (e.g. YAML's safe loader); its errors propagate and nothing is stored.
    cache_dir
        default :func:`default_cache_dir`; a directory someone else may write is not used.
    min_bytes
        smaller contents are parsed every time and never stored.
    """
    if len(content) < min_bytes:
        return parse(content)
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    if not _private_dir(folder):
        return parse(content)
    entry = folder / f"{hashlib.sha256(content).hexdigest()}.pickle"
    try:
        with entry.open("rb") as f:
            document = _PlainDataUnpickler(io.BytesIO(f.read())).load()
        os.utime(entry)  # recently used: kept when older entries are pruned
        return document
    except FileNotFoundError:
        pass
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError):
        entry.unlink(missing_ok=True)  # unreadable or planted: parse again and replace it
    document = parse(content)
    _store(folder, entry, document)
    return document


def _store(folder: Path, entry: Path, document: Any) -> None:
    """Write ``entry`` atomically (a reader sees the whole file or none) and prune old entries; a cache
    that cannot be written only costs the next load its parse."""
    temporary: str | None = None
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(document, f, protocol=pickle.HIGHEST_PROTOCOL)
        Path(temporary).replace(entry)
        temporary = None
        entries = sorted(folder.glob("*.pickle"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in entries[KEPT_ENTRIES:]:
            old.unlink(missing_ok=True)
    except (OSError, pickle.PicklingError):
        return
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
