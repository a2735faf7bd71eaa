"""Compose a project's configuration and validate it once, into the typed :class:`ShipyardConfig`.

Layers, lowest first: the schema's defaults (:mod:`shipyard.core.schema`), ``conf/config.yaml``
and the group options it names, team defaults (``conf/team/<team>.yaml``), the project
(``conf/project/<team>/<name>.yaml``), an optional experiment, and command-line overrides in
Hydra's grammar. The composed result is merged into the schema (so ``+key=value`` cannot add a
key the schema lacks), the model's parameters are checked against the schema its ``_target_``
registered, and :mod:`shipyard.core.rules` checks bounds and cross-field rules. Every failure is
one :class:`~shipyard.core.errors.ConfigError` naming where (override or file), the key, the bad
value, what is allowed and the closest valid spelling. Hydra's and OmegaConf's exceptions are
read by their fields, never by their message text.

:func:`load` reads a compiled ``params.yaml`` back through the same validation.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from shipyard.core.errors import ConfigError, did_you_mean
from shipyard.core.paths import parse_project
from shipyard.core.schema import ModelConf, ParamConf, ShipyardConfig, StepConf, register_schemas

__all__ = ["compose", "config_files", "dump", "list_projects", "load", "section", "to_dict"]

_T = TypeVar("_T")
_YAML_FIX = "fix the YAML at that line (a key written twice, indentation, a missing ':' or an unclosed bracket)"
_GROUPS = ("data", "checks", "split", "model", "trainer", "gate", "search", "env", "team", "project", "experiment")
# Sections whose content is checked by its own schema after composing (a model's registered
# parameters, a search space's entries): Hydra may add keys there without a leading '+'.
_OPEN = ("model.", "search.space.", "steps.")


def list_projects(root: Path) -> list[str]:
    """Every ``team/name`` under ``conf/project/``, sorted. A file whose name is not a valid
    project name is skipped with a warning naming it, so one bad file does not stop the rest."""
    base = root / "conf" / "project"
    found = []
    for path in sorted(base.glob("*/*.yaml")):
        name = f"{path.parent.name}/{path.stem}"
        try:
            parse_project(name)
        except ConfigError:
            warnings.warn(
                f"skipped {path.relative_to(root).as_posix()}: {name!r} is not a project name "
                "(lower-case letters, digits, '_' and '-'); rename the file",
                UserWarning,
                stacklevel=2,
            )
            continue
        found.append(name)
    return found


def _group_options(root: Path, group: str) -> list[str]:
    base = root / "conf" / group
    return sorted(p.relative_to(base).with_suffix("").as_posix() for p in base.rglob("*.yaml"))


# -- where a key was set -------------------------------------------------------------------------


@dataclasses.dataclass
class _Locator:
    """Names the override or config file that set a key, for messages."""

    root: Path
    project: str
    overrides: list[str]
    choices: dict[str, str]
    search_files: bool = True  # False: data that came from no config file (the Python API)

    def override(self, key: str) -> str | None:
        key = re.sub(r"\[\d+\]", "", key)
        for item in reversed(self.overrides):
            name = item.lstrip("+~").split("=", 1)[0]
            if name in _GROUPS or name.split("@")[0] in _GROUPS:
                if key == name:  # a group option: the file it names is found by files()
                    return item
                continue
            if key == name or key.startswith(name + ".") or name.startswith(key + "."):
                return item
        return None

    def files(self, key: str) -> list[Path]:
        """Config files that may set ``key``, most specific first."""
        conf = self.root / "conf"
        team, _ = parse_project(self.project)
        out = [conf / "experiment" / f"{self.choices['experiment']}.yaml"] if self.choices.get("experiment") else []
        out += [conf / "project" / f"{self.project}.yaml", conf / "team" / f"{team}.yaml"]
        group = key.split(".", 1)[0]
        if self.choices.get(group):
            out.append(conf / group / f"{self.choices[group]}.yaml")
        elif (conf / group).is_dir():
            out += sorted((conf / group).rglob("*.yaml"))
        return [*out, conf / "config.yaml"]

    def __call__(self, key: str | None) -> str | None:
        if not key:
            return None
        item = self.override(key)
        if item is not None:
            return f"override {item!r}"
        if not self.search_files:
            return None
        for path in self.files(key):
            if path.is_file() and _sets(path, key, self.root):
                return path.relative_to(self.root).as_posix()
        return None


def _sets(path: Path, key: str, root: Path) -> bool:
    """Whether the YAML file ``path`` sets ``key`` (honouring its Hydra package)."""
    import yaml

    text = path.read_text()
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError:
        return False
    group = path.parent.relative_to(root / "conf").as_posix()
    if group != "." and not any("@package _global_" in line for line in text.splitlines()[:3]):
        data = {group.replace("/", "."): data}
    return _has(data, re.sub(r"\[(\d+)\]", r".\1", key).split("."))


def _has(node: Any, parts: list[str]) -> bool:
    """Whether ``parts`` is a path in ``node``; a key may itself hold dots (``optim.lr``)."""
    if not parts:
        return True
    if isinstance(node, list):
        return parts[0].isdigit() and int(parts[0]) < len(node) and _has(node[int(parts[0])], parts[1:])
    if not isinstance(node, dict):
        return False
    return any(
        ".".join(parts[:k]) in node and _has(node[".".join(parts[:k])], parts[k:]) for k in range(len(parts), 0, -1)
    )


# -- the schema's view of a key ------------------------------------------------------------------


def _field(key: str, schema: type = ShipyardConfig) -> tuple[type | None, dataclasses.Field[Any] | None]:
    """The dataclass holding ``key`` and its field, walking ``schema`` (list items count as
    their list: ``deploy.targets[0]`` is ``deploy.targets``)."""
    node: Any = schema
    parts = re.sub(r"\[\d+\]", "", key).split(".")
    for i, part in enumerate(parts):
        if not (isinstance(node, type) and dataclasses.is_dataclass(node)):
            return None, None
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            return node, None
        if i == len(parts) - 1:
            return node, fields[part]
        hint = typing.get_type_hints(node)[part]
        node = _inner(hint)
    return None, None


def _inner(hint: Any) -> Any:
    """``X | None`` as X; ``dict[str, X]`` as X (the next key is a dict key)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    origin = typing.get_origin(hint)
    if origin is dict:
        return args[-1]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _inner(args[0])
    return hint


