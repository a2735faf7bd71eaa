"""The parity gate's measurements: every variant run with ai-edge-litert's interpreter on the
whole test split, one row at a time and then all rows in one call (the input resized to the
split's size), against the torch bundle; batch-1 latency against torch eager in the same run.

The interpreter is the one a device's Python runs; nothing here uses litert-torch's own
wrappers, so what passes the gate is what the edge app executes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from shipyard.core.schema import EdgeConf, EdgeLatencyConf
from shipyard.deploy.edge._report import REPORT_FORMAT, finite, gate, model_file

if TYPE_CHECKING:
    import pandas as pd
    from shipyard.train.bundle import ModelBundle
    from torch import nn

__all__ = ["LiteRunner", "Timing", "parity_report", "time_calls"]


class LiteRunner:
    """One interpreter over one model, called with any number of rows."""

    def __init__(self, content: bytes, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self._interpreter = Interpreter(model_content=content, num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._rows = int(self._input["shape"][0])

    def io(self) -> dict[str, Any]:
        """Names and shapes (-1: any number of rows), for metadata.json."""
        signature = self._output.get("shape_signature", self._output["shape"])
        return {
            "input_name": self._input["name"],
            "input_shape": [int(s) for s in self._input.get("shape_signature", self._input["shape"])],
            "output_name": self._output["name"],
            "output_shape": [int(s) for s in signature],
        }

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) != self._rows:
            # What an app does for a batch: tell the interpreter the new shape, then allocate.
            self._interpreter.resize_tensor_input(self._input["index"], list(rows.shape), strict=True)
            self._interpreter.allocate_tensors()
            self._rows = len(rows)
        self._interpreter.set_tensor(self._input["index"], rows)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"])

    def run_rows(self, x: np.ndarray) -> np.ndarray:
        """Every row of ``x`` (rows × inputs, float32), one invoke each: rows × outputs."""
        return np.concatenate([self(x[i : i + 1]).copy() for i in range(len(x))], axis=0)

    def run_batch(self, x: np.ndarray) -> np.ndarray:
        """All rows of ``x`` in one invoke: rows × outputs."""
        return self(np.ascontiguousarray(x)).copy()


@dataclass(frozen=True)
class Timing:
    p50_ms: float
    p95_ms: float
    calls: int


def time_calls(call: Callable[[], Any], warmup: int, repeats: int, max_seconds: float) -> Timing:
    """Latency of ``call``: bounded by ``repeats`` timed calls and by ``max_seconds`` of wall time
    (so a slow model on a busy machine cannot stall a deploy)."""
    deadline = time.perf_counter() + max_seconds
    for _ in range(warmup):
        call()
        if time.perf_counter() > deadline:
            break
    times = []
    deadline = time.perf_counter() + max_seconds
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000.0)
        if time.perf_counter() > deadline:
            break
    p50, p95 = np.percentile(times, [50, 95])
    return Timing(float(p50), float(p95), len(times))


@dataclass(frozen=True)
class Case:
    """What every variant is compared against."""

    bundle: ModelBundle
    x: np.ndarray  # device inputs, rows × inputs
    y: np.ndarray  # encoded truth
    reference: np.ndarray  # the torch bundle's scores, rows × outputs
    metric: str
    # Differences are judged on probabilities, or for regression in units of the target's
    # training standard deviation, so one tolerance fits targets of any size.
    unit: float

    def metrics(self, scores: np.ndarray) -> dict[str, float]:
        from shipyard.train.metrics import compute_metrics

        task = self.bundle.task
        flat = scores if task == "multiclass" else scores[:, 0]
        return compute_metrics(task, self.y, flat, len(self.bundle.preprocessor.classes))

    def labels(self, scores: np.ndarray) -> np.ndarray:
        if self.bundle.task == "multiclass":
            return scores.argmax(axis=1)
        return (scores[:, 0] >= 0.5).astype(np.int64)


def _torch_side(case: Case, module: nn.Module, latency: EdgeLatencyConf) -> dict[str, Any]:
    import torch

    row = np.ascontiguousarray(case.x[:1])
    with torch.inference_mode():
        folded = module(torch.from_numpy(case.x)).double().numpy()
        timing = time_calls(
            lambda: module(torch.from_numpy(row)).numpy(), latency.warmup, latency.repeats, latency.max_seconds
        )
    metrics = case.metrics(case.reference)
    return {
        "metric": finite(metrics[case.metric]),
        "metrics": {k: finite(v) for k, v in metrics.items()},
        "latency_p50_ms": timing.p50_ms,
        "latency_p95_ms": timing.p95_ms,
        "latency_calls": timing.calls,
        # The folded graph in torch eager against the training code path: tells a folding
        # mistake from a conversion mistake when fp32 fails.
        "folded_max_abs_diff": finite(float(np.max(np.abs(folded - case.reference))) / case.unit),
    }


def _quality(case: Case, scores: np.ndarray, torch_metric: float | None) -> dict[str, Any]:
    diff = float(np.max(np.abs(scores - case.reference)))
    metrics = case.metrics(scores)
    value = finite(metrics[case.metric])
    agreement = None
    if case.bundle.task != "regression":
        agreement = float(np.mean(case.labels(scores) == case.labels(case.reference)))
    return {
        "metric_name": case.metric,
        "metric": value,
        "metric_delta": None if value is None or torch_metric is None else value - torch_metric,
        "metrics": {k: finite(v) for k, v in metrics.items()},
        "max_abs_diff": finite(diff),
        "max_abs_diff_scaled": finite(diff / case.unit),
        "label_agreement": agreement,
    }


def _variant_side(
    case: Case,
    variant: str,
    runner: LiteRunner,
    files: dict[str, bytes],
    torch_side: dict[str, Any],
    settings: EdgeConf,
) -> dict[str, Any]:
    latency = settings.latency
    row = np.ascontiguousarray(case.x[:1])
    entry = _quality(case, runner.run_rows(case.x).astype(np.float64), torch_side["metric"])
    # The same rows in one call: a batch must score exactly as well as single rows do.
    whole = _quality(case, runner.run_batch(case.x).astype(np.float64), torch_side["metric"])
    timing = time_calls(lambda: runner(row), latency.warmup, latency.repeats, latency.max_seconds)
    tolerance = settings.tolerance[variant]
    entry.update(
        file=model_file(variant),
        size_bytes=len(files[variant]),
        size_vs_fp32=len(files[variant]) / len(files["fp32"]),
        latency_p50_ms=timing.p50_ms,
        latency_p95_ms=timing.p95_ms,
        latency_calls=timing.calls,
        latency_vs_torch=timing.p50_ms / torch_side["latency_p50_ms"],
        tolerance={"max_abs_diff": tolerance.max_abs_diff, "max_metric_delta": tolerance.max_metric_delta},
    )
    entry["batch"] = {
        "rows": len(case.x),
        **{k: whole[k] for k in ("metric", "metric_delta", "max_abs_diff", "max_abs_diff_scaled", "label_agreement")},
    }
    rows = len(case.x)
    entry["failures"] = gate(entry, tolerance) + [f"at batch {rows}: {f}" for f in gate(whole, tolerance)]
    entry["passed"] = not entry["failures"]
    return entry


def parity_report(
    bundle: ModelBundle,
    module: nn.Module,
    files: dict[str, bytes],
    frame: pd.DataFrame,
    x: np.ndarray,
    y: np.ndarray,
    settings: EdgeConf,
    metric: str,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parity report of every variant in ``files``, and the model's I/O names and shapes."""
    import ai_edge_litert
    import litert_torch
    import torch
    from shipyard.deploy.edge._graph import reference_scores

    pre = bundle.preprocessor
    unit = pre.target_scale if pre.task == "regression" else 1.0
    case = Case(bundle, x, y, reference_scores(bundle, frame), metric, unit)
    torch_side = _torch_side(case, module, settings.latency)
    variants: dict[str, Any] = {}
    io: dict[str, Any] = {}
    for variant in files:
        runner = LiteRunner(files[variant], settings.latency.threads)
        variants[variant] = _variant_side(case, variant, runner, files, torch_side, settings)
        io = io or runner.io()
    report = {
        "format": REPORT_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "task": pre.task,
        "metric": metric,
        "test_rows": len(x),
        "batch_sizes": [1, len(x)],
        "torch": torch_side,
        "variants": variants,
        "passed": all(e["passed"] for e in variants.values()),
        "tools": {
            "torch": torch.__version__,
            "litert_torch": litert_torch.__version__,
            "ai_edge_litert": getattr(ai_edge_litert, "__version__", "unknown"),
            "interpreter_threads": settings.latency.threads,
        },
    }
    return report, io
