"""The no-op fast path: skip DVC entirely when nothing it would look at has changed.

After a successful run Shipyard records a stamp: the text of ``dvc.yaml``, ``params.yaml`` and
``dvc.lock`` plus the size and modification time of every dependency and output that
``dvc.lock`` names (folders walked, with the same ignores as ``.dvcignore``). If the stamp still
matches, ``dvc repro`` would find every stage up to date, so the run ends there: DVC's own
content hashes stay the source of truth, the stamp only saves importing DVC and re-reading the
graph (the same idea as DVC's own mtime/inode state cache). Any doubt means a full run.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from shipyard.core.atomic import write_json
from shipyard.core.hashing import stat_tree
from shipyard.core.paths import ProjectPaths

__all__ = ["compute_stamp", "read_stamp", "write_stamp"]


def _stamp_file(paths: ProjectPaths) -> Path:
    return paths.root / ".dvc" / "tmp" / "shipyard" / f"{paths.team}__{paths.name}.json"


def compute_stamp(paths: ProjectPaths) -> str | None:
    """The stamp of the project's current state, or None when a fast path is impossible."""
    import yaml

    lock_file = paths.dvc_yaml.with_name("dvc.lock")
    try:
        texts = [p.read_bytes() for p in (paths.dvc_yaml, paths.params_yaml, lock_file)]
    except FileNotFoundError:
        return None
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = yaml.load(texts[0], Loader=loader) or {}
    lock = yaml.load(texts[2], Loader=loader) or {}
    stages = spec.get("stages", {})
    if set(stages) != set(lock.get("stages", {})) or any(s.get("always_changed") for s in stages.values()):
        return None
    digest = hashlib.sha256(b"\0".join(texts))
    wdir = paths.pipeline_dir
    for name, stage in sorted(lock["stages"].items()):
        base = (wdir / stages[name].get("wdir", ".")).resolve()
        for entry in [*stage.get("deps", []), *stage.get("outs", [])]:
            target = base / entry["path"]
            if not target.exists():
                return None
            for item in stat_tree(target):
                digest.update(repr(item).encode())
    return digest.hexdigest()


def read_stamp(paths: ProjectPaths) -> dict[str, Any] | None:
    try:
        return json.loads(_stamp_file(paths).read_text())  # type: ignore[no-any-return]
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_stamp(paths: ProjectPaths, info: dict[str, Any]) -> None:
    stamp = compute_stamp(paths)
    if stamp is not None:
        write_json(_stamp_file(paths), dict(info, stamp=stamp))
