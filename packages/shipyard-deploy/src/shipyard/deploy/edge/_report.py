"""What the edge target writes beside the models: ``metadata.json`` for the device and
``parity_report.json`` for people and pipelines, plus their short forms (status, flat metrics)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.schema import EdgeVariant, ToleranceConf

if TYPE_CHECKING:
    from shipyard.train.bundle import ModelBundle

__all__ = [
    "METADATA",
    "METADATA_FORMAT",
    "REPORT",
    "REPORT_FORMAT",
    "edge_metrics",
    "edge_status",
    "gate",
    "metadata",
    "model_file",
    "rejected_dir",
]

METADATA = "metadata.json"
REPORT = "parity_report.json"
METADATA_FORMAT = "shipyard-edge/1"
REPORT_FORMAT = "shipyard-edge-report/1"
OUTPUT_KIND = {"binary": "probability", "multiclass": "probabilities", "regression": "value"}


def model_file(variant: str) -> str:
    return f"model_{variant}.tflite"


def rejected_dir(out_dir: Path) -> Path:
    """Where a candidate that failed the gate is kept for inspection (the deployed one stays)."""
    return out_dir.with_name(out_dir.name + ".rejected")


def finite(value: float | None) -> float | None:
    """JSON has no NaN: an undefined number (R² of one row, say) is written as null."""
    return None if value is None or not math.isfinite(value) else float(value)


def metadata(
    bundle: ModelBundle, *, project: str, version: str, order: list[str], io: dict[str, Any], files: dict[str, bytes]
) -> dict[str, Any]:
    """Everything a device needs besides the flatbuffer: no torch, no Shipyard."""
    pre = bundle.preprocessor
    schema = {f["name"]: f for f in bundle.meta.get("feature_schema", [])}
    numeric = [
        {
            "name": n,
            "position": i,
            "fill": fill,
            "min": schema.get(n, {}).get("min"),
            "max": schema.get(n, {}).get("max"),
        }
        for i, (n, fill) in enumerate(zip(pre.numeric_inputs, pre.fill, strict=True))
    ]
    # A date/time feature's parts: the device computes each from the date (examples/edge_app).
    parts = {f"{c}.{p}": {"column": c, "part": p} for c, names in pre.datetime.items() for p in names}
    for entry in numeric:
        if entry["name"] in parts:
            entry["datetime"] = parts[entry["name"]]
            entry["min"] = entry["max"] = None
    n_numeric = len(numeric)
    categorical = [
        {"name": n, "position": n_numeric + j, "vocabulary": list(vocab), "missing_code": -1}
        for j, (n, vocab) in enumerate(pre.categorical.items())
    ]
    return {
        "format": METADATA_FORMAT,
        "project": project,
        "model_version": version,
        "weights_sha256": bundle.weights_sha256,
        "task": pre.task,
        "input": {
            "name": io["input_name"],
            "dtype": "float32",
            # -1: any number of rows (Interpreter.resize_tensor_input, then allocate_tensors).
            "shape": [-1, len(order)],
            "features": order,
            "numeric": numeric,
            "categorical": categorical,
            "image_shape": list(pre.shape) if pre.shape else None,
            "missing": "numeric: NaN (the graph imputes the training fill); categorical: -1",
            "categorical_encoding": "send the value's index in its vocabulary; the graph encodes it "
            + ("one-hot" if pre.encoding == "onehot" else "as that index (ordinal)"),
        },
        "output": {
            "name": io["output_name"],
            "dtype": "float32",
            "shape": io["output_shape"],
            "kind": OUTPUT_KIND[pre.task],
            "labels": list(pre.classes),
            "threshold": 0.5 if pre.task == "binary" else None,
            "meaning": {
                "binary": "P(labels[1]); predict labels[1] when >= threshold",
                "multiclass": "probability per label, in the order of labels; predict the argmax",
                "regression": "the prediction in the target's units",
            }[pre.task],
        },
        "variants": {
            v: {"file": model_file(v), "size_bytes": len(content), "sha256": hashlib.sha256(content).hexdigest()}
            for v, content in files.items()
        },
    }


def gate(entry: dict[str, Any], tolerance: ToleranceConf) -> list[str]:
    """The reasons a variant fails its tolerance (empty: it passes)."""
    failures = []
    diff = entry["max_abs_diff_scaled"]
    if tolerance.max_abs_diff is not None and (diff is None or diff > tolerance.max_abs_diff):
        failures.append(f"max |LiteRT - torch| {_g(diff)} > {tolerance.max_abs_diff:g}")
    delta = entry["metric_delta"]
    if tolerance.max_metric_delta is not None and delta is not None and abs(delta) > tolerance.max_metric_delta:
        failures.append(f"{entry['metric_name']} delta {delta:+.4f} beyond ±{tolerance.max_metric_delta:g}")
    return failures


def _g(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3g}"


# -- short forms --------------------------------------------------------------------------------


def edge_metrics(report: dict[str, Any]) -> dict[str, float]:
    """A flat ``{name: number}`` view of a parity report, for ``dvc metrics show``."""
    flat: dict[str, float] = {}
    torch_side = report["torch"]
    flat["torch/latency_p50_ms"] = torch_side["latency_p50_ms"]
    flat[f"torch/{report['metric']}"] = torch_side["metric"]
    for variant, entry in report["variants"].items():
        for key in (
            "size_bytes",
            "size_vs_fp32",
            "max_abs_diff",
            "metric",
            "metric_delta",
            "latency_p50_ms",
            "latency_vs_torch",
        ):
            if entry.get(key) is not None:
                name = report["metric"] if key == "metric" else key
                flat[f"{variant}/{name}"] = float(entry[key])
        flat[f"{variant}/passed"] = float(entry["passed"])
    return flat


def _load(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None


def _table(report: dict[str, Any]) -> list[str]:
    metric = report["metric"]
    head = ["variant", "size", "vs fp32", metric, "delta", "max|diff|", "p50 ms", "vs torch", "gate"]
    torch_side = report["torch"]
    rows = [
        ["torch", "-", "-", _num(torch_side["metric"]), "-", "-", f"{torch_side['latency_p50_ms']:.4f}", "1.00×", ""]
    ]
    # JSON sorts the variants by name; show them in build order (fp32 first).
    order = [str(v) for v in EdgeVariant]
    for variant, e in sorted(report["variants"].items(), key=lambda item: order.index(item[0])):
        rows.append(
            [
                variant,
                f"{e['size_bytes'] / 1024:.1f} KiB",
                f"{e['size_vs_fp32']:.2f}×",
                _num(e["metric"]),
                "-" if e["metric_delta"] is None else f"{e['metric_delta']:+.4f}",
                _g(e["max_abs_diff"]),
                f"{e['latency_p50_ms']:.4f}",
                f"{e['latency_vs_torch']:.2f}×",
                "pass" if e["passed"] else "FAIL: " + "; ".join(e["failures"]),
            ]
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, [*widths, 0], strict=True)).rstrip() for r in [head, *rows]]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def edge_status(out_dir: Path) -> str | None:
    """What ``shipyard status`` shows for the edge target; ``None`` when it was never built."""
    deployed, rejected = _load(out_dir / REPORT), _load(rejected_dir(out_dir) / REPORT)
    if deployed is None and rejected is None:
        return None
    lines = []
    if deployed is not None:
        lines.append(
            f"edge: {out_dir} (model {deployed['model_version']}, parity passed on "
            f"{deployed['test_rows']} test rows, {deployed['created']})"
        )
        lines += _table(deployed)
    else:
        lines.append(f"edge: nothing deployed at {out_dir}")
    if rejected is not None:
        lines.append(
            f"edge: last candidate REJECTED by the parity gate (model {rejected['model_version']}, "
            f"{rejected['created']}); report: {rejected_dir(out_dir) / REPORT}"
        )
        lines += _table(rejected)
    return "\n".join(lines)
