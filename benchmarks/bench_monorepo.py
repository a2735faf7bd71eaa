"""Monorepo scale budget (docs/architecture.md): a no-op ``make train`` for one project stays flat as the
repository grows from 1 to 100 projects (<= 1.2x).

``.venv/bin/python benchmarks/bench_monorepo.py`` (``--projects``, ``--repeats``, ``--locks``,
``--threads``, ``--keep``, ``--live``); about 3-4 minutes on 2 cores. In a throwaway repository
(``_common.make_sandbox``) it trains ``tabular/breast_cancer`` once (``--no-register``, gate off,
3 epochs), then generates 99 more projects (``conf/project/gen<i>/p<j>.yaml``: breast_cancer with
its own data path) and compiles each with the same functions as ``shipyard compile`` (in one
process: 99 CLI starts would only slow the set-up), so 100 ``dvc.yaml`` files lie under
``pipelines/``; every third one also gets a ``dvc.lock`` (breast_cancer's, paths rewritten), as a
repository where those projects have run would have. No generated project is trained: DVC's
cost of collecting the repository's pipelines is what grows with the project count, and
compiled files are all it reads.

Three commands are timed with 1 and with 100 projects:

- **no-op** ``shipyard train tabular/breast_cancer --no-register gate.enabled=false
  trainer.max_epochs=3``: nothing changed (the budget);
- **one-stage rerun**: the same with ``evaluate.latency_repeats`` set to a new value (11, 12, ...;
  a repeated one would come from DVC's run cache), which reruns evaluate and gate: the path that
  does run ``dvc repro``, so it shows whether DVC's collection grows;
- ``dvc status pipelines/tabular/breast_cancer/dvc.yaml``: DVC alone, no Shipyard, no torch.

The two sizes alternate within each round (the 99 generated projects are moved out of
``conf/project/`` and ``pipelines/`` and back between runs), so both sides of a ratio see the same
machine load; medians of ``--repeats`` (5) runs. Prints a table like ``run.py`` (wall ratio,
CPU ratio beside it) and writes ``.bench/monorepo.json``. Exits 0 when a budget is over (a
report), 1 only when a benchmark cannot run.
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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from _common import BIN, GATE_FAILED, LAST_CPU, REPO, THREADS, BenchError, bench_env, make_sandbox, run
from run import STAGE_LINE, noop_run, table

PROJECT = "tabular/breast_cancer"
PROJECT_FILE = Path("conf/project/tabular/breast_cancer.yaml")
# Fast and deterministic: three epochs, no gate (a failed gate would be a finished run anyway).
TRAIN_ARGS = ["--no-register", "gate.enabled=false", "trainer.max_epochs=3"]
# A param only the evaluate stage reads: changing it reruns evaluate and gate, not train. Each
# timed rerun uses a value not used before: DVC's run cache would restore a repeated one
# without running the stage.
RERUN_KEY = "evaluate.latency_repeats"
RERUN_FIRST = 11
BUDGET = 1.2
GEN_TEAMS = 10

Log = Callable[[str], None]


@dataclass
class Row:
    name: str
    small: float  # median seconds with 1 project
    large: float  # median seconds with N projects
    budget: float | None  # max large/small ratio, or None for a line that only reports
    cpu_ratio: float
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.large / self.small

    @property
    def ok(self) -> bool:
        return self.budget is None or self.ratio <= self.budget

    def cells(self) -> list[str]:
        budget = f"≤ {self.budget:g}×" if self.budget is not None else "(report)"
        status = "PASS" if self.budget is not None and self.ok else "OVER" if self.budget is not None else "-"
        return [
            self.name,
            f"{self.large:.3f} s",
            f"{self.small:.3f} s (1 project)",
            f"{self.ratio:.3f}× (CPU {self.cpu_ratio:.2f}×)",
            budget,
            status,
        ]


# -- the generated repository ------------------------------------------------------------------


def generated_projects(count: int) -> list[str]:
    """``count`` project names, ``gen<i>/p<j>``, spread over ``GEN_TEAMS`` teams."""
    per_team = -(-count // GEN_TEAMS)
    return [f"gen{i // per_team}/p{i % per_team}" for i in range(count)]


def write_projects(root: Path, projects: list[str]) -> None:
    """A copy of breast_cancer's project file per project, reading its own raw data file."""
    import yaml

    text = (root / PROJECT_FILE).read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("# @package"))
    spec = yaml.safe_load(text)
    for project in projects:
        data = dict(spec.get("data") or {})
        data["source"] = {**(data.get("source") or {}), "path": f"data/{project}/01_raw/breast_cancer.csv"}
        body = yaml.safe_dump({**spec, "data": data}, sort_keys=False)
        target = root / "conf" / "project" / f"{project}.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"{header}\n# Generated by benchmarks/bench_monorepo.py.\n{body}")


