"""Service throughput: the BentoML service (adaptive batching on) against a plain FastAPI + torch
endpoint serving the same bundle one request at a time, same machine, same run.

``.venv/bin/python benchmarks/bench_service.py`` (``make bench`` runs it). For each model, both
servers run on loopback in turn, each as its own process with the same torch thread count; a
bounded load (``--clients`` concurrent keep-alive connections x ``--requests`` one-row requests
each, stopped at ``--time-cap`` seconds) measures throughput, p50/p99 latency and failures. The
models: the example projects' (their trained bundles under ``data/`` when present, otherwise
untrained bundles of the same architecture: throughput does not depend on the weights) and a
compute-heavy MLP whose single-row forward pass takes >= 1 ms. Prints a table and the batch sizes
adaptive batching formed (from the service's own Prometheus histogram), and writes everything to
``.bench/service.json``. Exits 0 when a budget is over (this is a report); 1 when it cannot run.

Budget (docs/architecture.md): service throughput >= 1x the plain endpoint's for the example models and
>= 1.5x for the heavy one; zero failed requests.

``--plain-server BUNDLE --port N`` runs the plain endpoint itself (the benchmark starts it so).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
HEAVY = "heavy_mlp"
HEAVY_HIDDEN = [2048, 2048, 2048]
# name -> project, and the architecture of an untrained stand-in when no trained bundle exists
# (the same networks conf/ and the example projects configure).
EXAMPLES: dict[str, dict[str, Any]] = {
    "breast_cancer": {
        "project": "tabular/breast_cancer",
        "model": {"_target_": "shipyard.train.models.MLP", "hidden": [32, 16], "dropout": 0.1, "activation": "relu"},
        "numeric": 30,
        "categorical": {},
        "task": "binary",
        "classes": [0, 1],
        "shape": None,
    },
    "digits": {
        "project": "vision/digits",
        "model": {
            "_target_": "shipyard.train.models.CNN",
            "channels": [16, 32],
            "kernel_size": 3,
            "hidden": 64,
            "dropout": 0.1,
        },
        "numeric": 64,
        "categorical": {},
        "task": "multiclass",
        "classes": list(range(10)),
        "shape": [1, 8, 8],
    },
    "churn": {
        "project": "tabular/churn",
        "model": {"_target_": "shipyard.train.models.MLP", "hidden": [64, 32], "dropout": 0.1, "activation": "relu"},
        "numeric": 3,
        "categorical": {
            "contract": ["month-to-month", "one-year", "two-year"],
            "payment_method": ["bank transfer", "card", "electronic check", "mailed check"],
        },
        "task": "binary",
        "classes": [0, 1],
        "shape": None,
    },
    HEAVY: {
        "project": "bench/heavy_mlp",
        "model": {
            "_target_": "shipyard.train.models.MLP",
            "hidden": HEAVY_HIDDEN,
            "dropout": 0.0,
            "activation": "relu",
        },
        "numeric": 30,
        "categorical": {},
        "task": "binary",
        "classes": [0, 1],
        "shape": None,
    },
}
READY_TIMEOUT = 120.0
REQUEST_TIMEOUT = 30.0


class BenchError(RuntimeError):
    """The benchmark could not run (as opposed to running over budget)."""


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# -- bundles and payloads ----------------------------------------------------------------------


def _synthetic_bundle(name: str, dest: Path) -> Path:
    """An untrained bundle with the example's architecture and input schema (seeded)."""
    import torch
    from shipyard.core.features import Preprocessor
    from shipyard.train.bundle import ModelBundle, build_network

    spec = EXAMPLES[name]
    shape = spec["shape"]
    numeric = (
        [f"pixel_{i // 8}_{i % 8}" for i in range(spec["numeric"])]
        if shape
        else [f"x{i}" for i in range(spec["numeric"])]
    )
    n = len(numeric)
    pre = Preprocessor(
        task=spec["task"],
        features=numeric + list(spec["categorical"]),
        target="y",
        mean=[0.0] * n,
        scale=[1.0] * n,
        fill=[0.0] * n,
        classes=list(spec["classes"]),
        shape=shape,
        categorical=dict(spec["categorical"]),
    )
    torch.manual_seed(0)
    net = build_network(spec["model"], pre).eval()
    high = 16.0 if shape else 1.0
    schema = [{"name": f, "dtype": "float", "min": 0.0, "max": high, "nullable": False} for f in numeric]
    schema += [
        {"name": c, "dtype": "category", "categories": v, "nullable": True} for c, v in spec["categorical"].items()
    ]
    team, project = spec["project"].split("/")
    meta = {
        "project": {"name": project, "team": team, "task": spec["task"]},
        "task": spec["task"],
        "model": spec["model"],
        "seed": 0,
        "feature_schema": schema,
        "target": "y",
        "classes": pre.classes,
    }
    ModelBundle(meta=meta, preprocessor=pre, net=net).save(dest)
    return dest