def _allowed(owner: type | None, field: dataclasses.Field[Any] | None) -> list[str]:
    if owner is None or field is None:
        return []
    hint = _inner(typing.get_type_hints(owner)[field.name])
    if typing.get_origin(hint) is list:
        hint = typing.get_args(hint)[0]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return [m.name for m in hint]
    return []


def _type_name(owner: type | None, field: dataclasses.Field[Any] | None) -> str:
    if owner is None or field is None:
        return "the type its schema declares"
    hint = typing.get_type_hints(owner)[field.name]
    text = str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")
    return {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "a string"}.get(text, text)


def _misplaced(schema: type, data: Any, prefix: str = "") -> str:
    """The key where ``data`` puts a plain value on a section (``auth: true``): OmegaConf's merge
    error names no key for that."""
    if not isinstance(data, dict) or not dataclasses.is_dataclass(schema):
        return ""
    hints = typing.get_type_hints(schema)
    for key, value in data.items():
        hint = _inner(hints.get(str(key), Any))
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            if value is not None and not isinstance(value, dict):
                return f"{prefix}{key}"
            found = _misplaced(hint, value, f"{prefix}{key}.")
            if found:
                return found
    return ""


def _schema_error(
    exc: Exception, locate: _Locator, prefix: str = "", schema: type = ShipyardConfig, data: Any = None
) -> ConfigError:
    """One message from an OmegaConf exception, read by its fields. ``prefix`` is where the
    node checked against ``schema`` sits in the whole config (``model.`` for a model's schema)."""
    from omegaconf.errors import (
        ConfigAttributeError,
        ConfigKeyError,
        InterpolationResolutionError,
        ValidationError,
    )

    inner = str(getattr(exc, "full_key", "") or "") or _misplaced(schema, data)
    full = prefix + inner
    value = getattr(exc, "value", None)
    where = locate(full)
    owner, field = _field(inner, schema)
    if isinstance(exc, InterpolationResolutionError):
        return ConfigError(
            f"{full}: {str(getattr(exc, 'msg', None) or exc).splitlines()[0]}",
            where=where,
            key=full or None,
            fix="an interpolation ${...} must name a key that exists in the composed config, e.g. ${optim.lr}",
        )
    if isinstance(exc, ConfigKeyError | ConfigAttributeError):
        parent = getattr(exc, "object_type", None)
        siblings = [f.name for f in dataclasses.fields(parent)] if dataclasses.is_dataclass(parent) else []
        if not siblings and owner is not None and field is None:
            siblings = [f.name for f in dataclasses.fields(owner)]
        leaf = full.rsplit(".", 1)[-1]
        return ConfigError(
            f"unknown key {full}{did_you_mean(leaf, siblings)}",
            where=where,
            key=full,
            fix=("valid keys here: " + ", ".join(siblings)) if siblings else "remove the key",
        )
    if isinstance(exc, ValidationError) and "is not a subclass of StepConf" in str(exc):
        # OmegaConf cannot assign a plain mapping to a new typed entry, which is what an
        # override adding a step does; a project file merges (and types) it.
        return ConfigError(
            f"steps.{inner}: a new step cannot be added by a command-line override",
            where=where,
            key=f"steps.{inner}",
            fix="declare it in the project file under steps: (function, inputs, outputs, params); "
            "overrides may then change its keys, e.g. steps.<name>.inputs=[dataset]",
        )
    allowed = _allowed(owner, field)
    if isinstance(exc, ValidationError) and allowed:
        return ConfigError(
            f"{full}: {str(value)!r} is not allowed{did_you_mean(str(value), allowed)}",
            where=where,
            key=full,
            value=value,
            fix=f"set {full} to one of: " + ", ".join(allowed),
        )
    msg = str(getattr(exc, "msg", None) or exc).split("\n")[0]
    return ConfigError(
        f"{full}: {msg}" if full else msg,
        where=where,
        key=full or None,
        value=value,
        fix=f"give {full} {_type_name(owner, field)}" if full else "check the config file named above",
    )


