"""Search benchmarks, as ratios against baselines run in the same command:

1. framework overhead per trial (compose, sampling, storage, claiming, progress) against the
   trial's own work (``train_model`` + ``evaluate_bundle``), and the search loop against a plain
   loop calling those two functions on the same configs; budget: overhead <= 10 % of training;
2. the same n trials on 2 worker processes against 1 (each a ``python -m shipyard.search run``
   process, imports included, fresh study each): the speed-up.

``.venv/bin/python benchmarks/bench_search.py [--trials N] [--epochs E]``. Works in a throwaway
repository (see ``_common.py``); writes ``.bench/search.json``. Exits 0 when over budget (it is a
report), 1 when a benchmark cannot run. Every trial trains a fixed number of epochs (early
stopping off) and the space leaves the network's size alone, so trials cost about the same.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import BIN, REPO, THREADS, BenchError, bench_env, make_sandbox, run

PROJECT = "tabular/breast_cancer"
SEARCH = """
name: bench
objectives:
  - {metric: val/f1, direction: maximize}
  - {metric: latency_p95_ms, direction: minimize}
constraints: ["val/recall >= 0.5"]
space:
  optim.lr: {type: float, low: 1.0e-3, high: 3.0e-2, log: true}
  model.dropout: {type: float, low: 0.0, high: 0.3}
