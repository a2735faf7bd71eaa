"""Predict rows with a Shipyard edge model: ai-edge-litert, numpy and metadata.json only.

    python predict.py MODEL_DIR --row '{"mean radius": 14.2, "mean texture": 19.1, ...}'
    python predict.py MODEL_DIR --row-file row.json --variant int8
    python predict.py MODEL_DIR --rows '[{"mean radius": 14.2, ...}, {"mean radius": 9.8, ...}]'
    python predict.py MODEL_DIR --rows-file rows.json

MODEL_DIR is what ``make deploy TARGET=edge`` wrote (deploy/<team>/<name>/edge/): the
``model_<variant>.tflite`` files and ``metadata.json``. A row is a JSON object of raw feature
values (``null`` for a missing value), or a JSON list of them in ``metadata.input.features``
order. ``--row`` prints one JSON object: the label, and the probability, probabilities or value
behind it. ``--rows`` takes a JSON list of rows and scores them all in one interpreter call (the
model's batch dimension is dynamic: ``metadata.input.shape`` is ``[-1, features]``), printing a
JSON list of results in the same order.

No torch and no Shipyard: numeric preprocessing (imputation, scaling) and categorical encoding
run inside the .tflite graph; this script only turns categories into their vocabulary index and
a date/time (an ISO 8601 string) into the numeric parts the model was trained on.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from datetime import UTC, datetime
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


_PERIODS = {"month": 12.0, "dayofweek": 7.0, "dayofyear": 365.25, "hour": 24.0}


def datetime_part(value: Any, part: str) -> float:
    """One numeric part of an ISO 8601 date/time, as Shipyard's training computed it
    (shipyard.core.features.datetime_parts): dayofweek counts from Monday = 0, timestamp is days
    since 1970-01-01 (UTC), *_sin/*_cos encode month, day of week, day of year or hour on a circle."""
    if value is None:
        return math.nan
    try:
        when = datetime.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise RowError(f"{value!r} is not an ISO 8601 date/time") from exc
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    when = when.replace(microsecond=0)
    epoch = (when - datetime(1970, 1, 1)).total_seconds()
    base = {
        "year": when.year,
        "month": when.month,
        "day": when.day,
        "dayofweek": when.weekday(),
        "dayofyear": when.timetuple().tm_yday,
        "hour": when.hour,
        "minute": when.minute,
        "timestamp": epoch / 86400.0,
    }
    stem, _, fn = part.rpartition("_") if part.endswith(("_sin", "_cos")) else (part, "", "")
    if not fn:
        return float(base[part])
    angle = 2.0 * math.pi * (base[stem] - (1.0 if stem in ("month", "dayofyear") else 0.0)) / _PERIODS[stem]
    return math.sin(angle) if fn == "sin" else math.cos(angle)


def _encode_row(meta: dict[str, Any], row: dict[str, Any] | list[Any], x: np.ndarray) -> None:
    """Write one raw row into ``x`` (one row of the model input)."""
    spec = meta["input"]
    names = spec["features"]
    if isinstance(row, list):
        if len(row) != len(names):
            raise RowError(f"the row has {len(row)} values, the model takes {len(names)}: {', '.join(names[:8])} ...")
        row = dict(zip(names, row, strict=True))
    if not isinstance(row, dict):
        raise RowError(f"a row is a JSON object or list, got {type(row).__name__}")
    dates = {f["datetime"]["column"] for f in spec["numeric"] if f.get("datetime")}
    missing = [n for n in names if n not in row and not (n.rpartition(".")[0] in dates and n.rpartition(".")[0] in row)]
    if missing:
        raise RowError(f"the row lacks feature(s) {', '.join(map(repr, missing[:5]))} (use null for a missing value)")
    for feature in spec["numeric"]:
        if feature.get("datetime") and feature["datetime"]["column"] in row:
            source = feature["datetime"]
            try:
                x[feature["position"]] = datetime_part(row[source["column"]], source["part"])
            except RowError as exc:
                raise RowError(f"feature {source['column']!r}: {exc}") from exc
            continue
        value = row[feature["name"]]
        try:
            x[feature["position"]] = np.nan if value is None else float(value)
        except (TypeError, ValueError) as exc:
            raise RowError(f"feature {feature['name']!r} must be a number or null, got {value!r}") from exc
    for feature in spec["categorical"]:
        vocabulary = {v: i for i, v in enumerate(feature["vocabulary"])}
        x[feature["position"]] = vocabulary.get(_category(row[feature["name"]]), feature["missing_code"])


def encode(meta: dict[str, Any], rows: list[dict[str, Any] | list[Any]]) -> np.ndarray:
    """The model input for raw rows: float32, shape [len(rows), n]."""
    x = np.empty((len(rows), len(meta["input"]["features"])), dtype=np.float32)
    for i, row in enumerate(rows):
        try:
            _encode_row(meta, row, x[i])
        except RowError as exc:
            raise RowError(f"row {i}: {exc}" if len(rows) > 1 else str(exc)) from exc
    return x


def predict(meta: dict[str, Any], interpreter: Interpreter, x: np.ndarray) -> list[dict[str, Any]]:
    """Score every row of ``x`` in one call: the input is resized to ``x``'s number of rows."""
    index = interpreter.get_input_details()[0]["index"]
    if interpreter.get_input_details()[0]["shape"][0] != len(x):
        interpreter.resize_tensor_input(index, list(x.shape), strict=True)
        interpreter.allocate_tensors()
    interpreter.set_tensor(index, x)
    interpreter.invoke()
    scores = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    return [_result(meta, out) for out in scores]


def _result(meta: dict[str, Any], out: np.ndarray) -> dict[str, Any]:
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
    parser = argparse.ArgumentParser(description="Predict rows with a Shipyard edge model (LiteRT).")
    parser.add_argument("model_dir", type=Path, help="the edge folder: metadata.json and model_<variant>.tflite")
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--row", help="one row as JSON (an object of feature values, or a list in input order)")
    given.add_argument("--row-file", type=Path, help="a file holding one row as JSON")
    given.add_argument("--rows", help="a JSON list of rows, scored in one call")
    given.add_argument("--rows-file", type=Path, help="a file holding a JSON list of rows")
    parser.add_argument("--variant", default="fp32", help="fp32 (default), int8 or fp16, as built")
    args = parser.parse_args(argv)
    many = args.rows is not None or args.rows_file is not None
    try:
        source = args.row_file or args.rows_file
        data = json.loads(source.read_text() if source is not None else (args.rows if many else args.row))
        if many and (not isinstance(data, list) or not data):
            raise RowError("--rows takes a non-empty JSON list of rows")
        meta, interpreter = load(args.model_dir, args.variant)
        results = predict(meta, interpreter, encode(meta, data if many else [data]))
    except (OSError, ValueError) as exc:  # RowError and json's JSONDecodeError are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for result in results:
        result["variant"] = args.variant
    print(json.dumps(results if many else results[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
