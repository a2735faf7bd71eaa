"""Batch job budgets (docs/architecture.md), as ratios measured in one command:

- rows/s of a batch job against a raw torch loop over the same Parquet file (>= 0.9x);
- peak memory of the batch job as its input grows 10x (<= 1.2x).

``.venv/bin/python benchmarks/bench_batch.py`` (``--rows``, ``--memory-rows``, ``--repeats``,
``--threads``, ``--bundle``); about 1.5 minutes on 2 cores. Everything happens in a temporary
folder: the model bundle (copied from ``data/tabular/breast_cancer/06_models/bundle``, or trained
there when the repository has none), the job, the inputs and the outputs.

Each measurement is a fresh process (``--child``); the two sides of the throughput ratio run back
to back in each round. Throughput is timed inside the process after its imports, from the first
read to the last write (the job's Kedro plan, row checks, bundle load and part commits included);
CPU seconds and whole-process times (interpreter start and imports included) are reported beside
it. Peak memory is the process's peak RSS (VmHWM). Prints a table, writes ``.bench/batch.json``;
exits 0 when a budget is over (a report), 1 only when a benchmark cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROJECT = "tabular/breast_cancer"
REPO_BUNDLE = REPO / "data" / "tabular" / "breast_cancer" / "06_models" / "bundle"
CHUNK = 10000
TIMEOUT = 600.0
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class BenchError(RuntimeError):
    """A benchmark could not run (as opposed to running over budget)."""


# -- the measured processes --------------------------------------------------------------------


def _cpu() -> float:
    """User + system CPU seconds of this process so far (all threads)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _memory_kb() -> dict[str, int]:
    """Current and peak resident set size of this process (Linux /proc)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def _preimport(*modules: str) -> None:
    """Libraries load before the clock starts on both sides: the ratio is about rows/s, and
    the whole processes' times are reported beside it."""
    import importlib

    for name in modules:
        importlib.import_module(name)


COMMON = ("torch", "numpy", "pandas", "pyarrow", "pyarrow.parquet", "shipyard.train.bundle")


def child_job(job_dir: str, source: str, out: str) -> dict[str, Any]:
    import shipyard.deploy.batch as batch
    from shipyard.deploy.batch import run_batch_job

    # What the job sets before it first imports Kedro (quiet logging); here Kedro loads earlier.
    os.environ.setdefault("KEDRO_LOGGING_CONFIG", str(Path(batch.__file__).with_name("logging.yml")))

    _preimport(*COMMON, "kedro.io", "kedro.runner", "kedro.pipeline", "tqdm.auto", "shipyard.deploy.batch.nodes")
    after_imports = _memory_kb()["VmRSS"]
    cpu, start = _cpu(), time.perf_counter()
    summary = run_batch_job(Path(job_dir), source, out, resume=False, progress=False)
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    return {"seconds": seconds, "cpu": cpu, "rows": summary["rows_scored"], "rss_after_imports_kb": after_imports} | (
        _memory_kb()
    )


