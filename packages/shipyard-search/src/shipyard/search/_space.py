"""From a search space to Optuna suggestions and back to Hydra overrides."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from shipyard.search._spec import Param

if TYPE_CHECKING:
    import optuna

__all__ = ["grid_points", "hydra_value", "overrides_for", "sample"]

_BARE = re.compile(r"^[A-Za-z_][\w\-./]*$")
_RESERVED = {"null", "true", "false", "inf", "nan", "none"}
# Grids larger than this are refused: a grid sampler would never finish them.
MAX_GRID = 100_000


def hydra_value(value: Any) -> str:
    """``value`` in Hydra's override grammar (quoted where a bare word would be misread)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return (
            repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
        )
    if isinstance(value, str):
        if _BARE.match(value) and value.lower() not in _RESERVED:
            return value
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as a Hydra override")


def overrides_for(values: dict[str, Any], params: tuple[Param, ...], fixed: dict[str, Any]) -> list[str]:
    """Hydra overrides for one trial: group choices first (they pick the config the value
    overrides then apply to), then the fixed keys, then the sampled ones."""
    kinds = {p.key: p.kind for p in params}
    groups = [f"{k}={v}" for k, v in values.items() if kinds.get(k) == "group"]
    keys = [f"{k}={hydra_value(v)}" for k, v in fixed.items()]
    keys += [f"{k}={hydra_value(v)}" for k, v in values.items() if kinds.get(k) != "group"]
    return groups + keys


def sample(trial: optuna.Trial, params: tuple[Param, ...]) -> dict[str, Any]:
    """Suggest every active parameter (define-by-run: a ``when`` condition skips a key)."""
    values: dict[str, Any] = {}
    for p in params:
        if not p.active(values):
            continue
        if p.kind == "int":
            values[p.key] = trial.suggest_int(p.key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)  # type: ignore[arg-type]
        elif p.kind == "float":
            values[p.key] = trial.suggest_float(p.key, p.low, p.high, step=p.step, log=p.log)  # type: ignore[arg-type]
        else:
            values[p.key] = p.decode(trial.suggest_categorical(p.key, p.labels))
    return values


def _finite(p: Param) -> list[Any] | None:
    if p.kind in ("categorical", "group"):
        return list(p.labels)
    if p.kind == "int" and not p.log:
        return list(range(int(p.low), int(p.high) + 1, int(p.step or 1)))  # type: ignore[arg-type]
    if p.kind == "float" and p.step is not None:
        n = round((p.high - p.low) / p.step)  # type: ignore[operator]
        return [round(p.low + i * p.step, 12) for i in range(n + 1)]  # type: ignore[operator]
    return None


def grid_points(params: tuple[Param, ...], where: str | None = None) -> list[dict[str, Any]]:
    """Every distinct assignment of a finite space, as Optuna param values (labels for
    categorical keys), honouring ``when`` (an inactive key is left out, not multiplied)."""
    from shipyard.core.errors import ConfigError

    axes: list[list[Any]] = []
    for p in params:
        values = _finite(p)
        if values is None:
            raise ConfigError(
                f"the grid sampler needs a finite set of values for {p.key}",
                where=where,
                key=f"search.space.{p.key}",
                fix="give it a step (and no log scale), use type categorical, or pick another sampler",
            )
        axes.append(values)
    size = math.prod(len(a) for a in axes)
    if size > MAX_GRID:
        raise ConfigError(
            f"the grid has {size} points",
            where=where,
            key="search.space",
            fix=f"coarsen the steps or use another sampler (at most {MAX_GRID} grid points)",
        )
    seen: dict[tuple[tuple[str, Any], ...], dict[str, Any]] = {}
    for combo in itertools.product(*axes):
        point = dict(_active(params, combo))
        seen.setdefault(tuple(sorted(point.items(), key=lambda kv: kv[0])), point)
    return list(seen.values())


def _active(params: tuple[Param, ...], combo: tuple[Any, ...]) -> Iterator[tuple[str, Any]]:
    decoded: dict[str, Any] = {}
    for p, label in zip(params, combo, strict=True):
        if p.active(decoded):
            decoded[p.key] = p.decode(label) if p.kind in ("categorical", "group") else label
            yield p.key, label
