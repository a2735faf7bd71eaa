"""What a deployed target (service, batch job) needs to look its shared features up.

A target folder of a project with shared features holds ``features.json`` (the lookup spec:
views, join keys, TTLs, store tables, hashes; :func:`lookup_spec`) and, unless the project names
a server database in ``features.online_store``, the embedded store ``features.db`` (SQLite).
:func:`write_store` materialises both from the offline data, each file written atomically;
:func:`open_lookup` opens them once per process. Neither the lookup nor this module imports
pandas or DuckDB: only :func:`write_store` computes feature tables (DuckDB, at deploy time).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from shipyard.core.errors import DataError
from shipyard.features._online import FeatureLookup, _redact, lookup_spec, materialize

__all__ = ["SPEC_FILE", "STORE_FILE", "check_hashes", "lookup_columns", "open_lookup", "store_columns", "write_store"]

SPEC_FILE = "features.json"
STORE_FILE = "features.db"


def store_columns(manifest: Mapping[str, Any] | None) -> list[str]:
    """The model features the store fills (``<view>__<feature>``), from a bundle's ``features``."""
    return [c for v in (manifest or {}).get("views", []) for c in v["columns"]]


def lookup_columns(manifest: Mapping[str, Any] | None) -> list[str]:
    """What a request row or input row carries instead: the join keys, then the event time."""
    if not manifest or not manifest.get("views"):
        return []
    keys = [v["join_key"] for v in manifest["views"]]
    return list(dict.fromkeys([*keys, str(manifest["event_time"])]))


def check_hashes(manifest: Mapping[str, Any], views: list[Mapping[str, Any]], project: str) -> None:
    """The definitions about to be materialised are the ones the model was trained with."""
    trained = {f"{v['view']}@{v['version']}": v.get("hashes", {}) for v in manifest["views"]}
    now = {f"{v['view']}@{v['version']}": {f: s["hash"] for f, s in v["features"].items()} for v in views}
    for name, hashes in trained.items():
        if now.get(name, {}) != hashes:
            raise DataError(
                f"the model of {project} was trained with other definitions of {name} than the compiled ones",
                where=f"pipelines/{project}/features.yaml",
                fix=f"retrain (make train PROJECT={project}) or deploy the version trained with the current "
                "definitions",
            )


def write_store(
    folder: Path, manifest: Mapping[str, Any], views: list[Mapping[str, Any]], root: Path, url: str | None
) -> dict[str, Any]:
    """Materialise ``views`` (resolved, as compiled) for a target in ``folder``: ``features.json``
    and, without ``url``, ``features.db``. Returns the rows written and where."""
    from shipyard.core.atomic import write_text

    spec = lookup_spec(list(views), str(manifest["event_time"]), url)
    folder.mkdir(parents=True, exist_ok=True)
    rows = materialize(list(views), root, url=url) if url else materialize(list(views), root, file=folder / STORE_FILE)
    write_text(folder / SPEC_FILE, json.dumps(spec, indent=2, sort_keys=True) + "\n")
    return {"rows": rows, "store": _redact(url) if url else str(folder / STORE_FILE)}


@lru_cache(maxsize=8)
def _cached(folder: str, stamp: float) -> FeatureLookup:
    spec = json.loads((Path(folder) / SPEC_FILE).read_text())
    return FeatureLookup(spec, Path(folder), STORE_FILE)


def open_lookup(folder: Path, manifest: Mapping[str, Any] | None) -> FeatureLookup | None:
    """The lookup of a target folder (one per process and store version), or None when the
    model uses no shared features. A model that uses them in a folder without them is an error."""
    if not manifest or not manifest.get("views"):
        return None
    spec = Path(folder) / SPEC_FILE
    if not spec.is_file():
        raise DataError(
            f"{folder} has no {SPEC_FILE}, but its model looks shared features up",
            where=str(folder),
            fix="rebuild the target (make deploy PROJECT=<team>/<name>) or run `shipyard features materialize`",
        )
    return _cached(str(Path(folder).resolve()), spec.stat().st_mtime)
