"""Shipyard's performance budgets (docs/architecture.md), measured as ratios against a baseline run in
the same command: ``make bench`` or ``.venv/bin/python benchmarks/run.py``.

Every benchmark runs in a throwaway copy of the repository (see ``_common.py``), so the real
``data/`` and ``pipelines/`` are never touched. Prints a table and writes ``.bench/results.json``.
Exits 0 when a budget is over (this is a report); non-zero only when a benchmark cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import (
    BIN,
    GATE_FAILED,
    LAST_CPU,
    MAKE_FAILED,
    REPO,
    THREADS,
    TIMEOUT,
    BenchError,
    bench_env,
    check_exit,
    child_cpu,
    make_sandbox,
    run,
)

PROJECT = "tabular/breast_cancer"
# Hydra overrides for every `shipyard` command of a run (``--fixed-epochs`` adds one).
OVERRIDES: list[str] = []
FIXED_EPOCHS = "trainer.early_stopping.enabled=false"
STAGE_LINE = re.compile(r"^▶ (\S+)\s*$")


@dataclass
class Row:
    name: str
    measured: float
    baseline: float | None
    baseline_name: str
    unit: str  # "s" | "ratio"
    budget: str
    ok: bool
    ratio: float | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)

    def cells(self) -> list[str]:
        base = f"{self.baseline:.3f} s ({self.baseline_name})" if self.baseline is not None else self.baseline_name
        ratio = f"{self.ratio:.3f}×" if self.ratio is not None else "-"
        return [self.name, f"{self.measured:.3f} s", base, ratio, self.budget, "PASS" if self.ok else "OVER"]


# -- processes ---------------------------------------------------------------------------------


def run_staged(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, dict[str, float], str]:
    """Like :func:`run`, and time each stage from the ``▶ <stage>`` lines as they stream out.

    ``startup`` is everything before the first stage (interpreter, imports, compose, compile,
    opening the DVC repo); the last stage's time includes writing dvc.lock and exiting.
    """
    cpu = child_cpu()
    start = time.perf_counter()
    marks: list[tuple[str, float]] = [("startup", start)]
    lines: list[str] = []
    with subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        for line in proc.stdout or ():
            lines.append(line)
            found = STAGE_LINE.match(line.strip())
            if found:
                marks.append((found.group(1), time.perf_counter()))
        rc = proc.wait(timeout=TIMEOUT)
    end = time.perf_counter()
    LAST_CPU[0] = child_cpu() - cpu
    output = "".join(lines)
    check_exit(cmd, rc, output, GATE_FAILED)
    ends = [t for _, t in marks[1:]] + [end]
    stages = {name: later - t for (name, t), later in zip(marks, ends, strict=True)}
    return end - start, stages, output


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """``median [min–max]`` of repeated samples, seconds."""
    return f"{median(values):.2f} [{min(values):.2f}–{max(values):.2f}]"


# -- the throwaway repository ------------------------------------------------------------------


def resolved_config(root: Path) -> dict[str, Any]:
    _, out = run([str(BIN / "shipyard"), "config", PROJECT, *OVERRIDES, "--json"], root, bench_env(root))
    return json.loads(out)


def handwritten_args(config: dict[str, Any], root: Path, workdir: Path) -> list[str]:
    """The hand-written script's command line, filled from the resolved config."""
    model, optim, trainer, split = config["model"], config["optim"], config["trainer"], config["split"]
    es = trainer["early_stopping"]
    if trainer["accelerator"] != "cpu" or config["project"]["task"] != "binary" or es["monitor"] != "val/loss":
        raise BenchError("the hand-written baseline covers a binary task on CPU, early-stopped on val/loss")
    args = [
        str(BIN / "python"),
        str(REPO / "benchmarks" / "handwritten.py"),
        "--csv",
        str(root / config["data"]["source"]["path"]),
        "--target",
        config["data"]["target"],
        "--seed",
        str(config["seed"]),
        "--val",
        str(split["val"]),
        "--test",
        str(split["test"]),
        "--hidden",
        *[str(h) for h in model["hidden"]],
        "--dropout",
        str(model["dropout"]),
        "--activation",
        model["activation"],
        "--optimizer",
        optim["name"],
        "--lr",
        str(optim["lr"]),
        "--weight-decay",
        str(optim["weight_decay"]),
        "--max-epochs",
        str(trainer["max_epochs"]),
        "--min-epochs",
        str(trainer["min_epochs"]),
        "--batch-size",
        str(trainer["batch_size"]),
        "--patience",
        str(es["patience"]),
        "--min-delta",
        str(es["min_delta"]),
        "--log-every-n-steps",
        str(trainer["log_every_n_steps"]),
        "--workdir",
        str(workdir),
    ]
    if trainer["deterministic"]:
        args.append("--deterministic")
    if not es["enabled"]:
        args.append("--no-early-stopping")
    return args


