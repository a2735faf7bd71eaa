"""Compose and validate a project's configuration.

Layers, lowest first: framework defaults (``conf/config.yaml`` and the group defaults it names),
team defaults (``conf/team/<team>.yaml``), the project (``conf/project/<team>/<name>.yaml``), an
optional experiment, and command-line overrides in Hydra's grammar. Every failure becomes one
:class:`~shipyard.core.errors.ConfigError` naming the file or override, the key, the value and
the fix.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, cast

from shipyard.core.errors import ConfigError, did_you_mean
from shipyard.core.paths import parse_project
from shipyard.core.schema import TASKS, ShipyardConfig, register_schemas

__all__ = ["SPLIT_USUAL", "compose", "config_files", "list_projects", "split_warnings", "to_dict"]

# Outside these ranges a split fraction is legal but unusual: composing warns.
SPLIT_USUAL = {"train": (0.60, 0.95), "val": (0.03, 0.20), "test": (0.02, 0.20)}


def split_warnings(split: Any) -> list[str]:
    out = []
    for name, (low, high) in SPLIT_USUAL.items():
        value = float(split[name])
        if not low <= value <= high:
            out.append(f"split.{name}={value:g} is outside the usual {low:.0%}-{high:.0%}")
    return out


_GROUPS = ("data", "split", "model", "trainer", "env", "team", "project", "experiment")
_IN_FILE = re.compile(r"In '([^']+)'")
_FULL_KEY = re.compile(r"full_key: (\S+)")
_NOT_FOUND = re.compile(r"Could not find '([^']+)'")
_BAD_OPTION = re.compile(r"Could not load '([^']+)'")


def list_projects(root: Path) -> list[str]:
    """Every ``team/name`` under ``conf/project/``, sorted."""
    base = root / "conf" / "project"
    return sorted(f"{p.parent.name}/{p.stem}" for p in base.glob("*/*.yaml"))


def _group_options(root: Path, group: str) -> list[str]:
    base = root / "conf" / group
    return sorted(p.relative_to(base).with_suffix("").as_posix() for p in base.rglob("*.yaml"))


def compose(project: str, overrides: list[str] | tuple[str, ...] = (), *, root: Path) -> Any:
    """Return the validated, fully resolved config of ``project`` as a DictConfig."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    team, name = parse_project(project)
    if project not in list_projects(root):
        raise ConfigError(
            f"unknown project {project!r}{did_you_mean(project, list_projects(root))}",
            value=project,
            fix=f"create conf/project/{team}/{name}.yaml or pick one of: " + ", ".join(list_projects(root)),
        )
    layers = []
    if (root / "conf" / "team" / f"{team}.yaml").is_file():
        layers.append(f"team={team}")
    layers += [f"project={team}/{name}", f"++project.team={team}", f"++project.name={name}"]
    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(root / "conf"), version_base=None):
            cfg = hydra_compose("config", overrides=[*layers, *overrides])
        OmegaConf.resolve(cfg)
        missing = sorted(OmegaConf.missing_keys(cfg))
    except (HydraException, OmegaConfBaseException) as exc:
        raise _translate(exc, root, project, list(overrides)) from exc
    finally:
        GlobalHydra.instance().clear()
    if missing:
        raise ConfigError(
            f"required value {missing[0]} is not set",
            where=f"conf/project/{team}/{name}.yaml",
            key=missing[0],
            fix=f"set {missing[0]} in the project file or pass {missing[0]}=VALUE",
        )
    _validate(cfg, root, project)
    return cfg


def config_files(project: str, root: Path, overrides: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The YAML files under ``conf/`` that a project's composed config reads (repo-relative)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    team, name = parse_project(project)
    layers = [f"team={team}"] if (root / "conf" / "team" / f"{team}.yaml").is_file() else []
    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(root / "conf"), version_base=None):
            cfg = hydra_compose(
                "config", overrides=[*layers, f"project={team}/{name}", *overrides], return_hydra_config=True
            )
        choices = dict(cfg.hydra.runtime.choices)
    finally:
        GlobalHydra.instance().clear()
    files = ["conf/config.yaml"]
    for group, option in sorted(choices.items()):
        if option is None or group.startswith("hydra/"):
            continue
        path = root / "conf" / group / f"{option}.yaml"
        if path.is_file():
            files.append(path.relative_to(root).as_posix())
    return files


def to_dict(cfg: Any) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def _validate(cfg: Any, root: Path, project: str) -> None:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from shipyard.core.registry import component_schema

    where = f"conf/project/{project}.yaml"
    if cfg.project.task not in TASKS:
        raise ConfigError(
            f"unknown task {cfg.project.task!r}{did_you_mean(cfg.project.task, TASKS)}",
            where=where,
            key="project.task",
            value=cfg.project.task,
            fix="set project.task to one of: " + ", ".join(TASKS),
        )
    model = cfg.model
    if not OmegaConf.is_dict(model) or "_target_" not in model:
        raise ConfigError(
            "the model section has no _target_",
            key="model._target_",
            fix="choose a model with model=mlp or model=cnn, or set model._target_",
        )
    schema = component_schema(str(model._target_), key="model._target_")
    # A dict config converts to a dict (is_dict was checked above); the cast tells mypy so.
    params = {k: v for k, v in cast(dict[str, Any], OmegaConf.to_container(model)).items() if k != "_target_"}
    try:
        OmegaConf.merge(OmegaConf.structured(schema), params)
    except OmegaConfBaseException as exc:
        fields = [f.name for f in dataclasses.fields(schema)]
        leaf = str(getattr(exc, "key", "") or "")
        raise ConfigError(
            f"model parameter {leaf!r} is not valid for {model._target_}"
            f"{did_you_mean(leaf, fields)}: {getattr(exc, 'msg', exc)}",
            where=_file_of(root, "model", leaf, project),
            key=f"model.{leaf}",
            value=params.get(leaf),
            fix=f"{model._target_} takes: " + ", ".join(fields),
        ) from exc
    split = cfg.split
    total = split.train + split.val + split.test
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(
            f"split fractions add up to {total:g}, not 1",
            key="split",
            value={"train": split.train, "val": split.val, "test": split.test},
            fix="make split.train + split.val + split.test equal 1",
        )
    import warnings

    for message in split_warnings(split):
        warnings.warn(message, UserWarning, stacklevel=3)


