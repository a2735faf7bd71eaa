"""Shared features in the engine: resolving a project's views, guarding production models,
and what ``shipyard features`` prints.

A production model records, in its model card, the hash of every feature it was trained with
(``features: {"view@version": {feature: hash}}``). :func:`check_production` compares those with
the definitions under ``conf/features/`` now: a feature changed or removed under the same view
version is refused, naming the models, because the service and batch job of those models would
compute it differently from how they were trained. A new version of the view is the way to
change it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig

__all__ = [
    "check_production",
    "describe_view",
    "list_views",
    "materialize_store",
    "materialize_targets",
    "production_features",
    "project_views",
]

# The deployed targets that look shared features up (an edge model takes its features as input).
STORE_TARGETS = ("service", "batch")


def project_views(config: ShipyardConfig, paths: ProjectPaths, *, guard: bool = True) -> list[dict[str, Any]]:
    """The project's ``features.views`` resolved against ``conf/features/`` (each feature with its
    hash); with ``guard``, after checking that no production model's features changed."""
    from shipyard.features import load_catalog, resolve

    catalog = load_catalog(paths.root)
    if guard:
        check_production(paths.root, catalog)
    where = paths.rel(paths.config_file) if paths.config_file.is_file() else None
    return resolve(catalog, config.features.views, where)


def production_features(root: Path) -> dict[str, dict[str, dict[str, str]]]:
    """``{"team/name@version": {"view@version": {feature: hash}}}`` of every production model
    that was trained with shared features."""
    from shipyard.core.compose import list_projects
    from shipyard.registry import Registry

    found = {}
    for project in list_projects(root):
        production = Registry(ProjectPaths.of(root, project)).production()
        used = production.card.get("features") if production is not None else None
        if production is not None and used:
            found[f"{project}@{production.version}"] = used
    return found


def check_production(root: Path, catalog: Any) -> None:
    """Refuse (:class:`ConfigError`) definitions that change or remove a feature a production
    model was trained with, naming every such model."""
    now = catalog.hashes()
    broken: dict[str, list[str]] = {}
    for model, used in production_features(root).items():
        for ref, features in used.items():
            for feature, digest in features.items():
                current = now.get(ref, {}).get(feature)
                if current != digest:
                    what = "removed" if current is None else "changed"
                    broken.setdefault(f"{ref} feature {feature!r} ({what})", []).append(model)
    if not broken:
        return
    first, models = next(iter(broken.items()))
    others = f"; and {len(broken) - 1} more" if len(broken) > 1 else ""
    view = first.split("@")[0]
    raise ConfigError(
        f"{first} is used by production model(s) {', '.join(sorted(models))}{others}",
        where="conf/features/",
        key=first.split(" ")[0],
        fix=f"keep that version of {view} as it was and declare the change as a new version (version: N+1); "
        "projects move to it by changing their features.views, and the production model keeps its own",
    )


def list_views(root: Path) -> list[dict[str, Any]]:
    """Every view with its versions' owner, description, entity, source and features."""
    from shipyard.features import load_catalog

    catalog = load_catalog(root)
    rows = []
    for (name, version), entry in sorted(catalog.views.items()):
        source, _ = catalog.sources[entry.view.source]
        rows.append(
            {
                "view": name,
                "version": version,
                "owner": entry.view.owner,
                "team": entry.team,
                "entity": source.entity,
                "source": entry.view.source,
                "ttl": entry.view.ttl,
                "features": list(entry.view.features),
                "description": entry.view.description,
                "file": entry.file,
            }
        )
    return rows


def describe_view(root: Path, ref: str) -> dict[str, Any]:
    """One view (``name`` for its newest version, or ``name@version``): its definition, every
    feature's hash, and the projects that use it (in conf/) and production models trained on it."""
    from shipyard.core.compose import compose, list_projects
    from shipyard.features import load_catalog
    from shipyard.features._catalog import _resolve_view

    catalog = load_catalog(root)
    name, _, version_text = ref.partition("@")
    versions = sorted(v for n, v in catalog.views if n == name)
    if version_text and not version_text.lstrip("v").isdigit():
        raise ConfigError(f"bad view version in {ref!r}", value=ref, fix="write name or name@version, e.g. orders@1")
    version = int(version_text.lstrip("v")) if version_text else (versions[-1] if versions else 0)
    entry = catalog.view(name, version, "view")
    resolved = _resolve_view(catalog, entry, None)
    users = []
    for project in list_projects(root):
        try:
            cfg = compose(project, root=root)
        except ConfigError:
            continue
        if any(r.view == name and r.version == version for r in cfg.features.views):
            users.append(project)
    models = [m for m, used in production_features(root).items() if f"{name}@{version}" in used]
    return {
        **resolved,
        "versions": versions,
        "file": entry.file,
        "team": entry.team,
        "used_by": users,
        "production_models": models,
        "feature_descriptions": {f: s.description for f, s in entry.view.features.items()},
    }


def materialize_store(
    paths: ProjectPaths, config: ShipyardConfig, manifest: dict[str, Any], folder: Path
) -> dict[str, Any]:
    """The online store of a model trained with shared features (its bundle's ``features``),
    materialised into ``folder`` from the offline data by the compiled definitions (those the
    join stage read, checked against the hashes the model was trained with)."""
    import yaml
    from shipyard.core.errors import DataError
    from shipyard.features import check_hashes, write_store

    if not paths.feature_defs.is_file():
        raise DataError(
            f"{paths.rel(paths.feature_defs)} is missing, so there are no definitions to materialise",
            where=paths.rel(paths.feature_defs),
            fix=f"compile the project first: make compile PROJECT={paths.project}",
        )
    views = yaml.safe_load(paths.feature_defs.read_text())["views"]
    check_hashes(manifest, views, paths.project)
    return write_store(folder, manifest, views, paths.root, config.features.online_store)


def materialize_targets(paths: ProjectPaths, config: ShipyardConfig) -> dict[str, dict[str, Any]]:
    """``shipyard features materialize``: refresh the online store of every built target of the
    project that looks features up (new events in the offline data), each file replaced atomically."""
    import json

    from shipyard.core.errors import DataError
    from shipyard.engine.deploy import deploy_dir

    done = {}
    for target in STORE_TARGETS:
        folder = deploy_dir(paths, target)
        meta = folder / "bundle" / "bundle.json"
        if not meta.is_file():
            continue
        manifest = json.loads(meta.read_text()).get("features")
        if manifest and manifest.get("views"):
            done[target] = materialize_store(paths, config, manifest, folder)
    if not done:
        raise DataError(
            f"{paths.project} has no built service or batch job whose model looks shared features up",
            where=paths.rel(paths.root / "deploy" / paths.team / paths.name),
            fix=f"deploy it first: make deploy PROJECT={paths.project}",
        )
    return done