def get_bundle(name: str, work: Path) -> tuple[Path, str]:
    """The bundle to serve for ``name`` and where it came from."""
    from shipyard.core.errors import ShipyardError
    from shipyard.train.bundle import ModelBundle

    if name != HEAVY:
        trained = REPO / "data" / EXAMPLES[name]["project"] / "06_models" / "bundle"
        try:
            ModelBundle.load(trained)
            return trained, "trained bundle"
        except (ShipyardError, OSError, KeyError, RuntimeError):
            pass  # absent, stale or half-written: an untrained stand-in times the same
    return _synthetic_bundle(name, work / f"{name}-bundle"), "untrained, same architecture"


def request_bodies(bundle_dir: Path, count: int, seed: int = 0) -> list[bytes]:
    """``count`` distinct one-row request bodies drawn inside the bundle's feature schema."""
    meta = json.loads((bundle_dir / "bundle.json").read_text())
    rng = random.Random(seed)
    schema = meta["feature_schema"]
    shape = meta["preprocessor"].get("shape")
    bodies = []
    for _ in range(count):
        if shape:
            low = min(s["min"] for s in schema)
            high = max(s["max"] for s in schema)
            flat = [round(rng.uniform(low, high), 3) for _ in schema]
            c, h, w = shape
            row: dict[str, Any] = {
                "image": [[[flat[(k * h + i) * w + j] for j in range(w)] for i in range(h)] for k in range(c)]
            }
        else:
            row = {
                s["name"]: rng.choice(s["categories"])
                if s["dtype"] == "category"
                else round(rng.uniform(s["min"], s["max"]), 4)
                for s in schema
            }
        bodies.append(json.dumps({"rows": [row]}).encode())
    return bodies


