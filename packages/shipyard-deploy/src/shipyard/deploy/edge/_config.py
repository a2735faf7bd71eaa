"""The ``deploy.edge`` section: defaults, validation, and the typed settings the builder uses.

``conf/deploy/edge/default.yaml`` holds the defaults users see; the same values are repeated
here so that :func:`edge_settings` also accepts a partial section (tests, the Python API).
Every mistake is a :class:`ConfigError` naming the full key (``deploy.edge.…``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.core.errors import ConfigError, did_you_mean

__all__ = ["VARIANTS", "EdgeSettings", "LatencySettings", "Tolerance", "edge_settings"]

# fp32 is always built: it is the graph the quantized variants are made from.
VARIANTS = ("fp32", "int8", "fp16")
_WHERE = "deploy.edge (conf/deploy/edge/default.yaml, or the project's deploy.edge)"
_KEYS = ("variants", "metric", "tolerance", "latency", "keep_tensor_names")
_TOLERANCE_KEYS = ("max_abs_diff", "max_metric_delta")
_LATENCY_KEYS = ("warmup", "repeats", "max_seconds", "threads")
DEFAULT_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "r2"}
_DEFAULT_TOLERANCE = {
    "fp32": {"max_abs_diff": 1e-4, "max_metric_delta": None},
    "int8": {"max_abs_diff": None, "max_metric_delta": 0.02},
    "fp16": {"max_abs_diff": None, "max_metric_delta": 0.01},
}


@dataclass(frozen=True)
class Tolerance:
    """``None`` switches a check off."""

    max_abs_diff: float | None = None
    max_metric_delta: float | None = None


@dataclass(frozen=True)
class LatencySettings:
    warmup: int = 20
    repeats: int = 200
    max_seconds: float = 2.0
    threads: int = 1


@dataclass(frozen=True)
class EdgeSettings:
    variants: tuple[str, ...] = VARIANTS
    metric: str = "auto"
    tolerance: dict[str, Tolerance] = field(default_factory=dict)
    latency: LatencySettings = field(default_factory=LatencySettings)
    keep_tensor_names: bool = False

    def metric_for(self, task: str) -> str:
        return DEFAULT_METRIC[task] if self.metric == "auto" else self.metric


def _check_keys(section: Mapping[str, Any], allowed: tuple[str, ...], prefix: str) -> None:
    for key in section:
        if key not in allowed:
            raise ConfigError(
                f"unknown key {prefix}.{key}{did_you_mean(str(key), allowed)}",
                where=_WHERE,
                key=f"{prefix}.{key}",
                fix="valid keys here: " + ", ".join(allowed),
            )


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{key} must be a mapping", where=_WHERE, key=key, value=value, fix=f"write {key} as key: value pairs"
        )
    return value


def _number(value: Any, key: str, *, integer: bool = False, positive: bool = False, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value < 0 or (positive and value == 0):
        what = "a positive whole number" if integer and positive else "a number ≥ 0"
        raise ConfigError(
            f"{key} must be {what}" + (" or null (check off)" if optional else ""),
            where=_WHERE,
            key=key,
            value=value,
            fix=f"set {key} to {what}",
        )
    return value


def _variants(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            "deploy.edge.variants must be a list of variant names",
            where=_WHERE,
            key="deploy.edge.variants",
            value=value,
            fix="e.g. variants: [fp32, int8, fp16]",
        )
    for name in value:
        if name not in VARIANTS:
            raise ConfigError(
                f"unknown edge variant {name!r}{did_you_mean(name, VARIANTS)}",
                where=_WHERE,
                key="deploy.edge.variants",
                value=name,
                fix="choose from: " + ", ".join(VARIANTS),
            )
    # fp32 first and always: the quantized variants are derived from it.
    return tuple(v for v in VARIANTS if v == "fp32" or v in value)


def _tolerances(value: Any) -> dict[str, Tolerance]:
    section = _mapping(value, "deploy.edge.tolerance")
    _check_keys(section, VARIANTS, "deploy.edge.tolerance")
    out = {}
    for variant in VARIANTS:
        given = _mapping(section.get(variant), f"deploy.edge.tolerance.{variant}")
        _check_keys(given, _TOLERANCE_KEYS, f"deploy.edge.tolerance.{variant}")
        merged = {**_DEFAULT_TOLERANCE[variant], **given}
        out[variant] = Tolerance(
            **{k: _number(merged[k], f"deploy.edge.tolerance.{variant}.{k}", optional=True) for k in _TOLERANCE_KEYS}
        )
    return out


def _latency(value: Any) -> LatencySettings:
    section = _mapping(value, "deploy.edge.latency")
    _check_keys(section, _LATENCY_KEYS, "deploy.edge.latency")
    d = LatencySettings()
    key = "deploy.edge.latency."
    return LatencySettings(
        warmup=_number(section.get("warmup", d.warmup), key + "warmup", integer=True),
        repeats=_number(section.get("repeats", d.repeats), key + "repeats", integer=True, positive=True),
        max_seconds=float(_number(section.get("max_seconds", d.max_seconds), key + "max_seconds", positive=True)),
        threads=_number(section.get("threads", d.threads), key + "threads", integer=True, positive=True),
    )


def edge_settings(conf: Mapping[str, Any] | None) -> EdgeSettings:
    """Validate a ``deploy.edge`` section (missing keys take their defaults)."""
    section = _mapping(conf, "deploy.edge")
    _check_keys(section, _KEYS, "deploy.edge")
    metric = section.get("metric", "auto")
    if not isinstance(metric, str) or not metric:
        raise ConfigError(
            "deploy.edge.metric must be a metric name",
            where=_WHERE,
            key="deploy.edge.metric",
            value=metric,
            fix="auto, or a metric of the evaluate stage: accuracy, f1, roc_auc, rmse, mae, r2, ...",
        )
    keep = section.get("keep_tensor_names", False)
    if not isinstance(keep, bool):
        raise ConfigError(
            "deploy.edge.keep_tensor_names must be true or false",
            where=_WHERE,
            key="deploy.edge.keep_tensor_names",
            value=keep,
            fix="true keeps litert-torch's module-path tensor names (for debugging the graph)",
        )
    return EdgeSettings(
        keep_tensor_names=keep,
        variants=_variants(section.get("variants", list(VARIANTS))),
        metric=metric,
        tolerance=_tolerances(section.get("tolerance")),
        latency=_latency(section.get("latency")),
    )
