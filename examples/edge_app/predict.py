"""Predict one row with a Shipyard edge model: ai-edge-litert, numpy and metadata.json only.

    python predict.py MODEL_DIR --row '{"mean radius": 14.2, "mean texture": 19.1, ...}'
    python predict.py MODEL_DIR --row-file row.json --variant int8

MODEL_DIR is what ``make deploy TARGET=edge`` wrote (deploy/<team>/<name>/edge/): the
``model_<variant>.tflite`` files and ``metadata.json``. A row is a JSON object of raw feature
values (``null`` for a missing value), or a JSON list of them in ``metadata.input.features``
order. Prints one JSON object: the label, and the probability, probabilities or value behind it.

No torch and no Shipyard: numeric preprocessing (imputation, scaling) and categorical encoding
run inside the .tflite graph; this script only turns categories into their vocabulary index.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter

FORMAT = "shipyard-edge/1"


class RowError(ValueError):
    """The row does not fit the model's inputs."""


def load(model_dir: Path, variant: str) -> tuple[dict[str, Any], Interpreter]:
    meta = json.loads((model_dir / "metadata.json").read_text())
    if meta.get("format") != FORMAT:
        raise RowError(f"{model_dir}/metadata.json is format {meta.get('format')!r}, this app reads {FORMAT!r}")
    if variant not in meta["variants"]:
        raise RowError(f"no {variant!r} variant in {model_dir}; built: {', '.join(meta['variants'])}")
    interpreter = Interpreter(model_path=str(model_dir / meta["variants"][variant]["file"]), num_threads=1)
    interpreter.allocate_tensors()
    return meta, interpreter


def _category(value: Any) -> str | None:
    """Training compares categories as strings (2.0 and 2 are both "2"); null is missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def encode(meta: dict[str, Any], row: dict[str, Any] | list[Any]) -> np.ndarray:
    """The model input for one raw row: float32, shape [1, n]."""
    spec = meta["input"]
    names = spec["features"]
    if isinstance(row, list):
        if len(row) != len(names):
            raise RowError(f"the row has {len(row)} values, the model takes {len(names)}: {', '.join(names[:8])} ...")
        row = dict(zip(names, row, strict=True))
    missing = [n for n in names if n not in row]
    if missing:
        raise RowError(f"the row lacks feature(s) {', '.join(map(repr, missing[:5]))} (use null for a missing value)")
    x = np.empty((1, len(names)), dtype=np.float32)
    for feature in spec["numeric"]:
        value = row[feature["name"]]
        try:
            x[0, feature["position"]] = np.nan if value is None else float(value)
        except (TypeError, ValueError) as exc:
            raise RowError(f"feature {feature['name']!r} must be a number or null, got {value!r}") from exc
    for feature in spec["categorical"]:
        vocabulary = {v: i for i, v in enumerate(feature["vocabulary"])}
        code = vocabulary.get(_category(row[feature["name"]]), feature["missing_code"])
        x[0, feature["position"]] = code
    return x


def predict(meta: dict[str, Any], interpreter: Interpreter, x: np.ndarray) -> dict[str, Any]:
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    spec = meta["output"]
    labels = spec["labels"]
    result: dict[str, Any] = {"model_version": meta["model_version"]}
    if spec["kind"] == "probability":
        p = float(out[0])
        result.update(label=labels[int(p >= spec["threshold"])], probability=p)
    elif spec["kind"] == "probabilities":
        result.update(
            label=labels[int(np.argmax(out))],
            probabilities={str(k): float(v) for k, v in zip(labels, out, strict=True)},
        )
    else:
        result.update(label=float(out[0]), value=float(out[0]))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Predict one row with a Shipyard edge model (LiteRT).")
    parser.add_argument("model_dir", type=Path, help="the edge folder: metadata.json and model_<variant>.tflite")
    rows = parser.add_mutually_exclusive_group(required=True)
    rows.add_argument("--row", help="the row as JSON (an object of feature values, or a list in input order)")
    rows.add_argument("--row-file", type=Path, help="a file holding the row as JSON")
    parser.add_argument("--variant", default="fp32", help="fp32 (default), int8 or fp16, as built")
    args = parser.parse_args(argv)
    try:
        text = args.row if args.row is not None else args.row_file.read_text()
        meta, interpreter = load(args.model_dir, args.variant)
        result = predict(meta, interpreter, encode(meta, json.loads(text)))
    except (OSError, ValueError) as exc:  # RowError and json's JSONDecodeError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result["variant"] = args.variant
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
