"""Scale-out engines against their one-machine counterparts, as ratios measured in one command:

1. search throughput (trials per minute) with 2 worker processes sharing a study in PostgreSQL
   against 2 worker processes on the journal file: the price of a database storage (a
   transaction per write, an advisory lock per claim, heartbeats);
2. batch rows/s on a Dask cluster (a ``dask scheduler`` and two ``dask worker`` processes
   started from the CLIs on 127.0.0.1, one thread each, the job submitted to the scheduler's
   address) against the local engine on the same Parquet input.

``.venv/bin/python benchmarks/bench_scale.py [--trials N] [--epochs E] [--rows R] [--repeats K]``;
about 4 minutes on 2 cores. Starts its own PostgreSQL (initdb in a temporary folder, as the
``postgres`` user when run as root, loopback only) and Dask processes, and stops them whatever
happens. Everything is written in temporary folders; the report goes to ``.bench/scale.json``.
Exits 0 (a report: no budget), 1 when a benchmark cannot run.

Trials per minute count from the first trial's start to the last trial's end as the study
records them (the processes' start-up is reported beside it); both sides run the same grid of
queued trials, so they train the same models. Batch rows/s is the job's own figure (first read
to last write, the plan and the part commits included), after one untimed warm-up run per
engine (the Dask workers load the model once, on their first task).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bench_batch
from _common import BIN, REPO, BenchError, bench_env, make_sandbox, run
from bench_batch import build_job, get_bundle, table, write_input
from bench_search import PROJECT, write_inputs

SEARCH = """
name: scale
objectives:
  - {metric: val/f1, direction: maximize}
  - {metric: params, direction: minimize}
space:
  model.hidden: {type: categorical, choices: [[16], [32], [32, 16], [64, 32]]}
  optim.lr: {type: categorical, choices: [0.003, 0.01, 0.03]}