# -- compose -------------------------------------------------------------------------------------


def _parse_overrides(overrides: Sequence[str]) -> list[str]:
    """Hydra's parser over each override, so a bad one is named; open sections get ``++``."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    out = []
    for item in overrides:
        try:
            parsed = parser.parse_overrides([item])[0]
        except OverrideParseException as exc:
            raise ConfigError(
                f"bad override syntax: {exc.message.splitlines()[0]}",
                where=f"override {item!r}",
                fix="write overrides as key=value, +key=value, ~key or group=option; quote lists and values "
                "with spaces, e.g. 'model.hidden=[64,32]'",
            ) from exc
        if not parsed.key_or_group:
            raise ConfigError(
                "an override has no key",
                where=f"override {item!r}",
                fix="write key=value, e.g. trainer.max_epochs=3",
            )
        key = parsed.key_or_group
        if not item.startswith(("~", "+")) and key.startswith(_OPEN):
            item = "++" + item
        out.append(item)
    return out


def _yaml_error(exc: Exception, root: Path) -> ConfigError:
    """A YAML syntax error: the file (from the error's mark, else the first file under conf/ that
    does not parse), the line and the problem."""
    import yaml

    mark = getattr(exc, "problem_mark", None)
    named = Path(str(getattr(mark, "name", "")))
    if mark is not None and named.is_file() and named.resolve().is_relative_to(root):
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return ConfigError(
            f"YAML syntax error: {problem}",
            where=f"{named.resolve().relative_to(root).as_posix()} line {mark.line + 1}, column {mark.column + 1}",
            fix=_YAML_FIX,
        )
    for path in sorted((root / "conf").rglob("*.yaml")):
        try:
            yaml.safe_load(path.read_text())
        except yaml.YAMLError as bad:
            mark = getattr(bad, "problem_mark", None)
            at = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(bad, "problem", None) or str(bad).splitlines()[0]
            return ConfigError(
                f"YAML syntax error: {problem}",
                where=f"{path.relative_to(root).as_posix()}{at}",
                fix=_YAML_FIX,
            )
    return ConfigError(f"YAML syntax error: {exc}", fix="check the YAML files under conf/")


def _missing_option(exc: Any, root: Path, overrides: list[str]) -> ConfigError:
    path = str(exc.missing_cfg_file)
    group, _, option = path.partition("/")
    options = list(getattr(exc, "options", None) or []) or (_group_options(root, group) if group in _GROUPS else [])
    if group not in _GROUPS or not option:
        return ConfigError(f"config {path!r} not found", fix="check the defaults lists under conf/")
    source = next((o for o in overrides if o.lstrip("+").startswith(f"{group}=")), None)
    return ConfigError(
        f"unknown option {option!r} for config group {group!r}{did_you_mean(option, options)}",
        where=f"override {source!r}" if source else "a defaults list under conf/",
        key=group,
        value=option,
        fix=f"use {group}=<option> with one of: " + ", ".join(options),
    )


def compose(project: str, overrides: Sequence[str] = (), *, root: Path) -> ShipyardConfig:
    """The validated, typed config of ``project``."""
    import yaml
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    root = root.resolve()
    team, name = parse_project(project)
    projects = list_projects(root)
    if project not in projects:
        raise ConfigError(
            f"unknown project {project!r}{did_you_mean(project, projects)}",
            value=project,
            fix=f"create conf/project/{team}/{name}.yaml or pick one of: " + ", ".join(projects),
        )
    given = list(overrides)
    hydra_overrides = _parse_overrides(given)
    layers = [f"team={team}"] if (root / "conf" / "team" / f"{team}.yaml").is_file() else []
    layers += [f"project={team}/{name}", f"++project.team={team}", f"++project.name={name}"]
    locate = _Locator(root, project, given, {})
    register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(root / "conf"), version_base=None):
            cfg = hydra_compose("config", overrides=[*layers, *hydra_overrides], return_hydra_config=True)
        locate.choices = {k: v for k, v in cfg.hydra.runtime.choices.items() if v and not k.startswith("hydra")}
        with _open(cfg):
            del cfg["hydra"]
        data = OmegaConf.to_container(cfg, resolve=True)
    except MissingConfigException as exc:
        raise _missing_option(exc, root, given) from exc
    except (HydraException, OmegaConfBaseException, ValueError, AssertionError, yaml.YAMLError) as exc:
        error = _compose_error(exc, root, locate)
        if error.where is None:
            error.where = _blame(project, layers, hydra_overrides, given, root)
        if isinstance(exc, AssertionError) and error.where and error.where.startswith("override "):
            # Hydra cannot add a key under a section that is null in this config (search).
            key = error.where.removeprefix("override ").strip("'").lstrip("+~").split("=", 1)[0]
            error.message = f"cannot set {key}: the section {key.split('.')[0]!r} is empty (null) here"
            error.key = key
            error.fix = f"choose the section first ({key.split('.')[0]}=<option>), then set its keys"
        raise error from exc
    finally:
        GlobalHydra.instance().clear()
    return validate(data, root, locate)


def _blame(project: str, layers: list[str], overrides: list[str], given: list[str], root: Path) -> str | None:
    """The first override that makes Hydra fail, found by composing with one more at a time
    (only on the error path, for errors that carry no key)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    for i in range(len(overrides) + 1):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(root / "conf"), version_base=None):
                hydra_compose("config", overrides=[*layers, *overrides[:i]])
        except Exception:  # noqa: BLE001 - any failure here is the one being located
            return f"override {given[i - 1]!r}" if i else f"conf/project/{project}.yaml"
        finally:
            GlobalHydra.instance().clear()
    return None