def last_json(output: str) -> dict[str, Any]:
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError(f"no JSON result line in:\n{output[-2000:]}")


# -- benchmarks --------------------------------------------------------------------------------


def bench_train(root: Path, config: dict[str, Any], repeats: int, log: Any) -> tuple[Row, dict[str, Any]]:
    env = bench_env(root)
    shipyard = str(BIN / "shipyard")
    workdir = root.parent / "handwritten"
    script = handwritten_args(config, root, workdir)
    reporting = root / "data" / "tabular" / "breast_cancer" / "08_reporting"

    log("warm-up: shipyard train (fetches the raw CSV, first compile) and one hand-written run")
    warm, _ = run([shipyard, "train", PROJECT, *OVERRIDES], root, env, gate_rc=GATE_FAILED)
    shutil.rmtree(workdir, ignore_errors=True)
    run(script, root, env)

    pipeline, scripted, stages, inner, reports, gates = [], [], [], [], [], []
    cpu: dict[str, list[float]] = {"pipeline": [], "handwritten": []}
    for i in range(repeats):
        seconds, per_stage, out = run_staged([shipyard, "train", PROJECT, *OVERRIDES, "--force"], root, env)
        gates.append("FAILED" if "gate FAILED" in out else "passed" if "gate passed" in out else "-")
        cpu["pipeline"].append(LAST_CPU[0])
        pipeline.append(seconds)
        stages.append(per_stage)
        reports.append(
            {
                "train": json.loads((reporting / "train_report.json").read_text()),
                "metrics": json.loads((reporting / "metrics.json").read_text()),
            }
        )
        shutil.rmtree(workdir, ignore_errors=True)
        seconds, out = run(script, root, env)
        cpu["handwritten"].append(LAST_CPU[0])
        scripted.append(seconds)
        inner.append(last_json(out))
        log(f"  round {i + 1}/{repeats}: pipeline {pipeline[-1]:.2f} s, hand-written {scripted[-1]:.2f} s")

    p, s = median(pipeline), median(scripted)
    ratio = p / s
    # Fixed overhead per round: the same forced run minus the script it ran next to (paired, so a
    # slow moment on a shared machine inflates both sides of one round rather than one median).
    overhead = [a - b for a, b in zip(pipeline, scripted, strict=True)]
    detail = {
        "warm_up_seconds": warm,
        "best_of_ratio": min(pipeline) / min(scripted),
        "cpu_seconds": cpu,
        "cpu_ratio": median(cpu["pipeline"]) / median(cpu["handwritten"]),
        "pipeline_stage_seconds_median": {k: median([d.get(k, 0.0) for d in stages]) for k in stages[0]},
        "pipeline_stage_seconds": {k: [d.get(k, 0.0) for d in stages] for k in stages[0]},
        "fixed_overhead_seconds": overhead,
        "pipeline_train_seconds_median": median([r["train"]["train_seconds"] for r in reports]),
        "pipeline_epochs": [r["train"]["epochs"] for r in reports],
        "pipeline_gate": gates,
        "pipeline_test_metrics": {k: v for k, v in reports[-1]["metrics"].items() if k.startswith("test/")},
        "handwritten_seconds_median": {k: median([r["seconds"][k] for r in inner]) for k in inner[0]["seconds"]},
        "handwritten_epochs": [r["epochs"] for r in inner],
        "handwritten_test_metrics": {k: v for k, v in inner[-1].items() if k.startswith("test/")},
    }
    row = Row(
        "train warm end to end (--force) vs hand-written Lightning script",
        p,
        s,
        "hand-written",
        "s",
        "≤ 1.15×",
        ratio <= 1.15,
        ratio,
        {"pipeline": pipeline, "handwritten": scripted},
    )
    over = Row(
        "fixed overhead of a forced train over the hand-written script",
        median(overhead),
        None,
        "paired per round",
        "s",
        "≤ 2 s",
        median(overhead) <= 2.0,
        None,
        {"overhead": overhead},
    )
    return row, over, detail


