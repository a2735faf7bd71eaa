"""Write docs/configuration.md from the schema (``make docs``); ``--check`` fails when it is stale.

Every key of :class:`shipyard.core.schema.ShipyardConfig` with its type, default, allowed values,
bounds and one line of meaning, then the parameters of every registered model component.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any

from omegaconf import MISSING
from shipyard.core.registry import component_schema, registered_targets
from shipyard.core.schema import ParamConf, ShipyardConfig

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "configuration.md"

HEADER = """# Configuration reference

Generated from the schema (`packages/shipyard-core/src/shipyard/core/schema.py`) by `make docs`;
CI checks that it is current. Every default is written once, in the schema: the YAML under
`conf/` only says what differs. A key is set in a project file (`conf/project/<team>/<name>.yaml`),
a team file, an experiment, or on the command line (`make train ARGS="trainer.max_epochs=10"`).
Composing checks every key, type, allowed value and bound here, and the cross-field rules in
`shipyard.core.rules`; a mistake stops with one message naming the key, the value and the fix.

"""


def _optional(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else hint), True
    return hint, False


def _type(hint: Any) -> str:
    inner, optional = _optional(hint)
    origin = typing.get_origin(inner)
    if origin is list:
        text = f"list of {_type(typing.get_args(inner)[0])}"
    elif origin is dict:
        text = f"map of {_type(typing.get_args(inner)[1])}"
    elif isinstance(inner, type) and issubclass(inner, enum.Enum):
        text = "choice"
    elif inner is Any:
        text = "any"
    elif isinstance(inner, type):
        names = {"str": "text", "int": "integer", "float": "number", "bool": "boolean"}
        text = names.get(inner.__name__, inner.__name__)
    else:
        text = str(inner)
    return f"{text} or null" if optional else text


def _enum_of(hint: Any) -> type[enum.Enum] | None:
    inner, _ = _optional(hint)
    if typing.get_origin(inner) is list:
        inner = typing.get_args(inner)[0]
    return inner if isinstance(inner, type) and issubclass(inner, enum.Enum) else None


def _default(field: dataclasses.Field[Any], owner: Any) -> str:
    """The default of ``field``, read from ``owner`` (the parent's default instance) when given:
    a nested section's defaults can differ from its class's (checks.correlation, checks.leakage)."""
    if owner is not None:
        value = getattr(owner, field.name)
    elif field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "**required**"
    if value is MISSING or value == MISSING:
        return "**required**"
    return f"`{json.dumps(_plain(value))}`"


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.name
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _bounds(field: dataclasses.Field[Any]) -> str:
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    return ", ".join(f"{words[k]} {field.metadata[k]:g}" for k in words if k in field.metadata)


def _nested(hint: Any) -> tuple[type | None, bool]:
    """The dataclass a field holds (itself, or the values of a map), and whether it is a map."""
    inner, _ = _optional(hint)
    mapped = typing.get_origin(inner) in (dict, list)
    if mapped:
        inner = typing.get_args(inner)[-1]
    return (inner, mapped) if isinstance(inner, type) and dataclasses.is_dataclass(inner) else (None, False)


def _instance(schema: type, field: dataclasses.Field[Any], owner: Any) -> Any:
    if owner is not None:
        return getattr(owner, field.name)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _section(title: str, schema: type, owner: Any, doc: str, level: int = 2) -> list[str]:
    """A heading, the table of ``schema``'s own keys, then a section per nested dataclass."""
    rows, nested = [], []
    hints = typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        key, hint = f"{title}.{field.name}" if title else field.name, hints[field.name]
        inner, mapped = _nested(hint)
        value = _instance(schema, field, owner)
        if inner is not None and not mapped:
            nested.append((key, inner, value if dataclasses.is_dataclass(value) else None, field))
            continue
        choices = _enum_of(hint)
        allowed = ", ".join(f"`{m.name}`" for m in choices) if choices else _bounds(field)
        meaning = str(field.metadata.get("doc", "")).replace("|", "\\|")
        rows.append(f"| `{key}` | {_type(hint)} | {_default(field, owner)} | {allowed} | {meaning} |")
        if inner is not None:
            item = f"{key}[i]" if typing.get_origin(_optional(hint)[0]) is list else f"{key}.<name>"
            nested.append((item, inner, None, field))
    out = [f"{'#' * level} `{title}`", ""] if title else []
    if doc:
        out += [doc, ""]
    if rows:
        out += ["| key | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |", *rows, ""]
    for key, inner, value, field in nested:
        out += _section(key, inner, value, str(field.metadata.get("doc", "")), min(level + 1, 4))
    return out


def render() -> str:
    lines = [HEADER.rstrip(), "", "Top-level keys:", ""]
    lines += _section("", ShipyardConfig, None, "", 1)
    lines += _section("search.space.<key>", ParamConf, None, "One entry of the search space.", 2)
    lines += [
        "## Models",
        "",
        "`model._target_` names a registered component (entry point group `shipyard.components`);",
        "the other keys of `model` are its parameters, checked against the schema it registered.",
        "",
    ]
    for target in sorted(registered_targets()):
        lines += [f"### `model` = `{target}`", ""]
        lines += _section("model", component_schema(target), None, "", 4)[2:]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when docs/configuration.md is not current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not TARGET.is_file() or TARGET.read_text() != text:
            print(f"{TARGET.relative_to(ROOT)} is not current: run `make docs` and commit it", file=sys.stderr)
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
