"""Check a search against the real config before any trial: compose the space's corners.

Every value a trial can take goes through :func:`shipyard.core.compose.compose`, the same
validation ``make train`` applies, so an unknown key, a value of the wrong type or a model
option that does not fit the project fails here, named by its ``search.space`` key.
"""

from __future__ import annotations

import itertools
import re
import warnings
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError
from shipyard.search._space import overrides_for
from shipyard.search._spec import Param, SearchSpec

__all__ = ["check_base_overrides", "check_space", "compose_trial"]

# More option combinations than this are checked one option at a time.
_MAX_COMBOS = 32
_OVERRIDE_IN = re.compile(r"^override '(.*)'$")


def compose_trial(project: str, overrides: list[str], root: Path) -> dict[str, Any]:
    """The resolved config of one trial (split-fraction warnings are the project's business)."""
    from shipyard.core.compose import compose, to_dict

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return to_dict(compose(project, overrides, root=root))


def check_base_overrides(base: list[str], spec: SearchSpec) -> None:
    """Overrides given with the search apply to every trial and must not fight the space."""
    keys = {p.key for p in spec.params} | set(spec.fixed)
    for item in base:
        key = item.lstrip("+~").split("=", 1)[0]
        if key == "experiment":
            raise ConfigError(
                f"a search cannot run on top of {item!r}",
                where=f"override {item!r}",
                key="experiment",
                fix="the search writes its result as experiment=search/<team>/<name>; pass the experiment's "
                "keys as overrides or put them under search.fixed",
            )
        if key in keys:
            raise ConfigError(
                f"{key} is set by the override {item!r} and searched",
                where=f"override {item!r}",
                key=f"search.space.{key}" if key in {p.key for p in spec.params} else f"search.fixed.{key}",
                fix="drop the override, or remove the key from the search",
            )


def _corners(spec: SearchSpec) -> list[dict[str, Any]]:
    """Assignments that together visit every option of every group, both ends of every range
    and every choice of every categorical key."""
    groups = [p for p in spec.params if p.kind == "group"]
    combos = list(itertools.product(*(p.choices for p in groups)))
    if len(combos) > _MAX_COMBOS:
        width = max(len(p.choices) for p in groups)
        combos = [tuple(p.choices[i % len(p.choices)] for p in groups) for i in range(width)]
    width = max([2] + [len(p.choices) for p in spec.params if p.kind == "categorical"])
    corners = []
    for combo in combos:
        for k in range(width):
            values: dict[str, Any] = {}
            chosen = dict(zip((p.key for p in groups), combo, strict=True))
            for p in spec.params:
                if p.kind == "group":
                    values[p.key] = chosen[p.key]
                elif p.active(values):
                    values[p.key] = _pick(p, k)
            corners.append(values)
    return corners


def _pick(p: Param, k: int) -> Any:
    if p.kind == "categorical":
        return p.choices[k % len(p.choices)]
    return p.low if k % 2 == 0 else p.high


def _blame(exc: ConfigError, values: dict[str, Any], spec: SearchSpec, overrides: list[str]) -> str:
    """The search key behind a compose error."""
    found = _OVERRIDE_IN.match(exc.where or "")
    text = found.group(1) if found else None
    for key in list(values) + list(spec.fixed):
        if text is not None and text.split("=", 1)[0] == key:
            return f"search.fixed.{key}" if key in spec.fixed else f"search.space.{key}"
    group = next((p.key for p in spec.params if p.kind == "group"), None)
    if exc.key and exc.key in values:
        return f"search.space.{exc.key}"
    return f"search.space.{group}" if group else f"search.space ({exc.key})"


def check_space(project: str, base: list[str], spec: SearchSpec, root: Path) -> dict[str, Any]:
    """Compose every corner of the space; return the base trial config (no sampled keys)."""
    check_base_overrides(base, spec)
    reference = None
    for values in _corners(spec):
        overrides = [*base, *overrides_for(values, spec.params, spec.fixed)]
        try:
            config = compose_trial(project, overrides, root)
        except ConfigError as exc:
            key = _blame(exc, values, spec, overrides)
            raise ConfigError(
                f"{key}: {exc.message}",
                where=spec.where,
                key=key,
                value=values.get(key.removeprefix("search.space."), exc.value),
                fix=f"{exc.fix or 'fix the value'} (the trial composed: {' '.join(overrides)})",
            ) from exc
        _check_in_process(config, spec, overrides)
        reference = reference or config
    return reference or compose_trial(project, base, root)


def _check_in_process(config: dict[str, Any], spec: SearchSpec, overrides: list[str]) -> None:
    trainer = config["trainer"]
    devices = trainer.get("devices", 1)
    if devices not in (1, "1", "auto") or int(trainer.get("num_nodes", 1)) != 1:
        raise ConfigError(
            "a trial trains in the search's own process, on one device",
            where=spec.where,
            key="trainer.devices",
            value=devices,
            fix=f"search with trainer.devices=1 and num_nodes=1 (the trial composed: {' '.join(overrides)}); "
            "use WORKERS=N for parallel trials",
        )