def _open(cfg: Any) -> Any:
    from omegaconf import open_dict

    return open_dict(cfg)


def _compose_error(exc: BaseException, root: Path, locate: _Locator) -> ConfigError:
    import yaml
    from omegaconf.errors import OmegaConfBaseException

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, yaml.YAMLError):
            return _yaml_error(cause, root)
        if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
            return _schema_error(cause, locate)
        cause = cause.__cause__ or cause.__context__
    message = str(exc).split("\n")[0] or type(exc).__name__
    return ConfigError(
        f"the config cannot be composed: {message}",
        fix="check that override against the config: a section that is null (search) must be chosen first "
        "(search=<name>), and + adds only keys the schema declares",
    )


def validate(data: Any, root: Path, locate: _Locator | None = None) -> ShipyardConfig:
    """``data`` (a composed or compiled config as plain containers) as a typed, checked config."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from shipyard.core import rules

    locate = locate or _Locator(root, f"{data['project']['team']}/{data['project']['name']}", [], {})
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ShipyardConfig), data)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(
                f"required value {missing[0]} is not set",
                where=locate(missing[0]) or f"conf/project/{locate.project}.yaml",
                key=missing[0],
                fix=f"set {missing[0]} in the project file or pass {missing[0]}=VALUE",
            )
        cfg: ShipyardConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise _schema_error(exc, locate, data=data) from exc
    try:
        cfg.model = _model(cfg.model, locate)
        cfg.steps = {name: _step(name, step, locate) for name, step in cfg.steps.items()}
        if cfg.search is not None:
            cfg.search.space = _space(cfg.search.space, locate)
        rules.check(cfg, root, _value_checker(cfg, root, locate))
    except ConfigError as exc:
        exc.where = exc.where or locate(exc.key)
        raise
    return cfg


def _model(section: Any, locate: _Locator) -> ModelConf:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from shipyard.core.registry import component_schema
    from shipyard.core.rules import check_bounds

    if isinstance(section, ModelConf):
        return section
    if not isinstance(section, dict) or "_target_" not in section:
        raise ConfigError(
            "the model section has no _target_",
            key="model._target_",
            fix="choose a model with model=mlp or model=cnn, or set model._target_ to a registered component",
        )
    target = str(section["_target_"])
    schema = component_schema(target, key="model._target_")
    params = {k: v for k, v in section.items() if k != "_target_"}
    try:
        typed = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), params))
    except OmegaConfBaseException as exc:
        raise _schema_error(exc, locate, prefix="model.", schema=schema, data=params) from exc
    check_bounds(typed, "model.")
    return ModelConf(target=target, params=typed)


def _step(name: str, step: StepConf, locate: _Locator) -> StepConf:
    """A team step with its parameters typed by the dataclass its function registered."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from shipyard.core.registry import STEPS, component_schema
    from shipyard.core.rules import check_bounds

    schema = component_schema(step.function, key=f"steps.{name}.function", group=STEPS)
    if isinstance(step.params, schema):
        return step
    params = step.params if isinstance(step.params, dict) else {}
    if step.params is not None and not isinstance(step.params, dict):
        raise ConfigError(f"steps.{name}.params must be a mapping", key=f"steps.{name}.params", value=step.params)
    try:
        typed = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), params))
    except OmegaConfBaseException as exc:
        raise _schema_error(exc, locate, prefix=f"steps.{name}.params.", schema=schema, data=params) from exc
    check_bounds(typed, f"steps.{name}.params.")
    return dataclasses.replace(step, params=typed)