def forward_ms(bundle_dir: Path, threads: int, repeats: int = 50) -> float:
    """Median milliseconds of one single-row forward pass (no HTTP)."""
    import numpy as np
    import torch
    from shipyard.train.bundle import ModelBundle

    torch.set_num_threads(threads)
    bundle = ModelBundle.load(bundle_dir)
    x = np.zeros((1, bundle.preprocessor.n_features), dtype=np.float32)
    for _ in range(5):
        bundle.scores_from_input(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        bundle.scores_from_input(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


# -- the plain FastAPI + torch endpoint --------------------------------------------------------


def plain_app(bundle_dir: Path, threads: int) -> Any:
    """FastAPI + torch, one request at a time: the model runs inline on the event loop."""
    import math

    import numpy as np
    import torch
    from fastapi import FastAPI
    from shipyard.train.bundle import ModelBundle

    torch.set_num_threads(threads)
    bundle = ModelBundle.load(bundle_dir)
    pre = bundle.preprocessor
    version = bundle.weights_sha256[:12]
    app = FastAPI()

    def columns(rows: list[dict[str, Any]]) -> dict[str, Any]:
        if pre.shape:
            flat = np.asarray([r["image"] for r in rows], dtype=np.float64).reshape(len(rows), -1)
            return {f: flat[:, j] for j, f in enumerate(pre.features)}
        return {f: [math.nan if r.get(f) is None else r[f] for r in rows] for f in pre.features}

    @app.get("/readyz")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/predict")
    async def predict(body: dict[str, Any]) -> list[dict[str, Any]]:
        scores = bundle.predict_scores(columns(body["rows"]))
        labels = bundle.labels(scores)
        if pre.task == "multiclass":
            return [
                {
                    "prediction": lab,
                    "probabilities": dict(zip(map(str, pre.classes), map(float, p), strict=True)),
                    "model_version": version,
                }
                for lab, p in zip(labels, scores, strict=True)
            ]
        return [
            {"prediction": lab, "score": float(s), "model_version": version}
            for lab, s in zip(labels, scores, strict=True)
        ]

    return app


def run_plain_server(bundle_dir: Path, port: int, threads: int) -> int:
    import uvicorn

    uvicorn.run(plain_app(bundle_dir, threads), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0


# -- servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server subprocess in its own process group (BentoML forks workers), stopped as a group."""

    def __init__(self, name: str, cmd: list[str], port: int, env: dict[str, str], log_path: Path) -> None:
        self.name, self.cmd, self.port, self.env, self.log_path = name, cmd, port, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait until ``/readyz`` answers 200; seconds from spawn to ready."""
        import httpx

        started = time.perf_counter()
        with self.log_path.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        url = f"http://127.0.0.1:{self.port}/readyz"
        while time.perf_counter() - started < READY_TIMEOUT:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise BenchError(f"{self.name} not ready after {READY_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server and every process it forked (Linux /proc)."""
        if self.proc is None:
            return 0.0
        tick = os.sysconf("SC_CLK_TCK")
        parent: dict[int, int] = {}
        cpu: dict[int, float] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            parent[int(entry.name)] = int(fields[1])
            cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
        total = 0.0
        for pid, seconds in cpu.items():
            ancestor = pid
            while ancestor in parent and ancestor != self.proc.pid:
                ancestor = parent[ancestor]
            total += seconds if ancestor == self.proc.pid else 0.0
        return total

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


# -- load --------------------------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return status, body
            body += chunk[:-2]
    raise BenchError(f"response without length: {head!r}")


@dataclass
class Load:
    seconds: float = 0.0
    ok: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    def fail(self, why: str) -> None:
        self.failed += 1
        self.failures[why] = self.failures.get(why, 0) + 1

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _client(port: int, bodies: list[bytes], start: int, n: int, deadline: float, load: Load) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in range(n):
            if time.perf_counter() > deadline:
                return
            body = bodies[(start + i) % len(bodies)]
            head = (
                f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            sent = time.perf_counter()
            writer.write(head + body)
            try:
                status, payload = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
                load.fail(type(exc).__name__)
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            load.latencies_ms.append((time.perf_counter() - sent) * 1000)
            if status != 200:
                load.fail(f"HTTP {status}")
            elif i == 0 and len(json.loads(payload)) != 1:
                load.fail("wrong answer")
            else:
                load.ok += 1
    finally:
        writer.close()


async def _load(port: int, bodies: list[bytes], clients: int, requests: int, cap: float) -> Load:
    load = Load()
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, bodies, c * 7, requests, started + cap, load) for c in range(clients)))
    load.seconds = time.perf_counter() - started
    return load


def run_load(port: int, bodies: list[bytes], clients: int, requests: int, cap: float) -> Load:
    return asyncio.run(_load(port, bodies, clients, requests, cap))


# -- BentoML's adaptive batch-size histogram ----------------------------------------------------

_BUCKET = re.compile(r'^bentoml_service_adaptive_batch_size_bucket\{[^}]*le="([^"]+)"[^}]*\}\s+([0-9.e+]+)$')
_SUMCOUNT = re.compile(r"^bentoml_service_adaptive_batch_size_(sum|count)\{[^}]*\}\s+([0-9.e+]+)$")


def batch_histogram(port: int) -> dict[str, Any]:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    buckets: dict[str, float] = {}
    totals = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        if m := _BUCKET.match(line):
            buckets[m.group(1)] = buckets.get(m.group(1), 0.0) + float(m.group(2))
        elif m := _SUMCOUNT.match(line):
            totals[m.group(1)] += float(m.group(2))
    return {"buckets": buckets, **totals}


def batch_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Batches formed between two scrapes: count, mean size, and how many fell in each size range."""
    count = after["count"] - before["count"]
    total = after["sum"] - before["sum"]
    cumulative = sorted(
        ((float(le), after["buckets"][le] - before["buckets"].get(le, 0.0)) for le in after["buckets"]),
        key=lambda x: x[0],
    )
    ranges: dict[str, int] = {}
    previous_le, previous_n = 0.0, 0.0
    for le, n in cumulative:
        if n - previous_n > 0:
            label = f"{int(previous_le) + 1}-{int(le)}" if le != float("inf") else f">{int(previous_le)}"
            ranges[label] = int(n - previous_n)
        previous_le, previous_n = le, n
    return {"batches": int(count), "mean_size": total / count if count else 0.0, "sizes": ranges}


# -- one model ---------------------------------------------------------------------------------


@dataclass
class Side:
    ready_s: float
    load: Load
    cpu_ms: float  # server CPU per answered request: steadier than wall time on a shared machine


@dataclass
class Result:
    model: str
    source: str
    forward_ms: float
    budget: float
    plain: Side
    service: Side
    batches: dict[str, Any]
    model_load: str

    @property
    def ratio(self) -> float:
        return self.service.load.rps / self.plain.load.rps if self.plain.load.rps else float("inf")

    @property
    def ok(self) -> bool:
        return self.ratio >= self.budget and self.service.load.failed == 0


def bench_env(work: Path, threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        BENTOML_HOME=str(work / "bentoml"),
        BENTOML_DO_NOT_TRACK="True",
        DO_NOT_TRACK="1",
        KEDRO_DISABLE_TELEMETRY="true",
        DVC_NO_ANALYTICS="1",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    return env


def bench_model(name: str, work: Path, args: argparse.Namespace) -> Result:
    from shipyard.deploy.service import build_service

    bundle, source = get_bundle(name, work)
    fwd = forward_ms(bundle, args.threads)
    log(f"{name}: {source}; single-row forward {fwd:.3f} ms")
    if name == HEAVY and fwd < 1.0:
        log(
            f"  note: the heavy model's single-row forward took {fwd:.3f} ms (< 1 ms): the machine is faster than "
            "assumed; widen HEAVY_HIDDEN"
        )
    conf = {
        "torch_threads": args.threads,
        **({"workers": args.workers} if args.workers else {}),
        "bento": {"build": False},
        "batching": {
            "enabled": not args.no_batching,
            "max_batch_size": args.max_batch_size,
            "max_latency_ms": args.max_latency_ms,
        },
    }
    out = work / "services" / name
    # The build stores the model in BentoML's store: the benchmark's own, like its servers'.
    os.environ["BENTOML_HOME"] = bench_env(work, args.threads)["BENTOML_HOME"]
    build_service(bundle, out, conf, project=EXAMPLES[name]["project"])
    bodies = request_bodies(bundle, 64)
    env = bench_env(work, args.threads)
    py = sys.executable
    plain_port, service_port = free_port(), free_port()
    servers = {
        "plain": Server(
            "plain FastAPI",
            [py, __file__, "--plain-server", str(bundle), "--port", str(plain_port), "--threads", str(args.threads)],
            plain_port,
            env,
            work / f"{name}-plain.log",
        ),
        "service": Server(
            "BentoML service",
            [py, "-m", "shipyard.deploy.service", "serve", str(out), "--port", str(service_port)],
            service_port,
            env,
            work / f"{name}-service.log",
        ),
    }
    sides: dict[str, Side] = {}
    batches: dict[str, Any] = {}
    for key in ("plain", "service"):
        server = servers[key]
        try:
            ready = server.start()
            # Warm-up: connections, lazy set-up, and BentoML's batching optimizer's first estimates.
            run_load(server.port, bodies, args.clients, 10, 30.0)
            before = batch_histogram(server.port) if key == "service" else None
            cpu = server.cpu_seconds()
            load = run_load(server.port, bodies, args.clients, args.requests, args.time_cap)
            cpu_ms = (server.cpu_seconds() - cpu) * 1000 / max(load.ok, 1)
            if before is not None:
                batches = batch_delta(before, batch_histogram(server.port))
        finally:
            server.stop()
        sides[key] = Side(ready, load, cpu_ms)
        log(
            f"  {key:<7} ready in {ready:.1f} s; {load.rps:8.1f} req/s, {cpu_ms:.2f} CPU ms/req, "
            f"p50 {load.pct(0.5):.1f} ms, p99 {load.pct(0.99):.1f} ms, "
            f"{load.ok} ok, {load.failed} failed {load.failures or ''}"
        )
    found = re.search(
        r"model loaded and warmed up in ([0-9.]+) s \(lightning imported: (\w+)\)",
        servers["service"].log_tail() + (work / f"{name}-service.log").read_text(errors="replace"),
    )
    model_load = f"{found.group(1)} s, lightning imported: {found.group(2)}" if found else "?"
    budget = 1.5 if name == HEAVY else 1.0
    return Result(name, source, fwd, budget, sides["plain"], sides["service"], batches, model_load)


# -- report ------------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    head = [
        "model",
        "fwd ms/row",
        "plain req/s",
        "service req/s",
        "ratio",
        "budget",
        "p50 plain/svc ms",
        "p99 plain/svc ms",
        "failed plain/svc",
        "CPU ms/req plain/svc",
        "mean batch",
        "status",
    ]
    rows = [head]
    for r in results:
        p, s = r.plain.load, r.service.load
        rows.append(
            [
                r.model,
                f"{r.forward_ms:.3f}",
                f"{p.rps:.0f}",
                f"{s.rps:.0f}",
                f"{r.ratio:.2f}x",
                f">= {r.budget:g}x",
                f"{p.pct(0.5):.1f} / {s.pct(0.5):.1f}",
                f"{p.pct(0.99):.1f} / {s.pct(0.99):.1f}",
                f"{p.failed} / {s.failed}",
                f"{r.plain.cpu_ms:.2f} / {r.service.cpu_ms:.2f}",
                f"{r.batches.get('mean_size', 0):.1f}",
                "PASS" if r.ok else "OVER",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def details(results: list[Result]) -> str:
    lines = []
    for r in results:
        sizes = ", ".join(f"{k}: {v}" for k, v in r.batches.get("sizes", {}).items())
        lines.append(
            f"{r.model} ({r.source}): batches formed {r.batches.get('batches', 0)} "
            f"[{sizes}]; ready in plain {r.plain.ready_s:.1f} s / service {r.service.ready_s:.1f} s; "
            f"service model load {r.model_load}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="breast_cancer,digits,churn," + HEAVY, help="comma-separated")
    parser.add_argument("--clients", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--requests", type=int, default=150, help="one-row requests per client")
    parser.add_argument("--time-cap", type=float, default=30.0, help="seconds per measured run, at most")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both servers")
    parser.add_argument("--workers", type=int, default=None, help="the service's workers (default: its config's)")
    parser.add_argument("--max-batch-size", type=int, default=64, help="the service's batching.max_batch_size")
    parser.add_argument("--no-batching", action="store_true", help="the service with batching.enabled=false")
    parser.add_argument("--max-latency-ms", type=int, default=1000, help="the service's batching.max_latency_ms")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (server logs) and print its path")
    parser.add_argument("--plain-server", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.plain_server:
        return run_plain_server(args.plain_server, args.port, args.threads)
    try:
        import fastapi  # noqa: F401
    except ImportError:
        print("benchmark failed: the baseline needs FastAPI: .venv/bin/pip install fastapi", file=sys.stderr)
        return 1
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in EXAMPLES]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {', '.join(EXAMPLES)}")
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-service-"))
    started = time.perf_counter()
    try:
        results = [bench_model(m, work, args) for m in models]
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]
    print(
        f"\n{args.clients} clients x {args.requests} one-row requests (cap {args.time_cap:g} s), "
        f"torch threads {args.threads}, "
        + (
            "batching off"
            if args.no_batching
            else f"batching max {args.max_batch_size} rows / {args.max_latency_ms} ms"
        )
        + "\n"
    )
    print(table(results))
    print()
    print(details(results))
    if max(load_before, load_after) > 0.5 * (os.cpu_count() or 1) + 1.0:
        print(
            f"\nWARNING: the machine was busy (1-minute load {load_before:.2f} before, {load_after:.2f} after, "
            f"{os.cpu_count()} cores): the servers and the load generator share the cores; rerun when quiet"
        )
    over = [r.model for r in results if not r.ok]
    print("\nOVER BUDGET: " + ", ".join(over) if over else "\nall service budgets met")
    out = REPO / ".bench" / "service.json"
    out.parent.mkdir(exist_ok=True)
    payload = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(time.perf_counter() - started, 1),
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load_average_1m": {"before": load_before, "after": load_after},
        },
        "settings": {k: v for k, v in vars(args).items() if k not in ("plain_server", "port")},
        "results": [
            {
                **{k: v for k, v in asdict(r).items() if k not in ("plain", "service")},
                "ratio": r.ratio,
                "ok": r.ok,
                **{
                    side: {
                        "ready_s": getattr(r, side).ready_s,
                        "server_cpu_ms_per_request": getattr(r, side).cpu_ms,
                        "rps": getattr(r, side).load.rps,
                        "p50_ms": getattr(r, side).load.pct(0.5),
                        "p99_ms": getattr(r, side).load.pct(0.99),
                        "ok": getattr(r, side).load.ok,
                        "failed": getattr(r, side).load.failed,
                        "failures": getattr(r, side).load.failures,
                    }
                    for side in ("plain", "service")
                },
            }
            for r in results
        ],
    }
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
