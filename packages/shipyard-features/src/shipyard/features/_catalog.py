"""The feature catalog: every definition under ``conf/features/``, checked, resolved and hashed.

Each file is typed by :mod:`shipyard.features._schema`; the rules here tie files together
(names unique across every team's files, a view's source and entity exist, a feature is one
kind, a ratio names two other features). Every failure is one :class:`ConfigError` naming the
file, the key, the bad value and the fix (exit code 2 from the CLI).

A project's references resolve into plain data (:func:`resolve`): for each view, its source,
entity, time-to-live and the features used (a ratio brings the two it divides), each with the
hash of everything that decides its values. The compiler writes that to the project's
``pipelines/<team>/<name>/features.yaml``; the feature join reads it from there, and the hashes
are the version's lineage.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError, did_you_mean
from shipyard.core.hashing import json_sha256
from shipyard.core.schema import FeatureRefConf, SourceKind
from shipyard.features._schema import (
    Aggregation,
    EntityConf,
    FeatureConf,
    FeatureFileConf,
    FeatureSourceConf,
    FeatureViewConf,
    parse_duration,
)

__all__ = ["Catalog", "ViewEntry", "column_names", "load_catalog", "read_definition_files", "resolve"]

FEATURES_DIR = "conf/features"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_EVENT_SOURCES = (SourceKind.csv, SourceKind.parquet, SourceKind.sql)


@dataclass
class ViewEntry:
    view: FeatureViewConf
    file: str  # repository-relative, for messages
    team: str  # the folder under conf/features/


@dataclass
class Catalog:
    entities: dict[str, tuple[EntityConf, str]] = field(default_factory=dict)
    sources: dict[str, tuple[FeatureSourceConf, str]] = field(default_factory=dict)
    views: dict[tuple[str, int], ViewEntry] = field(default_factory=dict)

    def view(self, name: str, version: int, key: str, where: str | None = None) -> ViewEntry:
        found = self.views.get((name, version))
        if found is not None:
            return found
        names = sorted({n for n, _ in self.views})
        versions = sorted(v for n, v in self.views if n == name)
        if versions:
            message = f"feature view {name!r} has no version {version} (versions: {', '.join(map(str, versions))})"
        else:
            message = f"unknown feature view {name!r}{did_you_mean(name, names)}"
        raise ConfigError(
            message,
            where=where,
            key=key,
            value=f"{name}@{version}",
            fix="`shipyard features list` shows every view and version: " + (", ".join(names) or "none declared yet"),
        )

    def hashes(self) -> dict[str, dict[str, str]]:
        """``{"view@version": {feature: hash}}`` of every feature declared."""
        out: dict[str, dict[str, str]] = {}
        for (name, version), entry in sorted(self.views.items()):
            resolved = _resolve_view(self, entry, None)
            out[f"{name}@{version}"] = {f: spec["hash"] for f, spec in resolved["features"].items()}
        return out


def read_definition_files(root: Path) -> dict[str, str]:
    """``{repository-relative path: text}`` of every definition file."""
    base = root / FEATURES_DIR
    if not base.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(base.rglob("*.yaml"))}


def load_catalog(root: Path, texts: Mapping[str, str] | None = None) -> Catalog:
    """Every definition file under ``conf/features/`` (or the given texts), checked."""
    from shipyard.core.compose import section

    catalog = Catalog()
    for rel, text in (read_definition_files(root) if texts is None else texts).items():
        data = _yaml(rel, text)
        try:
            typed = section(FeatureFileConf, data)
        except ConfigError as exc:
            exc.where = rel
            raise
        team = Path(rel).parent.name
        for name, entity in typed.entities.items():
            _unique(catalog.entities, name, rel, f"entities.{name}", "entity")
            catalog.entities[name] = (entity, rel)
        for name, source in typed.sources.items():
            _unique(catalog.sources, name, rel, f"sources.{name}", "feature source")
            catalog.sources[name] = (source, rel)
        for i, view in enumerate(typed.views):
            key = (view.name, view.version)
            if key in catalog.views:
                raise ConfigError(
                    f"feature view {view.name}@{view.version} is declared twice (also in {catalog.views[key].file})",
                    where=rel,
                    key=f"views[{i}]",
                    fix="give the new definition the next version number",
                )
            catalog.views[key] = ViewEntry(view, rel, team)
    _check(catalog)
    return catalog


def _yaml(rel: str, text: str) -> Any:
    import yaml

    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(
            f"YAML syntax error: {getattr(exc, 'problem', None) or exc}",
            where=f"{rel}{at}",
            fix="fix the YAML at that line (indentation, a missing ':' or an unclosed bracket)",
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(
            "a feature definition file holds a mapping", where=rel, fix="write entities:, sources: and views: keys"
        )
    return data


def _unique(found: Mapping[str, tuple[Any, str]], name: str, rel: str, key: str, what: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"{what} name {name!r} is not allowed",
            where=rel,
            key=key,
            fix="use lower-case letters, digits and '_', starting with a letter",
        )
    if name in found:
        raise ConfigError(
            f"{what} {name!r} is declared twice (also in {found[name][1]})",
            where=rel,
            key=key,
            fix=f"names are shared by every team: use the existing {what} or choose another name",
        )


def _check(catalog: Catalog) -> None:
    for name, (source, rel) in catalog.sources.items():
        key = f"sources.{name}"
        if source.entity not in catalog.entities:
            raise ConfigError(
                f"{key}.entity: unknown entity {source.entity!r}{did_you_mean(source.entity, catalog.entities)}",
                where=rel,
                key=f"{key}.entity",
                fix="declare it under entities: (in any file under conf/features/) or name one of: "
                + ", ".join(sorted(catalog.entities)),
            )
        if source.source.kind not in _EVENT_SOURCES:
            raise ConfigError(
                f"{key}.source.kind {str(source.source.kind)!r} holds no event rows",
                where=rel,
                key=f"{key}.source.kind",
                fix="use a csv, parquet or sql source with an entity and an event-time column",
            )
    for (name, version), entry in catalog.views.items():
        _check_view(catalog, entry, name, version)


def _check_view(catalog: Catalog, entry: ViewEntry, name: str, version: int) -> None:
    view, rel = entry.view, entry.file
    index = [e.view for e in catalog.views.values() if e.file == rel].index(view)
    key = f"views[{index}]"

    def fail(message: str, sub: str, value: Any, fix: str) -> ConfigError:
        return ConfigError(f"{name}@{version}: {message}", where=rel, key=f"{key}.{sub}", value=value, fix=fix)

    if not _NAME.match(name):
        raise fail("a view's name is lower-case letters, digits and '_'", "name", name, "rename the view")
    if view.source not in catalog.sources:
        raise fail(
            f"unknown feature source {view.source!r}{did_you_mean(view.source, catalog.sources)}",
            "source",
            view.source,
            "name one of: " + (", ".join(sorted(catalog.sources)) or "none declared yet"),
        )
    if not view.owner.strip() or not view.description.strip():
        raise fail("a view needs an owner and a description", "owner", view.owner, "set both: people choose by them")
    if view.ttl is not None:
        parse_duration(view.ttl, f"{key}.ttl", rel)
    if not view.features:
        raise fail("the view declares no features", "features", None, "declare at least one feature")
    for feature, spec in view.features.items():
        try:
            _check_feature(view, feature, spec, fail)
        except ConfigError as exc:  # a duration's own error knows neither the file nor the view
            if exc.where is None:
                exc.where = rel
                exc.key = f"{key}.{exc.key}" if exc.key else key
            raise


def _check_feature(view: FeatureViewConf, feature: str, spec: FeatureConf, fail: Any) -> None:
    sub = f"features.{feature}"
    if not _NAME.match(feature):
        raise fail(f"feature name {feature!r} is not allowed", sub, feature, "use lower-case letters, digits and '_'")
    kinds = [k for k in ("agg", "ratio", "onehot") if getattr(spec, k) is not None]
    if len(kinds) != 1:
        raise fail(
            f"feature {feature!r} must be exactly one of agg, ratio and onehot (it sets {', '.join(kinds) or 'none'})",
            sub,
            kinds,
            "e.g. {agg: sum, column: amount, window: 30d}, {ratio: [spend_7d, spend_30d]} or "
            "{onehot: [web, app], column: channel}",
        )
    if spec.agg is not None:
        if spec.agg != Aggregation.count and not spec.column:
            raise fail(f"{spec.agg} needs a column", f"{sub}.column", None, "set column to the source column")
        if spec.agg == Aggregation.last and spec.window is not None:
            raise fail("last takes no window: it is the latest value", f"{sub}.window", spec.window, "remove window")
        if spec.window is not None:
            parse_duration(spec.window, f"{sub}.window")
    elif spec.ratio is not None:
        others = [f for f, s in view.features.items() if f != feature and s.agg is not None]
        if len(spec.ratio) != 2 or any(r not in others for r in spec.ratio):
            raise fail(
                f"a ratio divides two aggregation features of the view, not {spec.ratio}",
                f"{sub}.ratio",
                spec.ratio,
                "write ratio: [numerator, denominator] with names among: " + ", ".join(others),
            )
    else:
        if not spec.column or not spec.onehot or len(set(spec.onehot)) < len(spec.onehot):
            raise fail(
                "onehot needs a column and a list of distinct categories",
                sub,
                spec.onehot,
                "write {onehot: [web, app, store], column: channel}",
            )
        bad = [c for c in spec.onehot if not _CATEGORY.match(str(c))]
        if bad:
            raise fail(
                f"category {bad[0]!r} cannot name a column", f"{sub}.onehot", bad[0], "use letters, digits, '_', '-'"
            )
    if spec.window is not None and spec.agg is None:
        raise fail("only an aggregation takes a window", f"{sub}.window", spec.window, "remove window")


# -- resolving a project's references --------------------------------------------------------


def column_names(view: str, feature: str, spec: Mapping[str, Any]) -> list[str]:
    """The output columns of one feature: ``<view>__<feature>`` (one per category for onehot)."""
    if spec.get("onehot"):
        return [f"{view}__{feature}_{c}" for c in spec["onehot"]]
    return [f"{view}__{feature}"]


def _plain_feature(spec: FeatureConf) -> dict[str, Any]:
    data = {k: v for k, v in dataclasses.asdict(spec).items() if k != "description" and v is not None}
    if "agg" in data:
        data["agg"] = str(data["agg"])
    if spec.window is not None:
        data["window_seconds"] = int(parse_duration(spec.window, "window").total_seconds())
    return data


def _resolve_view(catalog: Catalog, entry: ViewEntry, selected: list[str] | None) -> dict[str, Any]:
    """One view as plain data: its source, entity, ttl and the features ``selected`` (null:
    all), each with the hash of what decides its values (descriptions and owners do not)."""
    from shipyard.core.compose import dump

    view = entry.view
    source, _ = catalog.sources[view.source]
    entity, _ = catalog.entities[source.entity]
    ttl = int(parse_duration(view.ttl, "ttl").total_seconds()) if view.ttl else None
    common = {
        "source": dump(source.source),
        "entity": source.entity,
        "join_key": entity.join_key,
        "event_time": source.event_time,
        "ttl_seconds": ttl,
    }
    names = list(view.features) if selected is None else list(selected)
    needed = list(names)
    for name in names:
        for part in view.features[name].ratio or []:
            if part not in needed:
                needed.append(part)
    features: dict[str, dict[str, Any]] = {}
    for name in needed:
        spec = _plain_feature(view.features[name])
        parts = {p: _plain_feature(view.features[p]) for p in view.features[name].ratio or []}
        spec["hash"] = json_sha256({"view": common, "feature": spec, "inputs": parts})
        features[name] = spec
    return {
        "view": view.name,
        "version": view.version,
        "owner": view.owner,
        "description": view.description,
        **common,
        "features": features,
        "selected": names,
        "columns": [c for n in names for c in column_names(view.name, n, features[n])],
    }


def resolve(catalog: Catalog, refs: list[FeatureRefConf], where: str | None = None) -> list[dict[str, Any]]:
    """A project's ``features.views`` as resolved views (see :func:`_resolve_view`)."""
    out = []
    seen: dict[str, int] = {}
    for i, ref in enumerate(refs):
        key = f"features.views[{i}]"
        entry = catalog.view(ref.view, ref.version, key, where)
        if ref.view in seen:
            raise ConfigError(
                f"{ref.view} is referenced at versions {seen[ref.view]} and {ref.version}",
                where=where,
                key=key,
                fix="use one version of a view per project",
            )
        seen[ref.view] = ref.version
        declared = list(entry.view.features)
        for j, name in enumerate(ref.features or []):
            if name not in declared:
                raise ConfigError(
                    f"{ref.view}@{ref.version} has no feature {name!r}{did_you_mean(name, declared)}",
                    where=where,
                    key=f"{key}.features[{j}]",
                    value=name,
                    fix="name some of: " + ", ".join(declared),
                )
        out.append(_resolve_view(catalog, entry, ref.features))
    return out