fixed: {trainer.early_stopping.enabled: false, trainer.progress_bar: false}
sampler: {name: grid}
"""
EVAL = ["evaluate.latency_repeats=3", "evaluate.latency_warmup=1"]


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_tool(name: str) -> str:
    debian = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)  # apt's postgresql
    found = shutil.which(name) or (str(debian[0]) if debian else None)
    if found is None:
        raise BenchError(f"PostgreSQL's {name} is not installed (apt-get install -y postgresql)")
    return str(found)


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 from initdb; yields the URL of its ``postgres`` database."""
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="shipyard-bench-pg-"))
    data, started = folder / "data", False
    try:
        if as_user:
            shutil.chown(folder, "postgres", "postgres")
        init = [*as_user, _pg_tool("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"]
        subprocess.run(init, check=True, capture_output=True)
        port = _free_port()
        # fsync stays on: the figure is about a database as it would run.
        options = f"-k {folder} -p {port} -c listen_addresses=127.0.0.1"
        start = [*as_user, _pg_tool("pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]
        done = subprocess.run(start, capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"PostgreSQL did not start: {done.stderr}")
        started = True
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            stop = [*as_user, _pg_tool("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
            subprocess.run(stop, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def dask_cluster(folder: Path, threads: int | None) -> Iterator[str]:
    """``dask scheduler`` and two ``dask worker`` processes (one thread each) on 127.0.0.1."""
    from distributed import Client

    env = bench_env(None)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    info = folder / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> None:
        procs.append(
            subprocess.Popen(
                [str(BIN / "dask"), *args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--dashboard-address", "127.0.0.1:0",
              "--scheduler-file", str(info))  # fmt: skip
        deadline = time.monotonic() + 120
        while not info.is_file():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise BenchError("the dask scheduler did not start")
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        for i in range(2):
            start("worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard", "--name", f"w{i}")
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=180)
        yield address
    finally:
        for proc in reversed(procs):
            _stop(proc)


# -- 1. search ---------------------------------------------------------------------------------


def _search_rate(root: Path, storage: str | None, trials: int, epochs: int) -> dict[str, Any]:
    """One search of ``trials`` queued grid points on 2 worker processes; trials per minute."""
    import optuna

    shutil.rmtree(root / "data" / PROJECT / "08_reporting" / "search", ignore_errors=True)
    name = f"scale-{time.monotonic_ns()}"  # a fresh study each run (the database keeps old ones)
    args = ["search=scale", f"search.n_trials={trials}", f"trainer.max_epochs={epochs}"]
    args += [f"search.study_name={name}", *EVAL, *([f"search.storage={storage}"] if storage else [])]
    cmd = [str(BIN / "python"), "-m", "shipyard.search", "run", PROJECT, *args, "--workers", "2", "--no-final"]
    wall, _ = run(cmd, root, bench_env(root))
    folder = root / "data" / PROJECT / "08_reporting" / "search"
    opened: Any = storage
    if storage is None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        opened = JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    done = [t for t in optuna.load_study(study_name=name, storage=opened).trials if t.state.name == "COMPLETE"]
    if len(done) != trials:
        raise BenchError(f"{len(done)} of {trials} trials completed")
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    return {"trials": trials, "span_s": span, "process_s": wall, "trials_per_minute": trials * 60 / span}


def search(url: str, trials: int, epochs: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-scale-") as tmp:
        root = make_sandbox(Path(tmp))
        (root / "conf" / "search" / "scale.yaml").write_text(SEARCH)
        os.environ["SHIPYARD_ROOT"] = str(root)
        write_inputs(root)
        samples: dict[str, list[dict[str, Any]]] = {"journal": [], "postgresql": []}
        for i in range(repeats):
            for side, storage in (("journal", None), ("postgresql", url)):
                samples[side].append(_search_rate(root, storage, trials, epochs))
            j, p = samples["journal"][-1], samples["postgresql"][-1]
            log(
                f"  round {i + 1}/{repeats}: journal {j['trials_per_minute']:.1f} trials/min, "
                f"PostgreSQL {p['trials_per_minute']:.1f} trials/min"
            )
    rounds = [p["trials_per_minute"] / j["trials_per_minute"] for j, p in zip(*samples.values(), strict=True)]
    rate = {s: statistics.median(x["trials_per_minute"] for x in v) for s, v in samples.items()}
    return {"trials_per_minute": rate, "ratio": statistics.median(rounds), "round_ratios": rounds, "samples": samples}


# -- 2. batch ----------------------------------------------------------------------------------


def _batch_rate(job: Path, source: Path, out: Path, scheduler: str | None, threads: int | None) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(BIN / "python"), "-m", "shipyard.deploy.batch", "run", str(job), "--input", str(source)]
    engine = ["--scheduler", scheduler] if scheduler else ["--engine", "local"]
    cmd += ["--output", str(out), "--no-progress", *engine]
    env = bench_env(None)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    wall, output = run(cmd, out.parent, env)
    summary = json.loads(output.strip().splitlines()[-1])
    return {"rows": summary["rows_read"], "rows_per_second": summary["rows_per_second"], "process_s": wall}


def batch(rows: int, repeats: int, threads: int | None) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="shipyard-bench-scale-batch-"))
    try:
        bundle = get_bundle(work, None, log)
        job = build_job(bundle, work)
        source = work / "input.parquet"
        write_input(bundle, source, rows)
        samples: dict[str, list[dict[str, Any]]] = {"local": [], "dask": []}
        with dask_cluster(work, threads) as address:
            for scheduler in (None, address):  # warm-up: page cache, and the workers' first model load
                _batch_rate(job, source, work / "out", scheduler, threads)
            for i in range(repeats):
                for side, scheduler in (("local", None), ("dask", address)):
                    samples[side].append(_batch_rate(job, source, work / "out", scheduler, threads))
                loc, dsk = samples["local"][-1], samples["dask"][-1]
                log(
                    f"  round {i + 1}/{repeats}: local {loc['rows_per_second']:,.0f} rows/s, "
                    f"Dask cluster {dsk['rows_per_second']:,.0f} rows/s"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rounds = [d["rows_per_second"] / loc["rows_per_second"] for loc, d in zip(*samples.values(), strict=True)]
    rate = {s: statistics.median(x["rows_per_second"] for x in v) for s, v in samples.items()}
    return {"rows": rows, "rows_per_second": rate, "ratio": statistics.median(rounds), "round_ratios": rounds,
            "samples": samples}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8, help="search trials per run (grid points, at most 12)")
    parser.add_argument("--epochs", type=int, default=10, help="trainer.max_epochs of every trial")
    parser.add_argument("--rows", type=int, default=400_000, help="rows of the batch input")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of both sides of each ratio")
    parser.add_argument("--threads", type=int, help="cap torch/BLAS threads of the batch processes")
    parser.add_argument("--only", choices=("search", "batch"), help="run one of the two benchmarks")
    args = parser.parse_args(argv)
    os.environ.update(KEDRO_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", DVC_NO_ANALYTICS="1")
    load = os.getloadavg()[0]
    first = second = None
    try:
        if args.only != "batch":
            with postgres() as url:
                log(f"search: {args.trials} trials x {args.epochs} epochs, 2 workers, PostgreSQL vs journal file")
                first = search(url, args.trials, args.epochs, args.repeats)
        if args.only != "search":
            log(f"batch: {args.rows:,} rows, Dask cluster (2 workers x 1 thread) vs local engine")
            second = batch(args.rows, args.repeats, args.threads)
    except (BenchError, bench_batch.BenchError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    rows = [["benchmark", "measured", "baseline", "ratio", "budget"]]
    if first:
        rate = first["trials_per_minute"]
        rows.append(["search trials/min, 2 workers: PostgreSQL vs journal file", f"{rate['postgresql']:.1f} trials/min",
                     f"{rate['journal']:.1f} trials/min", f"{first['ratio']:.2f}×", "report"])  # fmt: skip
    if second:
        rate = second["rows_per_second"]
        rows.append(["batch rows/s: Dask cluster (2 workers) vs local engine", f"{rate['dask']:,.0f} rows/s",
                     f"{rate['local']:,.0f} rows/s", f"{second['ratio']:.2f}×", "report"])  # fmt: skip
    print()
    if args.threads:
        print(f"(batch processes ran with OMP_NUM_THREADS={args.threads})")
    print(table(rows))
    rounds = [f"{name} " + ", ".join(f"{r:.2f}" for r in part["round_ratios"])
              for name, part in (("search", first), ("batch", second)) if part]  # fmt: skip
    print(f"\nrounds: {'; '.join(rounds)}; {os.cpu_count()} CPUs, load average {load:.1f} at the start")
    out = REPO / ".bench" / "scale.json"
    out.parent.mkdir(exist_ok=True)
    report = {"search": first, "batch": second, "threads": args.threads, "cpus": os.cpu_count(), "load": load}
    out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