def _space(space: dict[str, Any], locate: _Locator) -> dict[str, ParamConf]:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from shipyard.core.rules import flatten_space

    out: dict[str, ParamConf] = {}
    for key, entry in flatten_space(space).items():
        full = f"search.space.{key}"
        if isinstance(entry, ParamConf):
            out[key] = entry
            continue
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{full} must be a mapping such as {{type: float, low: 0.001, high: 0.1}}", key=full, value=entry
            )
        try:
            out[key] = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(ParamConf), entry))  # type: ignore[assignment]
        except OmegaConfBaseException as exc:
            raise _schema_error(exc, locate, prefix=f"{full}.", schema=ParamConf) from exc
    return out


_ANY = object()  # value_check's "only check that the key exists"


def _value_checker(cfg: ShipyardConfig, root: Path, locate: _Locator) -> Any:
    """``check(report_key, key, value)``: does config ``key`` exist, and would ``value`` there
    pass the schema (types, allowed values, bounds)? The search checks its space with it."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from shipyard.core.registry import component_schema
    from shipyard.core.rules import check_bounds

    def owners_of(key: str) -> tuple[str, str, list[type]]:
        head, _, leaf = key.rpartition(".")
        if key.startswith("model."):
            found = [type(cfg.model.params)]
            space = cfg.search.space if cfg.search else {}
            if "model" in space and space["model"].choices:
                import yaml

                for option in space["model"].choices:
                    path = root / "conf" / "model" / f"{option}.yaml"
                    data = yaml.safe_load(path.read_text()) if path.is_file() else None
                    if isinstance(data, dict) and data.get("_target_"):
                        found.append(component_schema(str(data["_target_"])))
            return "model", key.removeprefix("model."), found
        owner, _ = _field(key)
        return head, leaf, [owner] if owner is not None else []

    def check(report: str, key: str, value: Any = _ANY) -> None:
        if key in ("model", "trainer"):
            return options(report, key, value)
        head, leaf, owners = owners_of(key)
        candidates = [o for o in owners if leaf in {f.name for f in dataclasses.fields(o)}]
        if not candidates:
            names = sorted({f.name for o in owners for f in dataclasses.fields(o)})
            raise ConfigError(
                f"{report}: the config has no key {key}{did_you_mean(leaf, names)}",
                key=report,
                value=key,
                fix=("valid keys here: " + ", ".join(names)) if names else "search keys that exist in the config",
            )
        if value is _ANY:
            return
        last: ConfigError | None = None
        for owner in candidates:
            try:
                node = OmegaConf.merge(OmegaConf.structured(owner), {leaf: value})
                check_bounds(OmegaConf.to_object(node), f"{head}.")
                return
            except OmegaConfBaseException as exc:
                last = _schema_error(exc, locate, prefix=f"{head}.", schema=owner)
            except ConfigError as exc:
                last = exc
        if last is not None:
            raise ConfigError(f"{report}: {last.message}", key=report, value=value, fix=last.fix)

    def options(report: str, group: str, chosen: list[str]) -> None:
        """Each chosen option of a config group must fit the project (a model's own check)."""
        import yaml
        from shipyard.core.rules import _component

        if group != "model":
            return
        for option in chosen:
            data = yaml.safe_load((root / "conf" / "model" / f"{option}.yaml").read_text()) or {}
            params = OmegaConf.to_object(OmegaConf.structured(component_schema(str(data.get("_target_")))))
            try:
                _component(params, cfg)
            except ConfigError as exc:
                raise ConfigError(
                    f"{report}: option {option!r}: {exc.message}", key=report, value=option, fix=exc.fix
                ) from exc

    return check


def section(schema: type[_T], data: Any = None, key: str = "") -> _T:
    """One typed section from plain data (missing keys take the schema's defaults), checked
    against its types, allowed values and bounds: for the Python API, tests and notebooks."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from shipyard.core.rules import check_bounds

    locate = _Locator(Path("."), "", [], {}, search_files=False)
    try:
        typed: _T = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), data or {}))  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise _schema_error(exc, locate, prefix=f"{key}." if key else "", schema=schema, data=data) from exc
    check_bounds(typed, f"{key}." if key else "")
    return typed


def load(data: dict[str, Any], root: Path) -> ShipyardConfig:
    """A compiled config (``params.yaml``) read back through the same validation."""
    return validate(data, root)


# -- back to plain data --------------------------------------------------------------------------


def dump(cfg: Any) -> Any:
    """Plain containers of a typed config (Enums as their names, the model flattened), in field
    order: what ``params.yaml`` and ``shipyard config`` show."""
    if isinstance(cfg, ModelConf):
        return dump(cfg.as_dict())
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: dump(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, enum.Enum):
        return cfg.name
    if isinstance(cfg, dict):
        return {str(k): dump(v) for k, v in cfg.items()}
    if isinstance(cfg, list | tuple):
        return [dump(v) for v in cfg]
    return cfg


def to_dict(cfg: ShipyardConfig) -> dict[str, Any]:
    out: dict[str, Any] = dump(cfg)
    return out


def config_files(project: str, root: Path, overrides: Sequence[str] = ()) -> list[str]:
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
                "config",
                overrides=[*layers, f"project={team}/{name}", *_parse_overrides(list(overrides))],
                return_hydra_config=True,
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
