"""Monitoring budgets (issue: close the loop), as ratios measured in one command:

- false alarms: windows replayed from the reference distribution at 1k, 100k and 1M rows alarm
  at most at the configured rate (drift.alpha, 5 % of windows);
- detection: a 0.1 sigma mean shift in one feature at 100k rows is caught;
- streaming: monitoring 1M logged rows x 30 features against just reading those rows from
  Parquet (time ratio, aim <= 3x), and peak memory at 1M rows against 100k rows (bounded by a
  batch, not the window: ~1x);
- logging cost: service requests/s at 32 clients and batch rows/s with the prediction log on vs
  off (>= 0.95x each).

``.venv/bin/python benchmarks/bench_monitor.py`` (``--windows``, ``--skip-service``,
``--skip-batch``); a few minutes on 2 cores. Everything happens in a temporary folder. Prints a
table, writes ``.bench/monitor.json``; exits 0 when a budget is over (a report), 1 only when a
benchmark cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
FEATURES = 30


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _frame(rows: int, seed: int, shift: float = 0.0) -> Any:
    import pandas as pd

    rng = np.random.default_rng(seed)
    data = {f"x{i}": rng.normal(0.0, 1.0 + i / 10, rows) for i in range(FEATURES)}
    data["x0"] = data["x0"] + shift
    data["_prediction"] = np.where(data["x1"] > 0, "1", "0")
    return pd.DataFrame(data)


def _profile() -> dict[str, Any]:
    from shipyard.data.profile import reference_profile

    ref = _frame(50_000, 0)
    names = [f"x{i}" for i in range(FEATURES)]
    return reference_profile(ref, names, set(), list(ref["_prediction"]), "binary", {}, 20, ["0", "1"])


def _judge(frame: Any, profile: dict[str, Any]) -> dict[str, Any]:
    import pyarrow as pa
    from shipyard.core.schema import DriftConf
    from shipyard.monitor import monitor_window

    batches = pa.Table.from_pandas(frame, preserve_index=False).to_batches(max_chunksize=65536)
    return monitor_window(
        batches,
        profile,
        DriftConf(),
        project="bench/monitor",
        version=None,
        since=None,
        until=None,
        source="bench",
        prediction_column="_prediction",
    )


def bench_alarms(windows: dict[int, int]) -> dict[str, Any]:
    profile = _profile()
    out: dict[str, Any] = {}
    for rows, count in windows.items():
        alarms = sum(_judge(_frame(rows, 1000 + rows + k), profile)["status"] != "healthy" for k in range(count))
        out[f"false_alarm_rate_{rows}"] = alarms / count
        log(f"  no drift, {rows} rows: {alarms}/{count} windows alarmed")
    caught = [bool(_judge(_frame(100_000, 7000 + k, shift=0.1), profile)["drifted"]) for k in range(5)]
    out["detect_0.1sigma_100k"] = sum(caught) / len(caught)
    log(f"  0.1 sigma shift, 100k rows: caught in {sum(caught)}/{len(caught)} windows")
    return out


# -- streaming over a Parquet log: a child process per measurement (peak RSS is per process) --------


def _write_log(folder: Path, rows: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    step = 200_000
    for start in range(0, rows, step):
        frame = _frame(min(step, rows - start), start)
        pq.write_table(
            pa.Table.from_pandas(frame, preserve_index=False),
            folder / f"part-{start:09d}.parquet",
            row_group_size=65536,
        )


def _peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def child(mode: str, folder: str, profile_file: str) -> None:
    # Timed after the imports, as the batch benchmark does: scipy's first import is a fixed cost
    # of seconds, not a cost per row.
    import scipy.spatial.distance
    import scipy.stats  # noqa: F401
    from shipyard.core.schema import DriftConf
    from shipyard.monitor import judge_window
    from shipyard.predlog import LogLocation, read_batches

    location = LogLocation(path=Path(folder))
    profile = json.loads(Path(profile_file).read_text())
    columns = [*profile["features"], "_prediction"]
    base = _peak_kb()
    started = time.perf_counter()
    if mode == "read":
        rows = sum(b.num_rows for b in read_batches(location, columns))
    else:
        rows = judge_window(read_batches(location, columns), profile, DriftConf(), prediction_column="_prediction")[
            "rows"
        ]
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "rows": rows, "peak_kb": _peak_kb(), "base_kb": base}))


def _run_child(mode: str, folder: Path, profile_file: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(folder), str(profile_file)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} child failed:\n{proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def bench_streaming(work: Path, repeats: int) -> dict[str, Any]:
    profile_file = work / "profile.json"
    profile_file.write_text(json.dumps(_profile()))
    big, small = work / "log-1m", work / "log-100k"
    _write_log(big, 1_000_000)
    _write_log(small, 100_000)
    read = [_run_child("read", big, profile_file)["seconds"] for _ in range(repeats)]
    runs = [_run_child("monitor", big, profile_file) for _ in range(repeats)]
    small_run = _run_child("monitor", small, profile_file)
    ratio = statistics.median(r["seconds"] for r in runs) / statistics.median(read)
    peak_big = statistics.median(r["peak_kb"] - r["base_kb"] for r in runs)
    peak_small = small_run["peak_kb"] - small_run["base_kb"]
    log(
        f"  1M x {FEATURES}: read {statistics.median(read):.2f} s, monitor "
        f"{statistics.median(r['seconds'] for r in runs):.2f} s ({ratio:.2f}x); peak memory growth "
        f"{peak_big / 1024:.0f} MiB at 1M vs {peak_small / 1024:.0f} MiB at 100k"
    )
    return {
        "read_seconds_1m": statistics.median(read),
        "monitor_seconds_1m": statistics.median(r["seconds"] for r in runs),
        "monitor_over_read": ratio,
        "peak_growth_mib_1m": peak_big / 1024,
        "peak_growth_mib_100k": peak_small / 1024,
        "peak_1m_over_100k": peak_big / max(peak_small, 1),
    }


# -- logging on vs off -----------------------------------------------------------------------------


def bench_batch_logging(work: Path, rows: int, rounds: int) -> dict[str, Any]:
    import pandas as pd
    from bench_service import get_bundle
    from shipyard.deploy._predlog import log_spec
    from shipyard.deploy.batch import build_batch_job, run_batch_job
    from shipyard.train.bundle import ModelBundle

    bundle, source = get_bundle("breast_cancer", work)
    meta = ModelBundle.load(bundle).meta
    rng = np.random.default_rng(0)
    # Rows inside the bundle's feature schema: the job rejects the rest before scoring.
    frame = pd.DataFrame({f["name"]: rng.uniform(f["min"], f["max"], rows) for f in meta["feature_schema"]})
    frame.insert(0, "row_id", np.arange(rows))
    data = work / "batch-in.parquet"
    frame.to_parquet(data)
    spec = log_spec({"flush_rows": 50_000}, "unused")
    jobs = {}
    for side, plog in (("off", None), ("on", spec)):
        jobs[side] = work / f"job-{side}"
        build_batch_job(
            bundle, jobs[side], {"chunk_size": 50_000}, project="bench/batch", version="b1", prediction_log=plog
        )
    times: dict[str, list[float]] = {"off": [], "on": []}
    for k in range(rounds):
        for side in ("off", "on"):
            os.environ["SHIPYARD_PREDICTION_LOG"] = str(work / f"plog-{k}")
            started = time.perf_counter()
            run_batch_job(jobs[side], str(data), str(work / f"out-{side}-{k}"), resume=False, progress=False)
            times[side].append(time.perf_counter() - started)
    os.environ.pop("SHIPYARD_PREDICTION_LOG", None)
    ratio = statistics.median(times["off"]) / statistics.median(times["on"])
    log(
        f"  batch ({source}), {rows} rows: off {rows / statistics.median(times['off']):,.0f} rows/s, "
        f"on {rows / statistics.median(times['on']):,.0f} rows/s ({ratio:.3f}x)"
    )
    return {"batch_rows": rows, "batch_on_over_off": ratio}


def bench_service_logging(work: Path, requests: int, clients: int) -> dict[str, Any]:
    from bench_service import Server, bench_env, free_port, get_bundle, request_bodies, run_load
    from shipyard.deploy._predlog import log_spec
    from shipyard.deploy.service import build_service

    bundle, source = get_bundle("breast_cancer", work)
    env = bench_env(work, 1)
    os.environ["BENTOML_HOME"] = env["BENTOML_HOME"]
    bodies = request_bodies(bundle, 64)
    rps: dict[str, list[float]] = {"off": [], "on": []}
    outs = {}
    for side, plog in (("off", None), ("on", log_spec({}, "unused"))):
        outs[side] = work / f"svc-{side}"
        build_service(
            bundle, outs[side], {"bento": {"build": False}}, project="bench/service", version="s1", prediction_log=plog
        )
    for _ in range(2):
        for side in ("off", "on"):
            port = free_port()
            server = Server(
                side,
                [sys.executable, "-m", "shipyard.deploy.service", "serve", str(outs[side]), "--port", str(port)],
                port,
                dict(env, SHIPYARD_PREDICTION_LOG=str(work / "svc-log")),
                work / f"svc-{side}.log",
            )
            try:
                server.start()
                run_load(port, bodies, clients, 200, 30.0)
                rps[side].append(run_load(port, bodies, clients, requests, 120.0).rps)
            finally:
                server.stop()
    ratio = statistics.median(rps["on"]) / statistics.median(rps["off"])
    log(
        f"  service ({source}), {clients} clients: off {statistics.median(rps['off']):.0f} req/s, "
        f"on {statistics.median(rps['on']):.0f} req/s ({ratio:.3f}x)"
    )
    return {"service_clients": clients, "service_on_over_off": ratio}


BUDGETS = {
    "false_alarm_rate_1000": ("<=", 0.05),
    "false_alarm_rate_100000": ("<=", 0.05),
    "false_alarm_rate_1000000": ("<=", 0.05),
    "detect_0.1sigma_100k": (">=", 1.0),
    "monitor_over_read": ("<=", 3.0),
    "peak_1m_over_100k": ("<=", 1.5),
    "batch_on_over_off": (">=", 0.95),
    "service_on_over_off": (">=", 0.95),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--windows", type=int, default=20, help="no-drift windows at 1k and 100k rows (1M: a quarter)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-rows", type=int, default=400_000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--skip-stats", action="store_true", help="skip false alarms, detection and streaming")
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        work = Path(tmp)
        try:
            if not args.skip_stats:
                log("false alarms and detection")
                windows = {1_000: args.windows, 100_000: args.windows, 1_000_000: max(args.windows // 4, 2)}
                results.update(bench_alarms(windows))
                log("streaming over a Parquet log")
                results.update(bench_streaming(work, args.repeats))
            if not args.skip_batch:
                log("batch job, prediction log off vs on")
                results.update(bench_batch_logging(work, args.batch_rows, args.repeats))
            if not args.skip_service:
                log("service, prediction log off vs on")
                results.update(bench_service_logging(work, args.requests, args.clients))
        except (RuntimeError, OSError) as exc:
            log(f"benchmark could not run: {exc}")
            return 1
    print(f"{'measure':<28} {'value':>10}  budget")
    for key, value in results.items():
        budget = BUDGETS.get(key)
        mark = ""
        if budget:
            op, limit = budget
            ok = value <= limit if op == "<=" else value >= limit
            mark = f"{op} {limit}  {'ok' if ok else 'OVER'}"
        print(f"{key:<28} {value:>10.3f}  {mark}")
    out = REPO / ".bench" / "monitor.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
