"""Evaluate a bundle on validation and test: quality, latency per row, size."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from shipyard.core.schema import EvaluateConf
from shipyard.train.bundle import ModelBundle
from shipyard.train.metrics import compute_metrics

__all__ = ["confusion_rows", "evaluate_bundle", "latency"]


def _truth(bundle: ModelBundle, frame: pd.DataFrame) -> np.ndarray:
    pre = bundle.preprocessor
    if bundle.task == "regression":
        return frame[pre.target].to_numpy(dtype=np.float64)
    return pre.encode_target(frame[pre.target].tolist())


def latency(
    bundle: ModelBundle, frame: pd.DataFrame, batch_size: int, repeats: int, warmup: int, budget_s: float = 0.5
) -> tuple[float, float]:
    """p50 and p95 milliseconds *per row* of preprocessing + forward at ``batch_size``, over
    ``repeats`` runs or ``budget_s`` seconds, whichever ends first (at least 10 runs)."""
    rows = frame.iloc[np.arange(batch_size) % len(frame)]
    columns = {name: rows[name].tolist() for name in bundle.preprocessor.features}
    for _ in range(warmup):
        bundle.predict_scores(columns)
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats and (len(times) < 10 or time.perf_counter() < deadline):
        start = time.perf_counter()
        bundle.predict_scores(columns)
        times.append((time.perf_counter() - start) * 1000 / batch_size)
    p50, p95 = np.percentile(times, [50, 95])
    return float(p50), float(p95)


def confusion_rows(bundle: ModelBundle, frame: pd.DataFrame) -> pd.DataFrame:
    """(actual, predicted) per test row, for DVC's confusion-matrix plot."""
    labels = bundle.labels(bundle.predict_scores(frame))
    return pd.DataFrame(
        {"actual": frame[bundle.preprocessor.target].astype(str).tolist(), "predicted": [str(v) for v in labels]}
    )


def evaluate_bundle(
    bundle: ModelBundle, val: pd.DataFrame, test: pd.DataFrame | None, conf: EvaluateConf, size_bytes: int
) -> dict[str, float]:
    """Flat metrics: ``val/<m>``, ``test/<m>``, ``latency_p50_ms[_b<N>]``, ``model_size_bytes``."""
    metrics: dict[str, float] = {}
    n_classes = len(bundle.preprocessor.classes)
    for split, frame in (("val", val), ("test", test)):
        if frame is None:
            continue
        scores = bundle.predict_scores(frame)
        for name, value in compute_metrics(bundle.task, _truth(bundle, frame), scores, n_classes).items():
            metrics[f"{split}/{name}"] = value
    for batch_size in conf.latency_batch_sizes:
        p50, p95 = latency(bundle, val, int(batch_size), conf.latency_repeats, conf.latency_warmup)
        suffix = "" if batch_size == 1 else f"_b{batch_size}"
        metrics[f"latency_p50_ms{suffix}"] = round(p50, 5)
        metrics[f"latency_p95_ms{suffix}"] = round(p95, 5)
    metrics["model_size_bytes"] = float(size_bytes)
    metrics["params"] = float(sum(p.numel() for p in bundle.net.parameters()))
    return metrics
