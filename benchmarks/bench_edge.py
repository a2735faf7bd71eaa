"""The edge budgets of docs/architecture.md, as ratios measured in one run:
``.venv/bin/python benchmarks/bench_edge.py``.

- LiteRT latency at batch 1 against torch eager: ≤ 0.5× (every variant). Both sides run the
  same exported graph (the bundle's network with preprocessing folded in) on one raw row:
  ai-edge-litert's interpreter (set_tensor, invoke, get_tensor) against the torch module under
  ``inference_mode`` (from_numpy, forward, numpy), p50 of up to ``--repeats`` calls each.
- int8 size against float32: ≤ 0.3×.
- the metric delta of each variant on the test split (reported: the gate is in the config).

Each case trains its project briefly (the project's own config, epochs capped by
``--max-epochs``) in a throwaway folder and builds the edge target there with
:func:`shipyard.deploy.edge.build_edge`, so the numbers are those of the real parity report.
The real ``data/`` and ``deploy/`` are never written. Prints a table, writes
``.bench/edge.json``; exits 0 when a budget is over (a report), 1 when a case cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import REPO, BenchError, train_project

# (label, project, overrides). The wide MLP is a model whose weights dominate its file: the
# example models are a few kB, where the flatbuffer's fixed part (tensor names, op graph,
# imputation constants) bounds how small int8 can get.
CASES = (
    ("breast_cancer", "tabular/breast_cancer", []),
    ("digits", "vision/digits", []),
    ("breast_cancer wide MLP [256, 128]", "tabular/breast_cancer", ["model.hidden=[256,128]"]),
)
LATENCY_BUDGET = 0.5
SIZE_BUDGET = 0.3


def train_bundle(project: str, overrides: list[str], workdir: Path, max_epochs: int) -> tuple[Path, Any, Any]:
    """Train ``project`` as its pipeline would (fetch, ingest, split, fit preprocessing, train)."""
    cfg, data, bundle = train_project(project, overrides, workdir, workdir, max_epochs)
    bundle_dir = workdir / "bundle"
    bundle.save(bundle_dir)
    return bundle_dir, data.test, cfg.deploy.edge


def run_case(label: str, project: str, overrides: list[str], parent: Path, args: argparse.Namespace) -> dict:
    from shipyard.deploy.edge import build_edge

    workdir = parent / label.split()[0] / str(len(overrides))
    bundle_dir, test, edge_conf = train_bundle(project, overrides, workdir, args.max_epochs)
    conf = dict(edge_conf, latency={"warmup": 100, "repeats": args.repeats, "max_seconds": 5.0, "threads": 1})
    start = time.perf_counter()
    report = build_edge(bundle_dir, workdir / "edge", conf, project=project, version="bench", test_frame=test)
    report["build_seconds"] = time.perf_counter() - start
    return report


def rows_for(label: str, report: dict) -> list[list[str]]:
    torch_ms = report["torch"]["latency_p50_ms"]
    rows = []
    for variant, e in sorted(report["variants"].items(), key=lambda kv: ("fp32", "int8", "fp16").index(kv[0])):
        ratio = e["latency_p50_ms"] / torch_ms
        rows.append(
            [
                f"{label}: {variant} latency b1 vs torch eager",
                f"{e['latency_p50_ms'] * 1000:.1f} µs",
                f"{torch_ms * 1000:.1f} µs",
                f"{ratio:.3f}×",
                f"≤ {LATENCY_BUDGET}×",
                "PASS" if ratio <= LATENCY_BUDGET else "OVER",
            ]
        )
    if "int8" in report["variants"]:
        size, base = report["variants"]["int8"]["size_bytes"], report["variants"]["fp32"]["size_bytes"]
        rows.append(
            [
                f"{label}: int8 size vs fp32",
                f"{size} B",
                f"{base} B",
                f"{size / base:.3f}×",
                f"≤ {SIZE_BUDGET}×",
                "PASS" if size / base <= SIZE_BUDGET else "OVER",
            ]
        )
    return rows


def table(rows: list[list[str]], head: list[str]) -> str:
    cells = [head, *rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip() for c in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def metric_rows(label: str, report: dict) -> list[list[str]]:
    metric = report["metric"]
    out = []
    for variant, e in sorted(report["variants"].items(), key=lambda kv: ("fp32", "int8", "fp16").index(kv[0])):
        delta = "-" if e["metric_delta"] is None else f"{e['metric_delta']:+.4f}"
        out.append(
            [
                label,
                variant,
                metric,
                f"{report['torch']['metric']:.4f}",
                f"{e['metric']:.4f}",
                delta,
                f"{e['max_abs_diff']:.2e}",
                "pass" if e["passed"] else "FAIL",
            ]
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000, help="timed batch-1 calls per side (≤ 5 s each)")
    parser.add_argument("--max-epochs", type=int, default=15, help="cap on each project's training epochs")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway folder and print its path")
    args = parser.parse_args(argv)
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    parent = Path(tempfile.mkdtemp(prefix="shipyard-bench-edge-"))
    reports: dict[str, dict] = {}
    try:
        for label, project, overrides in CASES:
            print(f"{label}: training and exporting", file=sys.stderr, flush=True)
            reports[label] = run_case(label, project, overrides, parent, args)
    except (BenchError, RuntimeError, ValueError, OSError) as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"kept {parent}", file=sys.stderr)
        else:
            shutil.rmtree(parent, ignore_errors=True)

    rows = [row for label, report in reports.items() for row in rows_for(label, report)]
    print()
    print(table(rows, ["benchmark", "measured", "baseline", "ratio", "budget", "status"]))
    print()
    print("metric delta per variant (test split, LiteRT against the torch bundle):")
    head = ["case", "variant", "metric", "torch", "LiteRT", "delta", "max|diff|", "gate"]
    print(table([r for label, rep in reports.items() for r in metric_rows(label, rep)], head))
    load_after = os.getloadavg()[0]
    if max(load_before, load_after) > 0.5 * (os.cpu_count() or 1) + 1.0:
        print(
            f"\nWARNING: the machine was busy (1-minute load {load_before:.2f} before, {load_after:.2f} after): "
            "latency ratios are noisy; rerun when quiet"
        )
    over = [r[0] for r in rows if r[-1] == "OVER"]
    print("\nOVER BUDGET: " + "; ".join(over) if over else "\nall edge budgets met")
    out = REPO / ".bench" / "edge.json"
    out.parent.mkdir(exist_ok=True)
    payload = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bench_seconds": round(time.perf_counter() - started, 1),
        "load_average_1m": {"before": load_before, "after": load_after},
        "rows": rows,
        "reports": reports,
    }
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out.relative_to(REPO)} in {payload['bench_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
