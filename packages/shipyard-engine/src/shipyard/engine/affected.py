"""Which projects a change touches: ``shipyard affected --base REF``.

A project depends on (1) the config files its composition reads, (2) its raw data and the DVC
pointers under its data folder, and (3) code: the framework packages every pipeline runs, the
package that provides its model (a team package), and every local package those depend on,
following the ``dependencies`` of ``packages/*/pyproject.toml``. A change to shipyard.train
therefore affects every project; a change to a team package only the projects that use it.
A team package that provides a pipeline step counts like one that provides the model.

Shared features: a project that uses feature views depends on the hash of each feature it uses
(definitions under ``conf/features/``, read at ``base`` and now) and on the views' source data,
so editing one feature affects exactly the projects that use that feature.
"""

from __future__ import annotations

import subprocess
import tomllib
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig

__all__ = ["affected_projects", "changed_files", "local_packages", "project_inputs"]

# Every pipeline runs these (the stages' code plus the engine that wires them).
FRAMEWORK = ("shipyard-core", "shipyard-data", "shipyard-train", "shipyard-registry", "shipyard-engine")


def changed_files(root: Path, base: str) -> list[str]:
    """Files that differ between ``base`` and the working tree, untracked files included."""

    def git(*args: str) -> list[str]:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ConfigError(
                f"cannot compare with {base!r}: {proc.stderr.strip()}",
                value=base,
                fix="pass a git ref that exists, e.g. BASE=origin/main or BASE=HEAD~1",
            )
        return [line for line in proc.stdout.splitlines() if line]

    return sorted(set(git("diff", "--name-only", base)) | set(git("ls-files", "--others", "--exclude-standard")))


@cache
def local_packages(root: Path) -> dict[str, dict[str, Any]]:
    """``{distribution name: {"dir": "packages/x", "deps": {local names}}}``."""
    found: dict[str, dict[str, Any]] = {}
    for pyproject in sorted((root / "packages").glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        deps = {
            d.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip()
            for d in project.get("dependencies", [])
        }
        found[project["name"]] = {"dir": pyproject.parent.relative_to(root).as_posix(), "deps": deps}
    for info in found.values():
        info["deps"] = {d for d in info["deps"] if d in found}
    return found


def _closure(names: set[str], packages: dict[str, dict[str, Any]]) -> set[str]:
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in packages:
            continue
        seen.add(name)
        todo += packages[name]["deps"]
    return seen


def _model_distribution(target: str, group: str = "shipyard.components") -> str | None:
    for ep in entry_points(group=group):
        if ep.name == target and ep.dist is not None:
            return ep.dist.name
    return None


def project_inputs(paths: ProjectPaths, config: ShipyardConfig) -> dict[str, list[str]]:
    """What a project depends on: config files, data paths and package folders."""
    from shipyard.core.compose import config_files

    root = paths.root
    packages = local_packages(root)
    wanted = set(FRAMEWORK)
    provider = _model_distribution(config.model.target)
    if provider:
        wanted.add(provider)
    for step in config.steps.values():
        wanted.add(_model_distribution(step.function, "shipyard.steps") or "")
    if config.features.views:
        wanted.add("shipyard-features")
    if config.deploy.targets:
        wanted.add("shipyard-deploy")
    if config.search is not None:
        wanted.add("shipyard-search")
    data = [paths.rel(paths.layer("01_raw"))]
    if config.data.source.path:
        data.append(config.data.source.path)
    if config.features.views and paths.feature_defs.is_file():
        import yaml

        for view in yaml.safe_load(paths.feature_defs.read_text())["views"]:
            if view["source"].get("path"):
                data.append(view["source"]["path"])
    return {
        "config": config_files(paths.project, root),
        "data": data,
        "code": sorted(packages[n]["dir"] for n in _closure(wanted, packages)),
    }


def _touches(changed: list[str], prefixes: list[str]) -> list[str]:
    hits = []
    for path in changed:
        for prefix in prefixes:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                hits.append(path)
                break
    return hits


def _catalog_hashes(root: Path, texts: dict[str, str] | None) -> dict[str, dict[str, str]]:
    from shipyard.features import load_catalog

    try:
        return load_catalog(root, texts).hashes()
    except ConfigError:
        return {}  # definitions that do not load: every project using them fails to compile anyway


def _changed_features(root: Path, base: str, changed: list[str]) -> dict[str, list[str]]:
    """``{"view@version": [features whose hash differs between base and now]}``."""
    from shipyard.features._catalog import FEATURES_DIR

    if not any(p.startswith(FEATURES_DIR + "/") for p in changed):
        return {}
    listing = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", base, "--", FEATURES_DIR], cwd=root, capture_output=True, text=True
    ).stdout.split()
    before = {
        p: subprocess.run(["git", "show", f"{base}:{p}"], cwd=root, capture_output=True, text=True).stdout
        for p in listing
        if p.endswith(".yaml")
    }
    old, new = _catalog_hashes(root, before), _catalog_hashes(root, None)
    out: dict[str, list[str]] = {}
    for ref in sorted(set(old) | set(new)):
        a, b = old.get(ref, {}), new.get(ref, {})
        diff = sorted(f for f in set(a) | set(b) if a.get(f) != b.get(f))
        if diff:
            out[ref] = diff
    return out


def affected_projects(root: Path, base: str) -> list[dict[str, Any]]:
    """Every project whose config, data or code changed since ``base``, with the reasons. A
    project whose config does not compose is affected (its config is what changed), with a warning."""
    import warnings

    from shipyard.core.compose import compose, list_projects

    changed = changed_files(root, base)
    features = _changed_features(root, base, changed)
    result = []
    for name in list_projects(root):
        paths = ProjectPaths.of(root, name)
        try:
            config = compose(name, root=root)
            inputs = project_inputs(paths, config)
        except ConfigError as exc:
            warnings.warn(f"{name}: {exc.message} (run `shipyard config {name}`)", UserWarning, stacklevel=2)
            result.append({"project": name, "because": {"config": [f"does not compose: {exc.message}"]}})
            continue
        reasons = {kind: _touches(changed, prefixes) for kind, prefixes in inputs.items()}
        reasons["features"] = [
            f"{ref.view}@{ref.version}.{feature}"
            for ref in config.features.views
            for feature in features.get(f"{ref.view}@{ref.version}", [])
            if ref.features is None or feature in ref.features
        ]
        if any(reasons.values()):
            result.append({"project": name, "because": {k: v[:10] for k, v in reasons.items() if v}})
    return result