def _file_of(root: Path, group: str, leaf: str, project: str) -> str:
    """The first config file that sets ``leaf`` under ``group`` (best effort, for messages)."""
    candidates = [root / "conf" / "project" / f"{project}.yaml", *(root / "conf" / group).rglob("*.yaml")]
    for path in candidates:
        if path.is_file() and re.search(rf"^\s*{re.escape(leaf)}\s*:", path.read_text(), re.M):
            return path.relative_to(root).as_posix()
    return f"conf/{group}/"


def _schema_keys(full_key: str) -> list[str]:
    """Valid sibling keys of ``full_key`` according to the schema."""
    node: Any = ShipyardConfig
    for part in full_key.split(".")[:-1]:
        fields = {f.name: f for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        if part not in fields:
            return []
        default = fields[part].default_factory
        if default is dataclasses.MISSING:
            return []
        node = type(default())
    return [f.name for f in dataclasses.fields(node)] if dataclasses.is_dataclass(node) else []


def _model_fields(root: Path, project: str, overrides: list[str]) -> list[str]:
    """The parameters the chosen model takes, composing again without the bad override."""
    from shipyard.core.registry import component_schema

    try:
        cfg = compose(project, overrides, root=root)
        return [f.name for f in dataclasses.fields(component_schema(str(cfg.model._target_)))]
    except ConfigError:
        return []


def _override_for(key: str, overrides: list[str]) -> str | None:
    for item in overrides:
        if item.lstrip("+~").split("=", 1)[0] == key:
            return item
    return None


def _translate(exc: Exception, root: Path, project: str, overrides: list[str]) -> ConfigError:
    from hydra.errors import OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    cause: BaseException = exc
    while not isinstance(cause, OmegaConfBaseException):
        inner = cause.__cause__ or cause.__context__
        if inner is None:
            break
        cause = inner
    text = str(exc)
    if isinstance(exc, OverrideParseException):
        bad = next((o for o in overrides if o in text or "=" not in o), None)
        return ConfigError(
            f"bad override syntax: {text.splitlines()[0]}",
            where=f"override {bad!r}" if bad else "overrides",
            fix="write overrides as key=value, +key=value, ~key or group=option; "
            "quote lists and values with spaces, e.g. 'model.hidden=[64,32]'",
        )
    for pattern in (_NOT_FOUND, _BAD_OPTION):
        found = pattern.search(text)
        if found:
            return _missing_option(found.group(1), root, overrides)
    full_key = getattr(cause, "full_key", None) or (m.group(1) if (m := _FULL_KEY.search(text)) else None)
    in_file = _IN_FILE.search(text)
    where = _override_for(full_key, overrides) if full_key else None
    where = (
        f"override {where!r}"
        if where
        else (f"conf/{in_file.group(1)}.yaml" if in_file else f"conf/project/{project}.yaml")
    )
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    msg = getattr(cause, "msg", None) or text.splitlines()[0]
    unknown = isinstance(cause, (ConfigKeyError, ConfigAttributeError)) or "Could not override" in text
    if full_key and unknown:
        leaf = full_key.split(".")[-1]
        siblings = _schema_keys(full_key)
        if not siblings and full_key.startswith("model."):
            siblings = _model_fields(root, project, [o for o in overrides if o != _override_for(full_key, overrides)])
        return ConfigError(
            f"unknown key {full_key}{did_you_mean(leaf, siblings)}",
            where=where,
            key=full_key,
            fix=("valid keys here: " + ", ".join(siblings)) if siblings else "remove the key",
        )
    value = getattr(cause, "value", None) if hasattr(cause, "value") else None
    return ConfigError(
        msg.split("\n")[0],
        where=where,
        key=full_key,
        value=value,
        fix="give the key a value of the type its schema declares (see shipyard.core.schema)"
        if full_key
        else "check the config file named above",
    )


def _missing_option(path: str, root: Path, overrides: list[str]) -> ConfigError:
    group, _, option = path.partition("/")
    if group not in _GROUPS or not option:
        return ConfigError(f"config {path!r} not found", fix="check the defaults lists under conf/")
    options = _group_options(root, group)
    if group == "project":
        label, fix = f"unknown project {option!r}", "pick one of: " + ", ".join(options)
    else:
        label = f"unknown option {option!r} for config group {group!r}"
        fix = f"use {group}=<option> with one of: " + ", ".join(options)
    source = next((o for o in overrides if o.lstrip("+").startswith(f"{group}=")), None)
    return ConfigError(
        label + did_you_mean(option, options),
        where=f"override {source!r}" if source else "a defaults list under conf/",
        key=group,
        value=option,
        fix=fix,
    )