def noop_run(cmd: list[str], cwd: Path, env: dict[str, str], log: Any, gate_rc: int = GATE_FAILED) -> float:
    """Seconds of one run of ``cmd`` that must find every stage up to date.

    The stages depend on the framework's source folders, so an edit under packages/ while the
    benchmark runs makes DVC rerun them; such a run is not timed, and is tried again once.
    """
    for attempt in range(2):
        seconds, out = run(cmd, cwd, env, gate_rc=gate_rc)
        ran = [m.group(1) for m in map(STAGE_LINE.match, out.splitlines()) if m]
        if not ran and "up to date: " in out:
            return seconds
        log(
            f"  `{' '.join(cmd[:3])} ...` reran {', '.join(ran) or 'stages'} (packages/ edited meanwhile?)"
            + (", retrying" if attempt == 0 else "")
        )
    raise BenchError(f"`{' '.join(cmd)}` was not a no-op twice in a row:\n{out[-2000:]}")


def bench_noop(root: Path, full: float, repeats: int, log: Any) -> list[Row]:
    env = bench_env(root)
    shipyard = str(BIN / "shipyard")
    log("no-op: shipyard train with nothing changed")
    samples = [noop_run([shipyard, "train", PROJECT, *OVERRIDES], root, env, log) for _ in range(repeats)]
    m = median(samples)
    rows = [
        Row("no-op shipyard train (absolute)", m, None, "-", "s", "≤ 2 s", m <= 2.0, None, {"noop": samples}),
        Row(
            "no-op shipyard train / full run", m, full, "full --force run", "ratio", "≤ 5 %", m / full <= 0.05, m / full
        ),
    ]
    # `make train` from the real repository root: the Makefile's setup check is part of the cost.
    # SHIPYARD_ROOT points the CLI at the sandbox, so nothing under the real data/ is written.
    # Only when .venv is current: otherwise the setup check would reinstall the environment.
    stamp_ok = (
        subprocess.run(
            ["make", "-q", "-C", str(REPO), ".venv/.installed"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode
        == 0
    )
    if not stamp_ok:
        log("  skipping no-op make train: .venv/.installed is stale, `make` would reinstall")
        return rows
    log("no-op: make train from the repository root (setup check included)")
    make_cmd = ["make", "--no-print-directory", "-C", str(REPO), "train", f"PROJECT={PROJECT}"]
    make_cmd.append(f"ARGS={' '.join(OVERRIDES)}")
    make = [noop_run(make_cmd, REPO, env, log, MAKE_FAILED) for _ in range(repeats)]
    mm = median(make)
    rows.append(
        Row(
            "no-op make train / full run",
            mm,
            full,
            "full --force run",
            "ratio",
            "≤ 2 s and ≤ 5 %",
            mm <= 2.0 and mm / full <= 0.05,
            mm / full,
            {"make_noop": make},
        )
    )
    return rows


def bench_help(root: Path, repeats: int, log: Any) -> Row:
    env = bench_env(root)
    log("shipyard --help vs python -c pass")
    py = [run([str(BIN / "python"), "-c", "pass"], REPO, env)[0] for _ in range(repeats)]
    helps = [run([str(BIN / "shipyard"), "--help"], REPO, env)[0] for _ in range(repeats)]
    h, b = median(helps), median(py)
    return Row(
        "shipyard --help", h, b, "python -c pass", "s", "≤ 0.5 s", h <= 0.5, h / b, {"help": helps, "python": py}
    )


# -- report ------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    head = ["benchmark", "measured", "baseline", "ratio", "budget", "status"]
    cells = [head, *[r.cells() for r in rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(x.ljust(w) for x, w in zip(c, widths, strict=True)).rstrip() for c in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def details_text(train: Row, detail: dict[str, Any]) -> str:
    stages = detail["pipeline_stage_seconds"]
    hw = detail["handwritten_seconds_median"]

    def fmt(d: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in d.items())

    def metrics(d: dict[str, float]) -> str:
        return ", ".join(f"{k.removeprefix('test/')}={v:.4f}" for k, v in d.items())

    cpu = detail["cpu_seconds"]
    return "\n".join(
        [
            f"best of {len(detail['cpu_seconds']['pipeline'])}: pipeline {min(train.samples['pipeline']):.2f} s, "
            f"hand-written {min(train.samples['handwritten']):.2f} s, ratio {detail['best_of_ratio']:.3f}×",
            f"CPU seconds (user+sys), median: pipeline {median(cpu['pipeline']):.2f}, "
            f"hand-written {median(cpu['handwritten']):.2f}, ratio {detail['cpu_ratio']:.3f}×",
            f"pipeline, s, median [range] of {len(train.samples['pipeline'])}: {spread(train.samples['pipeline'])}; "
            f"hand-written {spread(train.samples['handwritten'])}",
            f"fixed overhead (pipeline minus hand-written, per round), s: {spread(detail['fixed_overhead_seconds'])}; "
            f"in CPU s: {spread([a - b for a, b in zip(cpu['pipeline'], cpu['handwritten'], strict=True)])}",
            "pipeline stages, s, median [range] (wall, from the ▶ lines):",
            *[f"  {name:<18} {spread(values)}" for name, values in stages.items()],
            f"pipeline Trainer.fit, median s (train_report.json): {detail['pipeline_train_seconds_median']:.2f}",
            f"hand-written phases, median s (in-process; plus interpreter start/exit): {fmt(hw)}",
            f"epochs run: pipeline {detail['pipeline_epochs']}, hand-written {detail['handwritten_epochs']}; "
            f"pipeline quality gate: {', '.join(detail['pipeline_gate'])}",
            f"test metrics: pipeline {metrics(detail['pipeline_test_metrics'])}",
            f"              hand-written {metrics(detail['handwritten_test_metrics'])}",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (train, no-op)")
    parser.add_argument("--help-repeats", type=int, default=10, help="timed runs of shipyard --help")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway repository and print its path")
    parser.add_argument(
        "--live", action="store_true", help="run the live packages/ source, not a snapshot taken at the start"
    )
    parser.add_argument(
        "--threads", type=int, help="cap torch/BLAS threads (OMP_NUM_THREADS) in every command; 1 on a busy machine"
    )
    parser.add_argument(
        "--fixed-epochs",
        action="store_true",
        help=f"turn early stopping off on both sides ({FIXED_EPOCHS}), so both train max_epochs",
    )
    args = parser.parse_args(argv)
    THREADS[0] = args.threads
    if args.fixed_epochs:
        OVERRIDES.append(FIXED_EPOCHS)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        log(
            f"note: 1-minute load average is {load_before:.2f} before starting; other work on this "
            f"machine's {os.cpu_count()} cores will inflate and scatter the timings"
        )
    parent = Path(tempfile.mkdtemp(prefix="shipyard-bench-"))
    try:
        root = make_sandbox(parent, snapshot=not args.live)
        config = resolved_config(root)
        train_row, overhead_row, detail = bench_train(root, config, args.repeats, log)
        noop_rows = bench_noop(root, train_row.measured, args.repeats, log)
        rows = [train_row, overhead_row, *noop_rows, bench_help(root, args.help_repeats, log)]
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            log(f"kept the throwaway repository: {parent}")
        else:
            shutil.rmtree(parent, ignore_errors=True)

    print()
    if args.threads:
        print(f"(every command ran with OMP_NUM_THREADS={args.threads})")
    if OVERRIDES:
        print(f"(every shipyard command ran with the overrides: {' '.join(OVERRIDES)})")
    print(table(rows))
    print()
    print(details_text(rows[0], detail))
    epochs = (detail["pipeline_epochs"], detail["handwritten_epochs"])
    if sorted(set(epochs[0])) != sorted(set(epochs[1])):
        print(
            f"\nNOTE: the two sides stopped early at different epochs ({epochs[0]} vs {epochs[1]}): the training "
            "ratio mixes framework overhead with training dynamics; --fixed-epochs trains max_epochs on both"
        )
    load_after = os.getloadavg()[0]
    if max(load_before, load_after) > 0.5 * (os.cpu_count() or 1) + 1.0:
        print(
            f"\nWARNING: the machine was busy (1-minute load {load_before:.2f} before, {load_after:.2f} after, "
            f"{os.cpu_count()} cores): wall-time ratios are noisy. torch's one-thread-per-core default spins "
            "when the cores are shared; rerun when quiet, or with --threads 1 for a steadier comparison"
        )
    over = [r.name for r in rows if not r.ok]
    print()
    print("OVER BUDGET: " + "; ".join(over) if over else "all budgets met")
    total = time.perf_counter() - started

    out = REPO / ".bench" / "results.json"
    out.parent.mkdir(exist_ok=True)
    payload = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bench_seconds": round(total, 1),
        "machine": {
            "python": platform.python_version(),
            "cpu": platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_1m": {"before": load_before, "after": load_after},
            "threads": args.threads,
            "overrides": OVERRIDES,
        },
        "rows": [asdict(r) for r in rows],
        "train_detail": detail,
    }
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out.relative_to(REPO)} in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