fixed: {trainer.early_stopping.enabled: false}
sampler: {name: tpe, params: {n_startup_trials: 4}}
n_trials: 8
"""


def write_inputs(root: Path) -> None:
    """The split and fitted preprocessing `make train` would leave (same functions)."""
    from shipyard.core.compose import compose, to_dict
    from shipyard.core.paths import ProjectPaths
    from shipyard.data import fetch_raw, fit_preprocessor, ingest, split_frame

    typed = compose(PROJECT, root=root)
    config = to_dict(typed)
    paths = ProjectPaths.of(root, PROJECT)
    data, task = config["data"], config["project"]["task"]
    fetch_raw(data["source"], root)
    frame = ingest(data, root)
    train, val, test, _ = split_frame(frame, typed.split, typed.data.target, task, typed.seed)
    paths.layer("05_model_input").mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("val", val), ("test", test)):
        part.to_parquet(paths.layer("05_model_input") / f"{name}.parquet", index=False)
    paths.layer("06_models").mkdir(parents=True, exist_ok=True)
    state = fit_preprocessor(train, data, config["preprocess"], task)
    (paths.layer("06_models") / "preprocessor.json").write_text(json.dumps(state))


def _reset(root: Path) -> None:
    shutil.rmtree(root / "data" / PROJECT / "08_reporting" / "search", ignore_errors=True)


def _epochs(epochs: int | None) -> list[str]:
    return [] if epochs is None else [f"trainer.max_epochs={epochs}"]


def overhead(root: Path, trials: int, epochs: int | None) -> dict[str, Any]:
    """Search loop vs a direct loop over the very same trial configs, in this process."""
    import optuna
    from shipyard.core.paths import ProjectPaths
    from shipyard.search import load_search_data, run_search
    from shipyard.search._check import compose_trial
    from shipyard.search._trial import train_and_evaluate

    args = ["search=bench", f"search.n_trials={trials}", *_epochs(epochs)]
    data = load_search_data(ProjectPaths.of(root, PROJECT))
    warm = compose_trial(PROJECT, args[2:], root)
    with tempfile.TemporaryDirectory() as work:  # imports and first-call costs, untimed
        train_and_evaluate(warm, data, Path(work))
    _reset(root)
    started = time.perf_counter()
    result = run_search(PROJECT, args, root=root, final=False, say=lambda _: None)
    total = time.perf_counter() - started
    study = optuna.load_study(study_name=result.spec.study_name, storage=result.storage.open())
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    if len(done) != trials:
        raise BenchError(f"{len(done)} of {trials} trials completed")
    loop = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    own = [t.user_attrs["run"]["seconds"] for t in done]
    train_s = sum(s["train"] for s in own)
    work_s = sum(s["train"] + s["evaluate"] for s in own)
    # The baseline: the same configs, composed beforehand, through the same two functions.
    configs = [compose_trial(PROJECT, [*args[2:], *r.overrides], root) for r in result.trials]
    started = time.perf_counter()
    for config in configs:
        with tempfile.TemporaryDirectory() as work:
            train_and_evaluate(config, data, Path(work))
    direct = time.perf_counter() - started
    per_trial = (loop - work_s) / trials
    return {
        "trials": trials,
        "epochs": int(statistics.mean(t.user_attrs["metrics"]["epochs"] for t in done)),
        "search_total_s": total,
        "search_loop_s": loop,
        "direct_loop_s": direct,
        "train_s_per_trial": train_s / trials,
        "work_s_per_trial": work_s / trials,
        "overhead_s_per_trial": per_trial,
        "compose_s_per_trial": statistics.mean(s.get("compose", 0.0) for s in own),
        "overhead_vs_train": per_trial / (train_s / trials),
        "loop_vs_direct": loop / direct,
        "fixed_s": total - loop,
    }


def workers(root: Path, trials: int, epochs: int | None, timeout: float, repeats: int) -> dict[str, Any]:
    """1 worker vs 2 workers on the same number of trials, each a fresh study in a subprocess,
    alternating ``repeats`` times (the median of each side counts). One worker runs with torch's
    default threads (what a user gets) and also with one thread, since two workers get one
    thread each: on a busy machine torch's threads spin against each other, and the second
    baseline separates that from the speed-up of running trials side by side."""
    env = bench_env(root)
    single = dict(env, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    cmd = [str(BIN / "python"), "-m", "shipyard.search", "run", PROJECT, "search=bench"]
    cmd += [f"search.n_trials={trials}", *_epochs(epochs), "--no-final"]
    runs = {"one_worker": (1, env), "one_worker_one_thread": (1, single), "two_workers": (2, env)}
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (count, run_env) in runs.items():
            _reset(root)
            seconds, _ = run([*cmd, "--workers", str(count)], root, run_env, timeout=timeout)
            times[name].append(seconds)
    medians = {f"{name}_s": statistics.median(values) for name, values in times.items()}
    return {
        "trials": trials,
        **medians,
        "speedup": medians["one_worker_s"] / medians["two_workers_s"],
        "speedup_vs_one_thread": medians["one_worker_one_thread_s"] / medians["two_workers_s"],
        "samples": times,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=None, help="trainer.max_epochs (default: the project's)")
    parser.add_argument("--timeout", type=float, default=600.0, help="per search subprocess (seconds)")
    parser.add_argument("--repeats", type=int, default=1, help="alternating runs of each worker count")
    parser.add_argument("--threads", type=int, default=None, help="cap torch/BLAS threads everywhere (both sides)")
    parser.add_argument("--skip-workers", action="store_true")
    args = parser.parse_args()
    os.environ.update(KEDRO_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1", DVC_NO_ANALYTICS="1")
    if args.threads:
        import torch

        THREADS[0] = args.threads  # every subprocess (bench_env) ...
        torch.set_num_threads(args.threads)  # ... and this process
    with tempfile.TemporaryDirectory(prefix="shipyard-bench-search-") as tmp:
        try:
            root = make_sandbox(Path(tmp))
            (root / "conf" / "search" / "bench.yaml").write_text(SEARCH)
            os.environ["SHIPYARD_ROOT"] = str(root)
            write_inputs(root)
            first = overhead(root, args.trials, args.epochs)
            second = None if args.skip_workers else workers(root, args.trials, args.epochs, args.timeout, args.repeats)
        except BenchError as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
    _print(first, second)
    out = REPO / ".bench" / "search.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"overhead": first, "workers": second, "cpus": os.cpu_count()}, indent=2) + "\n")
    return 0


def _print(first: dict[str, Any], second: dict[str, Any] | None) -> None:
    ok = first["overhead_vs_train"] <= 0.10
    rows = [
        (
            "overhead per trial / training",
            f"{first['overhead_s_per_trial'] * 1000:.0f} ms",
            f"{first['train_s_per_trial']:.3f} s train",
            f"{first['overhead_vs_train']:.1%}",
            "<= 10%",
            "PASS" if ok else "OVER",
        ),
        (
            "search loop / direct loop",
            f"{first['search_loop_s']:.2f} s",
            f"{first['direct_loop_s']:.2f} s",
            f"{first['loop_vs_direct']:.3f}x",
            "report",
            "-",
        ),
    ]
    if second:
        for baseline, key in (("1 worker", "speedup"), ("1 worker, 1 thread", "speedup_vs_one_thread")):
            base = second["one_worker_s"] if key == "speedup" else second["one_worker_one_thread_s"]
            rows.append(
                (
                    f"2 workers vs {baseline} ({second['trials']} trials)",
                    f"{second['two_workers_s']:.2f} s",
                    f"{base:.2f} s",
                    f"{second[key]:.2f}x speed-up",
                    "report",
                    "-",
                )
            )
    header = ("benchmark", "measured", "baseline", "ratio", "budget", "")
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    print(
        f"\n{first['trials']} trials x {first['epochs']} epochs; per trial: train {first['train_s_per_trial']:.3f} s, "
        f"train+evaluate {first['work_s_per_trial']:.3f} s, compose {first['compose_s_per_trial'] * 1000:.0f} ms; "
        f"one-off validation and result files {first['fixed_s']:.2f} s; {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    sys.exit(main())
