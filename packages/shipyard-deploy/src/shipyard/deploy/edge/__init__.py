"""The edge target: a model bundle as LiteRT (``.tflite``) files that compute what training
computed, proven by a parity gate.

``build_edge`` converts the bundle with litert-torch (numeric preprocessing folded into the
graph, so a device feeds raw features), makes the configured quantized variants (dynamic-range
int8, float16 weights), runs every variant with ai-edge-litert's interpreter on the whole test
split against the torch bundle, and writes ``deploy/<team>/<name>/edge/``::

    model_fp32.tflite  model_int8.tflite  model_fp16.tflite   (per deploy.edge.variants)
    metadata.json        input order, vocabularies, labels, shapes, dtypes, model version
    parity_report.json   per variant: size, max |diff|, metric and delta, batch-1 latency vs torch

A variant out of tolerance raises :class:`ParityError` and leaves the deployed files as they
were (the candidate and its report go to ``edge.rejected/``); a model that cannot be exported
raises :class:`EdgeExportError` naming the op. Importing this package is cheap: torch,
litert-torch and the interpreter are imported when a model is built.
"""

from __future__ import annotations

from shipyard.deploy.edge._build import build_edge, build_edge_bundle, edge_conf, edge_dir, run_edge
from shipyard.deploy.edge._errors import EdgeError, EdgeExportError, ParityError
from shipyard.deploy.edge._report import METADATA, REPORT, edge_metrics, edge_status, rejected_dir

__all__ = [
    "METADATA",
    "REPORT",
    "EdgeError",
    "EdgeExportError",
    "ParityError",
    "build_edge",
    "build_edge_bundle",
    "edge_conf",
    "edge_dir",
    "edge_metrics",
    "edge_status",
    "rejected_dir",
    "run_edge",
]
