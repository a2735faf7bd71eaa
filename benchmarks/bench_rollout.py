"""Rollout throughput: the service with a shadow or a canary candidate against production alone.

``.venv/bin/python benchmarks/bench_rollout.py`` (``make bench`` runs it). The breast-cancer
example's bundle (trained under ``data/`` when present, else an untrained one of the same
architecture) is served three ways on loopback, one after the other, with the same settings:
alone; in shadow mode (the candidate, a model of the same cost, scores every request off the
answer path and both predictions are logged); in canary mode (a share of keys answered by the
candidate, each answer logged). Each server gets ``--runs`` loads of ``--clients`` concurrent
keep-alive clients sending one-row requests (each row with its own key); the table gives the
median and range of the runs' throughput and the ratios of the medians. Writes
``.bench/rollout.json``. Exits 0 when a budget is over (this is a report); 1 when it cannot run.

Budget (docs/architecture.md): shadow >= 0.8x production alone; canary about 1x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_service import (
    REPO,
    BenchError,
    Server,
    _synthetic_bundle,
    batch_histogram,
    bench_env,
    free_port,
    get_bundle,
    log,
    request_bodies,
    run_load,
)

MODEL = "breast_cancer"
PROJECT = "tabular/breast_cancer"
KEY = "row_key"
BUDGETS = {"shadow": 0.8, "canary": 0.95}


def keyed(bodies: list[bytes]) -> list[bytes]:
    """Each one-row body with its own key (a canary routes by it; shadow logs it)."""
    out = []
    for i, body in enumerate(bodies):
        request = json.loads(body)
        request["rows"][0][KEY] = f"client-{i}"
        out.append(json.dumps(request).encode())
    return out


def build(kind: str, bundle: Path, candidate: Path, work: Path, args: argparse.Namespace) -> Path:
    from shipyard.deploy.service import build_service

    conf: dict[str, Any] = {
        "torch_threads": args.threads,
        "bento": {"build": False},
        "batching": {"enabled": True, "max_batch_size": 64, "max_latency_ms": 1000},
    }
    extra: dict[str, Any] = {}
    if kind != "alone":
        conf["rollout"] = {"mode": kind, "candidate": "v2", "share": args.share}
        extra = {
            "candidate": (candidate, f"{PROJECT}@v2.0.0"),
            "key_field": KEY,
            "prediction_log": {"enabled": True, "path": str(work / f"{kind}-predictions")},
        }
    out = work / "services" / kind
    build_service(bundle, out, conf, project=PROJECT, version=f"{PROJECT}@v1.0.0", **extra)
    return out


def measure(kind: str, folder: Path, bodies: list[bytes], work: Path, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    env = bench_env(work, args.threads)
    cmd = [sys.executable, "-m", "shipyard.deploy.service", "serve", str(folder), "--port", str(port)]
    server = Server(f"{kind} service", cmd, port, env, work / f"{kind}.log")
    try:
        ready = server.start()
        run_load(port, bodies, args.clients, 10, 30.0)  # warm-up: connections, the batcher's estimates
        runs = []
        for _ in range(args.runs):
            load = run_load(port, bodies, args.clients, args.requests, args.time_cap)
            runs.append({"rps": load.rps, "p50_ms": load.pct(0.5), "p99_ms": load.pct(0.99), "failed": load.failed})
        metrics = batch_histogram(port)
        text = _metrics_text(port)
    finally:
        server.stop()
    rps = [r["rps"] for r in runs]
    result = {
        "ready_s": ready,
        "runs": runs,
        "median_rps": statistics.median(rps),
        "range_rps": [min(rps), max(rps)],
        "failed": sum(r["failed"] for r in runs),
        "batches": metrics["count"],
        "shadow_dropped_rows": _counter(text, "shipyard_rollout_shadow_dropped_rows_total"),
        "candidate_rows": _counter(text, 'shipyard_rollout_rows_total{role="candidate"}'),
    }
    log(
        f"  {kind:<7} {result['median_rps']:8.1f} req/s (range {min(rps):.1f}-{max(rps):.1f}), "
        f"p50 {statistics.median(r['p50_ms'] for r in runs):.1f} ms, {result['failed']} failed, "
        f"candidate rows {result['candidate_rows']:.0f}, shadow rows dropped {result['shadow_dropped_rows']:.0f}"
    )
    return result


def _metrics_text(port: int) -> str:
    import httpx

    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


def _counter(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name.split("{")[0]) and ("{" not in name or name.split("{")[1].rstrip("}") in line):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=60, help="requests per client per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--time-cap", type=float, default=30.0, help="seconds per run at most")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--share", type=float, default=0.1, help="the canary's share of keys")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-rollout-"))
    os.environ["BENTOML_HOME"] = bench_env(work, args.threads)["BENTOML_HOME"]
    try:
        bundle, source = get_bundle(MODEL, work)
        # The candidate costs what production costs: the ratio measures the rollout, not the model.
        candidate = _synthetic_bundle(MODEL, work / "candidate-bundle")
        log(f"{MODEL}: {source}; candidate: untrained, same architecture")
        plain = request_bodies(bundle, 1024)
        # Production alone takes the same rows without the key field (its schema has none).
        bodies = {"alone": plain, "shadow": keyed(plain), "canary": keyed(plain)}
        results = {
            kind: measure(kind, build(kind, bundle, candidate, work, args), bodies[kind], work, args)
            for kind in ("alone", "shadow", "canary")
        }
    except BenchError as exc:
        log(f"bench_rollout could not run: {exc}")
        return 1
    alone = results["alone"]["median_rps"]
    print(f"{'mode':<8} {'median req/s':>12} {'range':>17} {'ratio':>7} {'budget':>7} {'failed':>7}")
    for kind, result in results.items():
        ratio = result["median_rps"] / alone if alone else float("nan")
        budget = BUDGETS.get(kind)
        low, high = result["range_rps"]
        mark = "" if budget is None else (" ok" if ratio >= budget and not result["failed"] else " OVER")
        print(
            f"{kind:<8} {result['median_rps']:>12.1f} {f'{low:.1f}-{high:.1f}':>17} {ratio:>7.2f} "
            f"{'' if budget is None else f'>= {budget}':>7} {result['failed']:>7}{mark}"
        )
        result["ratio"] = ratio
    out = REPO / ".bench" / "rollout.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"clients": args.clients, "share": args.share, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
