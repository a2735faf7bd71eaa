"""The checks a search needs beyond its validated config: the command line's overrides must not
fight the space, and a trial must be able to train in the search's own process."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError
from shipyard.core.schema import ShipyardConfig
from shipyard.search._spec import SearchSpec

__all__ = ["check_base_overrides", "check_in_process", "compose_trial"]


def compose_trial(project: str, overrides: list[str], root: Path) -> ShipyardConfig:
    """The validated config of one trial (split-fraction warnings are the project's business)."""
    from shipyard.core.compose import compose

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return compose(project, overrides, root=root)


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


def check_in_process(config: ShipyardConfig, spec: SearchSpec, overrides: list[str]) -> None:
    """A trial trains in the search's own process, on one device."""
    trainer = config.trainer
    devices: Any = trainer.devices
    if devices not in (1, "1", "auto") or trainer.num_nodes != 1:
        raise ConfigError(
            "a trial trains in the search's own process, on one device",
            where=spec.where,
            key="trainer.devices",
            value=devices,
            fix=f"search with trainer.devices=1 and num_nodes=1 (the trial composed: {' '.join(overrides)}); "
            "use WORKERS=N for parallel trials",
        )
