"""A project's composed config, kept between commands while nothing it was made from changes.

Composing (Hydra, then the schema's validation) costs most of a no-op ``make train`` and close to
a second of every command. Its result is a function of the files under ``conf/``, the overrides,
the environment variables the config reads (``${oc.env:NAME}``), and the code that validates it:
Shipyard's packages and every package that registers a component or step. The cache key is a
SHA-256 of all of these (file contents for ``conf/``; size and modification time for code), so
any change composes afresh; a config using any other resolver is never kept. Entries live in
``.dvc/tmp/shipyard/compose/`` (git-ignored by DVC), the last few per project; a missing, damaged or
unreadable entry means composing as usual.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pickle
import re
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

from shipyard.core.atomic import atomic_path
from shipyard.core.hashing import stat_tree
from shipyard.core.paths import parse_project
from shipyard.core.schema import ShipyardConfig

__all__ = ["cache_dir", "cached_compose", "compose_key"]

# Bumped when what an entry holds changes shape.
_FORMAT = b"shipyard-compose-cache 1"
_ENV = re.compile(r"\$\{\s*oc\.env\s*:\s*([^,}\s]+)")
_RESOLVER = re.compile(r"\$\{\s*([\w.]+)\s*:")
_GROUPS = ("shipyard.components", "shipyard.steps")
_KEPT_PER_PROJECT = 4


def cache_dir(root: Path) -> Path:
    return root / ".dvc" / "tmp" / "shipyard" / "compose"


def _registered() -> list[tuple[str, str, str]]:
    """(group, name, target) of every registered component and step: one scan of the metadata."""
    from importlib.metadata import entry_points

    found = entry_points()
    return sorted((group, ep.name, ep.value) for group in _GROUPS for ep in found.select(group=group))


def _code_dirs(registered: Iterable[tuple[str, str, str]]) -> list[str]:
    """The folders of the code composing runs: ``shipyard.core`` (schema, rules, registry) and
    the package of every registered component and step (its parameter schema)."""
    names = {"shipyard.core"}
    for _, _, target in registered:
        parts = target.split(":")[0].split(".")
        names.add(".".join(parts[:2]) if parts[0] == "shipyard" else parts[0])
    dirs: list[str] = []
    for name in sorted(names):
        try:
            spec = importlib.util.find_spec(name)  # the folder, through editable installs' finders
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            dirs.append(f"missing:{name}")
        elif spec.submodule_search_locations:
            dirs += sorted(spec.submodule_search_locations)
        elif spec.origin:
            dirs.append(spec.origin)
    return dirs


def _code_stamps(dirs: Iterable[str]) -> list[tuple[str, int, int]]:
    stamps = []
    for base in dirs:
        if os.path.exists(base):
            stamps += stat_tree(Path(base))
        else:
            stamps.append((base, -1, -1))
    return stamps


def compose_key(project: str, overrides: Sequence[str], root: Path) -> str | None:
    """The cache key of a composition, or None when it must not be kept (a resolver other than
    ``oc.env`` reads something the key cannot see)."""
    digest = hashlib.sha256(_FORMAT)
    digest.update(repr((sys.version, str(root.resolve()), project, list(overrides))).encode())
    env: set[str] = set()
    conf = root / "conf"
    for folder, subdirs, files in os.walk(conf):
        subdirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            data = Path(path).read_bytes()
            digest.update(f"\0{os.path.relpath(path, conf)}\0".encode())
            digest.update(data)
            if b"${" in data:
                text = data.decode("utf-8", errors="replace")
                if any(r != "oc.env" for r in _RESOLVER.findall(text)):
                    return None
                env.update(_ENV.findall(text))
    digest.update(repr(sorted((name, os.environ.get(name)) for name in env)).encode())
    registered = _registered()
    digest.update(repr(registered).encode())
    digest.update(repr(_code_stamps(_code_dirs(registered))).encode())
    return digest.hexdigest()


def _entry(root: Path, project: str, key: str) -> Path:
    team, name = parse_project(project)
    return cache_dir(root) / f"{team}__{name}__{key}.pickle"


def cached_compose(project: str, overrides: Sequence[str] = (), *, root: Path) -> ShipyardConfig:
    """:func:`shipyard.core.compose.compose`, kept between commands (see the module's text)."""
    from shipyard.core.compose import compose

    if not (root / ".dvc").is_dir():
        return compose(project, overrides, root=root)
    parse_project(project)  # a malformed name is the same one message as composing gives
    key = compose_key(project, overrides, root)
    entry = _entry(root, project, key) if key else None
    if entry is not None and entry.is_file():
        try:
            cfg, said = pickle.loads(entry.read_bytes())  # Shipyard's own file, keyed by content
        except Exception:  # noqa: BLE001 - any unreadable entry is a miss: compose again
            cfg, said = None, []
        if isinstance(cfg, ShipyardConfig):
            with contextlib.suppress(OSError):
                os.utime(entry)  # the most recently used entries are the ones kept
            for message in said:  # what composing warned about is said again, as composing would
                warnings.warn(message, UserWarning, stacklevel=2)
            return cfg
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = compose(project, overrides, root=root)
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if entry is not None:
        _keep(entry, (cfg, said))
    return cfg


def _keep(entry: Path, value: tuple[ShipyardConfig, list[str]]) -> None:
    """Write the entry and drop the project's oldest beyond the last few (files this cache wrote,
    by name): a few, so that switching between two override sets hits for both."""
    project = entry.name.rsplit("__", 1)[0]
    try:
        with atomic_path(entry) as tmp:
            tmp.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
        mine = [p for p in entry.parent.glob(f"{project}__*.pickle") if p.name.rsplit("__", 1)[0] == project]
        mine.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in mine[_KEPT_PER_PROJECT:]:
            if old != entry:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only or full disk only costs the next command a compose
