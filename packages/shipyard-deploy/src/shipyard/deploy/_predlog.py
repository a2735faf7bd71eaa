"""The prediction log of a deployment target: its settings, as built into the target's folder,
and the log opened from them where the target runs (through :mod:`shipyard.predlog`, never the
monitor)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shipyard.core.schema import PredictionLogConf

__all__ = ["feature_kinds", "log_spec", "open_target_log"]


def feature_kinds(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, "category" | "number") of each feature a log records: none for an image model
    (one feature per pixel; its log keeps the prediction)."""
    pre = meta["preprocessor"]
    if pre.get("shape"):
        return []
    categorical = set(pre.get("categorical") or {})
    return [(str(n), "category" if n in categorical else "number") for n in pre["features"]]


def log_spec(conf: PredictionLogConf | Mapping[str, Any] | None, default_path: str) -> dict[str, Any] | None:
    """What a built folder records of ``monitor.log`` (``default_path``, repository-relative,
    where the config names no place); None when logging is off."""
    from shipyard.core.compose import dump, section

    settings = conf if isinstance(conf, PredictionLogConf) else section(PredictionLogConf, conf, "monitor.log")
    if not settings.enabled or settings.sample_rate <= 0:
        return None
    data = dict(dump(settings))
    data["path"] = settings.path or default_path
    return data


def open_target_log(
    spec: Mapping[str, Any] | None,
    near: Path,
    features: list[tuple[str, str]],
    *,
    task: str,
    source: str,
    model_version: str,
    block: bool,
    on_drop: Callable[[int], None] | None = None,
    on_write: Callable[[int], None] | None = None,
) -> Any:
    """The :class:`~shipyard.predlog.PredictionLog` a built target writes, or None when its
    folder records no log. A relative path is the repository's that holds ``near`` (else the
    working directory's); ``$SHIPYARD_PREDICTION_LOG`` overrides the place."""
    if not spec:
        return None
    from shipyard.deploy._paths import repo_root
    from shipyard.predlog import open_log, resolve_location

    base = repo_root(near) or Path.cwd()
    location = resolve_location(spec.get("path"), spec.get("url"), base)
    return open_log(
        location,
        features,
        task=task,
        source=source,
        model_version=model_version,
        sample_rate=float(spec.get("sample_rate", 1.0)),
        flush_rows=int(spec.get("flush_rows", 5000)),
        flush_seconds=float(spec.get("flush_seconds", 5.0)),
        queue_rows=int(spec.get("queue_rows", 100_000)),
        block=block,
        on_drop=on_drop,
        on_write=on_write,
    )
