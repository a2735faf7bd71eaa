"""Rollout throughput: the service with a shadow or a canary candidate against production alone.

``.venv/bin/python benchmarks/bench_rollout.py`` (``make bench`` runs it). The breast-cancer
example's bundle (trained under ``data/`` when present, else an untrained one of the same
architecture) is served four ways on loopback, one after the other, with the same settings:
alone; in shadow mode (the candidate, a model of the same cost, scores every request off the
answer path and both predictions are logged); in canary mode (a share of keys answered by the
candidate, each answer logged); and in shadow mode with a slow candidate (an MLP of
``HEAVY_HIDDEN``: its bounded queue drops what it cannot take). The candidates have
production's features, so they score every row they are given. Each server gets ``--runs``
loads of ``--clients`` concurrent keep-alive clients sending one-row requests (each row with its
own key); the table gives the median and range of the runs' throughput, the ratios of the
medians and the median latencies. Writes ``.bench/rollout.json``. Exits 0 when a budget is over
(this is a report); 1 when it cannot run.

Budget (docs/architecture.md): shadow >= 0.8x production alone, with a slow candidate too;
canary about 1x.
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
    HEAVY_HIDDEN,
    REPO,
    BenchError,
    Server,
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
BUDGETS = {"shadow": 0.8, "canary": 0.95, "slow": 0.8}


def candidate_like(bundle: Path, dest: Path, hidden: list[int] | None = None) -> Path:
    """A candidate for ``bundle``: the same features, preprocessing and task (so it scores every
    row production takes), freshly initialised; the same network, or an MLP of ``hidden``."""
    import torch
    from shipyard.train.bundle import ModelBundle, build_network

    prod = ModelBundle.load(bundle)
    model = dict(prod.meta["model"], **({"hidden": hidden, "dropout": 0.0} if hidden else {}))
    torch.manual_seed(1)
    net = build_network(model, prod.preprocessor).eval()
    ModelBundle(meta=dict(prod.meta, model=model), preprocessor=prod.preprocessor, net=net).save(dest)
    return dest


def keyed(bodies: list[bytes]) -> list[bytes]:
    """Each one-row body with its own key (a canary routes by it; shadow logs it)."""
    out = []
    for i, body in enumerate(bodies):
        request = json.loads(body)
        request["rows"][0][KEY] = f"client-{i}"
        out.append(json.dumps(request).encode())
    return out


def build(kind: str, bundle: Path, candidate: Path | None, work: Path, args: argparse.Namespace) -> Path:
    from shipyard.deploy.service import build_service

    conf: dict[str, Any] = {
        "torch_threads": args.threads,
        "bento": {"build": False},
        "batching": {"enabled": True, "max_batch_size": 64, "max_latency_ms": 1000},
    }
    extra: dict[str, Any] = {}
    if candidate is not None:
        conf["rollout"] = {"mode": "canary" if kind == "canary" else "shadow", "candidate": "v2", "share": args.share}
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
        "candidate_failed_rows": _counter(text, "shipyard_rollout_candidate_failed_rows_total"),
    }
    log(
        f"  {kind:<7} {result['median_rps']:8.1f} req/s (range {min(rps):.1f}-{max(rps):.1f}), "
        f"p50 {statistics.median(r['p50_ms'] for r in runs):.1f} ms, {result['failed']} failed, "
        f"candidate rows {result['candidate_rows']:.0f} (failed {result['candidate_failed_rows']:.0f}), "
        f"shadow rows dropped {result['shadow_dropped_rows']:.0f}"
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
        # "slow" is a shadow whose candidate is a far wider network: the answers must not wait for it.
        candidates = {
            "shadow": candidate_like(bundle, work / "candidate-bundle"),
            "slow": candidate_like(bundle, work / "slow-candidate-bundle", HEAVY_HIDDEN),
        }
        candidates["canary"] = candidates["shadow"]
        log(f"{MODEL}: {source}; candidates: the same features, freshly initialised (slow: MLP {HEAVY_HIDDEN})")
        plain = request_bodies(bundle, 1024)
        # Production alone takes the same rows without the key field (its schema has none).
        bodies = {"alone": plain, "shadow": keyed(plain), "canary": keyed(plain), "slow": keyed(plain)}
        results = {
            kind: measure(kind, build(kind, bundle, candidates.get(kind), work, args), bodies[kind], work, args)
            for kind in ("alone", "shadow", "canary", "slow")
        }
    except BenchError as exc:
        log(f"bench_rollout could not run: {exc}")
        return 1
    alone = results["alone"]["median_rps"]
    widths = {"median req/s": 12, "range": 17, "ratio": 7, "budget": 7, "p50 ms": 7, "p99 ms": 7, "failed": 7}
    print(f"{'mode':<8} " + " ".join(f"{h:>{w}}" for h, w in widths.items()))
    for kind, result in results.items():
        ratio = result["median_rps"] / alone if alone else float("nan")
        budget = BUDGETS.get(kind)
        low, high = result["range_rps"]
        p50, p99 = (statistics.median(r[f"{q}_ms"] for r in result["runs"]) for q in ("p50", "p99"))
        mark = "" if budget is None else (" ok" if ratio >= budget and not result["failed"] else " OVER")
        print(
            f"{kind:<8} {result['median_rps']:>12.1f} {f'{low:.1f}-{high:.1f}':>17} {ratio:>7.2f} "
            f"{'' if budget is None else f'>= {budget}':>7} {p50:>7.1f} {p99:>7.1f} {result['failed']:>7}{mark}"
        )
        result["ratio"] = ratio
    out = REPO / ".bench" / "rollout.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"clients": args.clients, "share": args.share, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
