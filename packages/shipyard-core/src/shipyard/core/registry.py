"""The component registry: which ``_target_`` a config may name, and with which parameters.

Components register by entry point in the ``shipyard.components`` group; the entry point's
*name* is the ``_target_`` path users write and its *value* names a torch-free dataclass that
describes the component's parameters. Framework and team packages register the same way, so a
team adds a model without editing the framework (docs/architecture.md, invariant 6).

A team's own pipeline steps register the same way in the ``shipyard.steps`` group: the name is
the step function's dotted path (what a project's ``steps.<name>.function`` says), the value its
parameter dataclass. Only registered functions may be named.
"""

from __future__ import annotations

import dataclasses
import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from shipyard.core.errors import ConfigError, did_you_mean

__all__ = ["GROUP", "STEPS", "component_schema", "import_target", "registered_targets"]

GROUP = "shipyard.components"
STEPS = "shipyard.steps"
_WHAT = {GROUP: "component", STEPS: "step function"}


@cache
def registered_targets(group: str = GROUP) -> dict[str, str]:
    """``{target path: "module:SchemaClass"}`` for everything installed in ``group``."""
    return {ep.name: ep.value for ep in entry_points(group=group)}


def _check_registered(target: str, key: str, group: str) -> str:
    targets = registered_targets(group)
    what = _WHAT.get(group, "entry point")
    if target not in targets:
        known = ", ".join(sorted(targets)) or "none installed"
        raise ConfigError(
            f"{target!r} is not a registered {what}{did_you_mean(target, targets)}",
            key=key,
            value=target,
            fix=f"name one of: {known}; a team registers its own under the '{group}' entry point group of its package",
        )
    return targets[target]


def component_schema(target: str, key: str = "_target_", group: str = GROUP) -> type[Any]:
    """The parameter dataclass registered for ``target``."""
    value = _check_registered(target, key, group)
    module, _, attr = value.partition(":")
    schema = getattr(importlib.import_module(module), attr)
    if not dataclasses.is_dataclass(schema):
        raise ConfigError(
            f"{_WHAT.get(group, 'entry point')} {target!r} registers {value!r}, which is not a dataclass",
            fix="point the entry point at the parameter dataclass",
        )
    return schema  # type: ignore[return-value]


def import_target(target: str, key: str = "_target_", group: str = GROUP) -> Any:
    """Import the object a registered ``_target_`` names (never an unregistered one)."""
    _check_registered(target, key, group)
    module, _, attr = target.rpartition(".")
    return getattr(importlib.import_module(module), attr)
