"""The chosen trial as an experiment layer: ``conf/experiment/search/<team>/<name>.yaml``.

``make train PROJECT=<team>/<name> ARGS="experiment=search/<team>/<name>"`` then trains exactly
the chosen trial's config. The layer holds what differs from the project as it composes
without overrides (the sampled keys, ``search.fixed`` and the overrides the search ran with),
and an ``override /<group>: <option>`` for a chosen model or trainer option. It is checked by
composing it and comparing with the trial's own config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.core.atomic import write_text
from shipyard.core.compose import to_dict
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig
from shipyard.search._check import compose_trial
from shipyard.search._errors import SearchError
from shipyard.search._results import TrialRecord
from shipyard.search._spec import SearchSpec

__all__ = ["experiment_name", "layer_path", "write_layer"]

# Sections that describe the search itself or where a model goes, not the model.
_IGNORED = ("search",)


def experiment_name(paths: ProjectPaths) -> str:
    return f"search/{paths.team}/{paths.name}"


def layer_path(paths: ProjectPaths) -> Path:
    return paths.root / "conf" / "experiment" / f"{experiment_name(paths)}.yaml"


def _group_choices(overrides: list[str], root: Path) -> dict[str, str]:
    choices = {}
    for item in overrides:
        key, _, value = item.partition("=")
        if "." not in key and not key.startswith(("+", "~")) and (root / "conf" / key).is_dir():
            choices[key] = value
    return choices


def _diff(base: Any, new: Any, path: str) -> Any:
    """The part of ``new`` that differs from ``base`` (nested dicts; other values whole)."""
    if isinstance(base, dict) and isinstance(new, dict):
        gone = [k for k in base if k not in new]
        if gone:
            raise SearchError(
                f"the chosen trial removes {path}{gone[0]}, which a config layer cannot express",
                fix="remove the ~key override from the search and set the key in the project instead",
            )
        out = {}
        for key, value in new.items():
            if key not in base:
                out[key] = value
                continue
            sub = _diff(base[key], value, f"{path}{key}.")
            if sub is not _SAME:
                out[key] = sub
        return out or _SAME
    return _SAME if base == new else new


_SAME: Any = object()


def _strip(config: ShipyardConfig) -> dict[str, Any]:
    return {k: v for k, v in to_dict(config).items() if k not in _IGNORED}


def write_layer(
    paths: ProjectPaths, spec: SearchSpec, chosen: TrialRecord, trial_base: list[str], rule: str
) -> tuple[str, dict[str, Any]]:
    """Write the layer; return its ``experiment=`` name and the config it composes to."""
    import yaml

    root = paths.root
    overrides = [*trial_base, *chosen.overrides]
    trial_config = _strip(compose_trial(paths.project, overrides, root))
    groups = _group_choices(overrides, root)
    reference = _strip(compose_trial(paths.project, [f"{g}={v}" for g, v in groups.items()], root))
    body = _diff(reference, trial_config, "")
    body = {} if body is _SAME else body
    document: dict[str, Any] = {}
    if groups:
        document["defaults"] = [*({f"override /{g}": v} for g, v in groups.items()), "_self_"]
    document.update(body)
    name = experiment_name(paths)
    header = [
        "# @package _global_",
        f"# Chosen by the search {spec.name!r} (study {spec.study_name!r}): trial {chosen.number}.",
        f"# Rule: {rule}.",
        "# Validation: " + ", ".join(f"{m}={chosen.value(m):.6g}" for m in spec.metrics),
        f'# Train it: make train PROJECT={paths.project} ARGS="experiment={name}"',
        "# Written by `make search`; rerunning the search rewrites it.",
    ]
    text = "\n".join(header) + "\n" + (yaml.safe_dump(document, sort_keys=False) if document else "{}\n")
    write_text(layer_path(paths), text)
    composed = _strip(compose_trial(paths.project, [f"experiment={name}"], root))
    if composed != trial_config:
        raise SearchError(
            f"the layer {layer_path(paths).relative_to(root)} does not reproduce trial {chosen.number}",
            where=str(layer_path(paths).relative_to(root)),
            fix="report this as a Shipyard bug; meanwhile train with the trial's overrides: " + " ".join(overrides),
        )
    return name, composed
