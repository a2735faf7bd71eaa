"""Content hashes for fingerprints and lineage."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["file_sha256", "json_sha256", "stat_tree"]

_IGNORED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
_IGNORED_SUFFIXES = (".pyc", ".pyo")


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def json_sha256(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def stat_tree(path: Path) -> list[tuple[str, int, int]]:
    """(path, size, modification time) of a file, or of every file under a folder in a stable
    order, leaving out Python's and tools' caches: a cheap fingerprint of what it holds (the
    idea of DVC's own mtime/inode state cache)."""
    if path.is_file():
        st = path.stat()
        return [(str(path), st.st_size, st.st_mtime_ns)]
    entries = []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in _IGNORED_DIRS and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.endswith(_IGNORED_SUFFIXES):
                continue
            st = os.stat(os.path.join(folder, name))
            entries.append((os.path.join(folder, name), st.st_size, st.st_mtime_ns))
    return entries