COMPILE = """
import sys
from pathlib import Path
from shipyard.core.compose import compose
from shipyard.core.paths import ProjectPaths
from shipyard.engine.compiler import compile_project

root = Path(sys.argv[1])
for project in sys.argv[2:]:
    compile_project(compose(project, [], root=root), ProjectPaths.of(root, project))
"""


def compile_projects(root: Path, projects: list[str], locks: int, log: Log) -> None:
    """``dvc.yaml`` and ``params.yaml`` for every project; ``dvc.lock`` for every ``locks``-th."""
    start = time.perf_counter()
    run([str(BIN / "python"), "-c", COMPILE, str(root), *projects], root, bench_env(root))
    source = (root / "pipelines" / PROJECT / "dvc.lock").read_text()
    with_lock = projects[::locks] if locks > 0 else []
    for project in with_lock:
        (root / "pipelines" / project / "dvc.lock").write_text(source.replace(PROJECT, project))
    found = len(list((root / "pipelines").glob("*/*/dvc.yaml")))
    if found != len(projects) + 1:
        raise BenchError(f"expected {len(projects) + 1} dvc.yaml files under pipelines/, found {found}")
    log(
        f"  compiled {len(projects)} projects ({len(with_lock)} with a dvc.lock) in {time.perf_counter() - start:.0f} s"
    )


class Generated:
    """Moves the generated projects' conf and pipelines folders out of the repository and back,
    so one repository can be timed at both sizes in alternation."""

    def __init__(self, root: Path, teams: list[str]) -> None:
        self.root, self.teams = root, teams
        self.parked = root.parent / "parked"
        self.present = True

    def _pairs(self) -> list[tuple[Path, Path]]:
        pairs = []
        for team in self.teams:
            for kind in ("conf/project", "pipelines"):
                pairs.append((self.root / kind / team, self.parked / kind / team))
        return pairs

    def set(self, present: bool) -> None:
        if present == self.present:
            return
        for inside, outside in self._pairs():
            src, dst = (outside, inside) if present else (inside, outside)
            dst.parent.mkdir(parents=True, exist_ok=True)
            src.rename(dst)
        self.present = present


# -- measurements ------------------------------------------------------------------------------


def rerun(cmd: list[str], root: Path) -> float:
    """Seconds of a run that must rerun evaluate (and nothing upstream of it)."""
    seconds, out = run(cmd, root, bench_env(root), gate_rc=GATE_FAILED)
    ran = [m.group(1) for m in map(STAGE_LINE.match, out.splitlines()) if m]
    if "evaluate" not in ran or "train" in ran:
        raise BenchError(f"`{' '.join(cmd[:3])} ...` was meant to rerun evaluate only, it ran {ran}:\n{out[-2000:]}")
    return seconds


def alternate(
    name: str, generated: Generated, repeats: int, measure: Callable[[int], float], budget: float | None, log: Log
) -> Row:
    """``repeats`` rounds; each times 1 project and N projects (order swapped every round)."""
    samples: dict[str, list[float]] = {"1": [], "N": []}
    cpu: dict[str, list[float]] = {"1": [], "N": []}
    calls = 0
    for i in range(repeats):
        for size in ("1", "N") if i % 2 == 0 else ("N", "1"):
            generated.set(size == "N")
            samples[size].append(measure(calls))
            cpu[size].append(LAST_CPU[0])
            calls += 1
        log(f"  {name} round {i + 1}/{repeats}: 1 project {samples['1'][-1]:.2f} s, N {samples['N'][-1]:.2f} s")
    generated.set(True)
    med = {k: statistics.median(v) for k, v in samples.items()}
    cpu_ratio = statistics.median(cpu["N"]) / max(statistics.median(cpu["1"]), 1e-9)
    return Row(
        name,
        med["1"],
        med["N"],
        budget,
        cpu_ratio,
        {"1": samples["1"], "N": samples["N"], **{f"cpu_{k}": v for k, v in cpu.items()}},
    )


