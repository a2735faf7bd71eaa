"""The component registry: which ``_target_`` a config may name, and with which parameters.

Components register by entry point in the ``shipyard.components`` group; the entry point's
*name* is the ``_target_`` path users write and its *value* names a torch-free dataclass that
describes the component's parameters. Framework and team packages register the same way, so a
team adds a model without editing the framework (docs/architecture.md, invariant 6).
"""

from __future__ import annotations

import dataclasses
import importlib
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from shipyard.core.errors import ConfigError, did_you_mean

__all__ = ["GROUP", "component_schema", "import_target", "registered_targets"]

GROUP = "shipyard.components"


@cache
def registered_targets() -> dict[str, str]:
    """``{target path: "module:SchemaClass"}`` for every installed component."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def _check_registered(target: str, key: str) -> str:
    targets = registered_targets()
    if target not in targets:
        known = ", ".join(sorted(targets)) or "none installed"
        raise ConfigError(
            f"_target_ {target!r} is not a registered component{did_you_mean(target, targets)}",
            key=key,
            value=target,
            fix=f"name one of: {known}; a team registers its own under the '{GROUP}' entry point group of its package",
        )
    return targets[target]


def component_schema(target: str, key: str = "_target_") -> type[Any]:
    """The parameter dataclass registered for ``target``."""
    value = _check_registered(target, key)
    module, _, attr = value.partition(":")
    schema = getattr(importlib.import_module(module), attr)
    if not dataclasses.is_dataclass(schema):
        raise ConfigError(
            f"component {target!r} registers {value!r}, which is not a dataclass",
            fix="point the entry point at the component's parameter dataclass",
        )
    return schema  # type: ignore[return-value]


def import_target(target: str, key: str = "_target_") -> Any:
    """Import the object a registered ``_target_`` names (never an unregistered one)."""
    _check_registered(target, key)
    module, _, attr = target.rpartition(".")
    return getattr(importlib.import_module(module), attr)