def child_raw(bundle_dir: str, source: str, out: str) -> dict[str, Any]:
    """The baseline: read the file in batches, the bundle's preprocessing, the net, write scores."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch
    from shipyard.train.bundle import ModelBundle

    _preimport(*COMMON)
    after_imports = _memory_kb()["VmRSS"]
    cpu, start = _cpu(), time.perf_counter()
    bundle = ModelBundle.load(Path(bundle_dir))
    pre, net = bundle.preprocessor, bundle.net
    key = pq.ParquetFile(source).schema_arrow.names[0]
    rows, writer = 0, None
    with torch.inference_mode():
        for batch in pq.ParquetFile(source).iter_batches(batch_size=CHUNK, columns=[key, *pre.features]):
            x = pre.transform(batch.to_pandas())
            scores = torch.sigmoid(net(torch.from_numpy(x))[:, 0]).numpy()
            table = pa.table({key: batch.column(key), "score": scores})
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            rows += len(scores)
    if writer is not None:
        writer.close()
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    return {"seconds": seconds, "cpu": cpu, "rows": rows, "rss_after_imports_kb": after_imports, **_memory_kb()}


# -- setup -------------------------------------------------------------------------------------


def env(threads: int | None) -> dict[str, str]:
    out = dict(os.environ)
    out.update(KEDRO_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", DVC_NO_ANALYTICS="1", BENTOML_DO_NOT_TRACK="True")
    if threads:
        out.update(dict.fromkeys(THREAD_VARS, str(threads)))
    return out


def run_child(args: list[str], threads: int | None) -> tuple[float, dict[str, Any]]:
    """Wall seconds of one ``--child`` process and the JSON it prints."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--child", *args],
            env=env(threads),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"child {args[0]} ran past {TIMEOUT:.0f} s") from exc
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise BenchError(f"child {args[0]} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def get_bundle(work: Path, given: Path | None, log: Any) -> Path:
    target = work / "bundle"
    source = given or (REPO_BUNDLE if (REPO_BUNDLE / "bundle.json").is_file() else None)
    if source is not None:
        shutil.copytree(source, target)  # a copy: a concurrent `make train` may rewrite the original
        return target
    log("no trained breast_cancer bundle in data/: training one (about a minute)")
    # The project's typed config, as `make train` composes it (a small network, 5 epochs).
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from _common import train_project\n"
        "root = Path(sys.argv[1])\n"
        "_, _, bundle = train_project('tabular/breast_cancer', ['model.hidden=[32,16]', 'optim.lr=0.003',\n"
        "  'trainer.early_stopping.enabled=false'], root, root, max_epochs=5)\n"
        "bundle.save(root / 'bundle')\n"
    )
    done = subprocess.run(  # from this folder: `import _common` finds the shared helper
        [sys.executable, "-c", code, str(work)],
        env=env(None),
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if done.returncode != 0:
        raise BenchError(f"training a bundle failed:\n{done.stderr[-3000:]}")
    return target


def write_input(bundle: Path, path: Path, rows: int) -> None:
    """``rows`` rows of breast-cancer features (the data set repeated), written in slices so
    that generating the 10x input does not itself take much memory."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sklearn.datasets import load_breast_cancer

    features = json.loads((bundle / "bundle.json").read_text())["preprocessor"]["features"]
    base = load_breast_cancer(as_frame=True).frame[features].to_numpy()
    writer = None
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        idx = np.arange(start, start + n) % len(base)
        columns = {"row_id": pa.array(np.arange(start, start + n, dtype=np.int64))}
        columns.update({name: pa.array(base[idx, j]) for j, name in enumerate(features)})
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=100_000)
    if writer is not None:
        writer.close()


def build_job(bundle: Path, work: Path) -> Path:
    from shipyard.deploy.batch import build_batch_job

    job = work / "job"
    build_batch_job(bundle, job, {"chunk_size": CHUNK}, project=PROJECT, version="bench")
    return job


# -- the benchmark -----------------------------------------------------------------------------


def throughput(work: Path, job: Path, bundle: Path, source: Path, repeats: int, threads: int | None, log: Any) -> dict:
    samples: dict[str, list[dict[str, Any]]] = {"job": [], "raw": []}
    for i in range(repeats):
        for side in ("job", "raw"):
            out = work / f"out-{side}"
            shutil.rmtree(out, ignore_errors=True)
            out.unlink(missing_ok=True) if out.is_file() else None
            args = [str(job), str(source), str(out)] if side == "job" else [str(bundle), str(source), str(out)]
            wall, result = run_child([side, *args], threads)
            samples[side].append({**result, "wall": wall})
        j, r = samples["job"][-1], samples["raw"][-1]
        log(
            f"  round {i + 1}/{repeats}: job {j['rows'] / j['seconds']:,.0f} rows/s, "
            f"raw loop {r['rows'] / r['seconds']:,.0f} rows/s"
        )
    rate = {s: statistics.median(x["rows"] / x["seconds"] for x in v) for s, v in samples.items()}
    wall = {s: statistics.median(x["wall"] for x in v) for s, v in samples.items()}
    cpu = {s: statistics.median(x["cpu"] for x in v) for s, v in samples.items()}
    # Each round runs both sides back to back, so a round's ratio sees the same machine load;
    # the median of the rounds' ratios is steadier than the ratio of the medians on a busy machine.
    rounds = [j["rows"] / j["seconds"] / (r["rows"] / r["seconds"]) for j, r in zip(*samples.values(), strict=True)]
    return {
        "rows_per_second": rate,
        "ratio": statistics.median(rounds),
        "round_ratios": rounds,
        "ratio_of_medians": rate["job"] / rate["raw"],
        "cpu_seconds": cpu,
        "cpu_ratio": cpu["raw"] / cpu["job"],
        "process_wall_seconds": wall,
        "samples": samples,
    }


def memory(work: Path, job: Path, bundle: Path, rows: int, threads: int | None, log: Any) -> dict:
    peaks: dict[str, dict[str, Any]] = {}
    for scale in (1, 10):
        source = work / f"input-{scale}x.parquet"
        if not source.exists():
            write_input(bundle, source, rows * scale)
        out = work / f"out-mem-{scale}x"
        shutil.rmtree(out, ignore_errors=True)
        _, result = run_child(["job", str(job), str(source), str(out)], threads)
        peaks[f"{scale}x"] = result
        log(f"  {scale}x ({rows * scale:,} rows): peak RSS {result['VmHWM'] / 1024:.0f} MiB")
        shutil.rmtree(out, ignore_errors=True)
    one, ten = peaks["1x"], peaks["10x"]
    return {
        "peak_rss_kb": {k: v["VmHWM"] for k, v in peaks.items()},
        "ratio": ten["VmHWM"] / one["VmHWM"],
        "above_imports_kb": {k: v["VmHWM"] - v["rss_after_imports_kb"] for k, v in peaks.items()},
    }


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the throughput input")
    parser.add_argument("--memory-rows", type=int, default=200_000, help="rows of the 1x memory input (and 10x that)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side of the throughput ratio")
    parser.add_argument("--threads", type=int, help="cap torch/BLAS threads in every process (1 on a busy machine)")
    parser.add_argument("--bundle", type=Path, help="a breast_cancer model bundle (default: the repository's)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and print its path")
    parser.add_argument("--child", nargs=4, metavar=("SIDE", "A", "B", "C"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        side, *rest = args.child
        print(json.dumps(child_job(*rest) if side == "job" else child_raw(*rest)))
        return 0

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-batch-"))
    try:
        bundle = get_bundle(work, args.bundle, log)
        job = build_job(bundle, work)
        source = work / "input-speed.parquet"
        write_input(bundle, source, args.rows)
        log(f"throughput: batch job vs raw torch loop, {args.rows:,} rows, chunk {CHUNK}")
        speed = throughput(work, job, bundle, source, args.repeats, args.threads, log)
        log("peak memory: batch job at 1x and 10x the input")
        mem = memory(work, job, bundle, args.memory_rows, args.threads, log)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    rate = speed["rows_per_second"]
    peaks = mem["peak_rss_kb"]
    ok_speed, ok_mem = speed["ratio"] >= 0.9, mem["ratio"] <= 1.2
    print()
    if args.threads:
        print(f"(every process ran with OMP_NUM_THREADS={args.threads})")
    print(
        table(
            [
                ["benchmark", "measured", "baseline", "ratio", "budget", "status"],
                [
                    "batch job rows/s vs raw torch loop (median of rounds)",
                    f"{rate['job']:,.0f} rows/s",
                    f"{rate['raw']:,.0f} rows/s (raw loop)",
                    f"{speed['ratio']:.3f}×",
                    "≥ 0.9×",
                    "PASS" if ok_speed else "OVER",
                ],
                [
                    "batch job peak RSS, 10x vs 1x input",
                    f"{peaks['10x'] / 1024:,.0f} MiB",
                    f"{peaks['1x'] / 1024:,.0f} MiB (1x)",
                    f"{mem['ratio']:.3f}×",
                    "≤ 1.2×",
                    "PASS" if ok_mem else "OVER",
                ],
            ]
        )
    )
    above = mem["above_imports_kb"]
    wall = speed["process_wall_seconds"]
    print()
    rounds = ", ".join(f"{r:.3f}" for r in speed["round_ratios"])
    print(f"rows/s ratio per round (job / raw loop, the budget line is their median): {rounds}")
    print(
        f"ratio of median rows/s {speed['ratio_of_medians']:.3f}×; CPU seconds, median: "
        f"job {speed['cpu_seconds']['job']:.2f}, raw loop {speed['cpu_seconds']['raw']:.2f} "
        f"(rows per CPU second ratio {speed['cpu_ratio']:.3f}×)"
    )
    print(
        f"whole processes (interpreter, imports, run), median: job {wall['job']:.2f} s, raw loop {wall['raw']:.2f} s; "
        f"peak RSS above the after-import level: 1x {above['1x'] / 1024:.0f} MiB, 10x {above['10x'] / 1024:.0f} MiB"
    )
    load_after = os.getloadavg()[0]
    if max(load_before, load_after) > 0.5 * (os.cpu_count() or 1) + 1.0:
        print(
            f"WARNING: the machine was busy (1-minute load {load_before:.2f} before, {load_after:.2f} after): "
            "rerun when quiet, or with --threads 1"
        )
    total = time.perf_counter() - started
    out = REPO / ".bench" / "batch.json"
    out.parent.mkdir(exist_ok=True)
    payload = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bench_seconds": round(total, 1),
        "rows": {"throughput": args.rows, "memory_1x": args.memory_rows},
        "threads": args.threads,
        "load_average_1m": {"before": load_before, "after": load_after},
        "throughput": speed,
        "memory": mem,
        "ok": {"throughput": ok_speed, "memory": ok_mem},
    }
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out.relative_to(REPO)} in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