def measure_all(root: Path, projects: list[str], repeats: int, log: Log) -> list[Row]:
    shipyard = [str(BIN / "shipyard"), "train", PROJECT, *TRAIN_ARGS]
    env = bench_env(root)
    generated = Generated(root, sorted({p.split("/")[0] for p in projects}))
    n = len(projects) + 1

    def noop(_: int) -> float:
        return noop_run(shipyard, root, env, log)

    def one_stage(call: int) -> float:
        return rerun([*shipyard, f"{RERUN_KEY}={RERUN_FIRST + call}"], root)

    def dvc_status(_: int) -> float:
        return run([str(BIN / "dvc"), "status", f"pipelines/{PROJECT}/dvc.yaml"], root, env)[0]

    log("no-op shipyard train, 1 vs N projects")
    rows = [alternate(f"no-op shipyard train, {n} projects vs 1", generated, repeats, noop, BUDGET, log)]
    log("one-stage rerun (evaluate, gate), 1 vs N projects")
    rows.append(alternate(f"rerun evaluate+gate ({RERUN_KEY}), {n} vs 1", generated, repeats, one_stage, None, log))
    # Back to the default value (DVC restores that run from its run cache), so the pipeline is up
    # to date again for the last line.
    run(shipyard, root, env, gate_rc=GATE_FAILED)
    log("dvc status of breast_cancer's dvc.yaml (DVC alone), 1 vs N projects")
    rows.append(alternate(f"dvc status (one dvc.yaml), {n} vs 1", generated, repeats, dvc_status, None, log))
    return rows


# -- entry point -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=100, help="projects in the large repository (default 100)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per size and command (default 5)")
    parser.add_argument("--locks", type=int, default=3, help="every Nth generated project gets a dvc.lock (0: none)")
    parser.add_argument("--threads", type=int, help="cap torch/BLAS threads (OMP_NUM_THREADS) in every command")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway repository and print its path")
    parser.add_argument("--live", action="store_true", help="run the live packages/ source, not a snapshot")
    args = parser.parse_args(argv)
    if args.projects < 2 or args.repeats < 1:
        parser.error("--projects must be at least 2 and --repeats at least 1")
    return args


def report(rows: list[Row], args: argparse.Namespace, seconds: float, load: tuple[float, float]) -> None:
    print()
    if args.threads:
        print(f"(every command ran with OMP_NUM_THREADS={args.threads})")
    print(table(rows))  # run.table only calls .cells()
    print()
    print("ratio: median wall seconds with N projects / with 1 project (sizes alternated in each round);")
    print("CPU: the same ratio of user+system CPU seconds (less disturbed by other work on the machine)")
    if max(load) > 0.5 * (os.cpu_count() or 1) + 1.0:
        print(
            f"\nWARNING: the machine was busy (1-minute load {load[0]:.2f} before, {load[1]:.2f} after, "
            f"{os.cpu_count()} cores): wall-time ratios are noisy"
        )
    over = [r.name for r in rows if not r.ok]
    print()
    print("OVER BUDGET: " + "; ".join(over) if over else "all budgets met")
    out = REPO / ".bench" / "monorepo.json"
    out.parent.mkdir(exist_ok=True)
    payload: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bench_seconds": round(seconds, 1),
        "projects": args.projects,
        "repeats": args.repeats,
        "load_average_1m": {"before": load[0], "after": load[1]},
        "rows": [dict(asdict(r), ratio=r.ratio, ok=r.ok) for r in rows],
    }
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out.relative_to(REPO)} in {seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    THREADS[0] = args.threads

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    parent = Path(tempfile.mkdtemp(prefix="shipyard-bench-monorepo-"))
    try:
        root = make_sandbox(parent, snapshot=not args.live)
        log(f"training {PROJECT} once ({' '.join(TRAIN_ARGS)})")
        seconds, _ = run(
            [str(BIN / "shipyard"), "train", PROJECT, *TRAIN_ARGS], root, bench_env(root), gate_rc=GATE_FAILED
        )
        log(f"  {seconds:.0f} s; generating {args.projects - 1} more projects")
        projects = generated_projects(args.projects - 1)
        write_projects(root, projects)
        compile_projects(root, projects, args.locks, log)
        rows = measure_all(root, projects, args.repeats, log)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            log(f"kept the throwaway repository: {parent}")
        else:
            shutil.rmtree(parent, ignore_errors=True)
    report(rows, args, time.perf_counter() - started, (load_before, os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
