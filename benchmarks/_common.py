"""What the benchmark scripts share: a throwaway repository and timed subprocesses.

Every benchmark runs in a throwaway copy of the repository (``conf/``, a fresh ``git init`` and
``dvc init``, ``SHIPYARD_ROOT`` pointing at it), so the real ``data/`` and ``pipelines/`` are
never written.

By default the copy also gets a snapshot of the framework's source (``packages/*/src/shipyard``
merged into ``src/shipyard``), put first on ``PYTHONPATH`` for every command. The compiled
stages depend on the source folders of the packages they run, so without the snapshot an edit
under ``packages/`` while a benchmark runs would rerun stages (and time a different code base
halfway through). ``snapshot=False`` measures the live editable install instead.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = [
    "BIN",
    "GATE_FAILED",
    "LAST_CPU",
    "MAKE_FAILED",
    "REPO",
    "THREADS",
    "BenchError",
    "bench_env",
    "check_exit",
    "child_cpu",
    "make_sandbox",
    "run",
    "train_project",
]

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TIMEOUT = 600.0

# CPU seconds (user + system, children included) of the last command :func:`run` ran. Wall time is
# what the budgets are about; CPU time is reported beside it because other work sharing the
# machine's cores disturbs it far less.
LAST_CPU = [0.0]


class BenchError(RuntimeError):
    """A benchmark could not run (as opposed to running over budget)."""


SNAPSHOT = "src"

# ``--threads N`` of the entry points: caps the math libraries' threads in every command (both
# sides of a ratio alike). Unset, each library picks its default (one thread per core).
THREADS: list[int | None] = [None]
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def bench_env(root: Path | None) -> dict[str, str]:
    """The environment for a benchmark command: no telemetry, the venv first on PATH,
    ``SHIPYARD_ROOT`` set to ``root`` (or unset) and ``root``'s source snapshot, if any, first
    on ``PYTHONPATH``."""
    env = dict(os.environ)
    env.pop("SHIPYARD_OVERRIDES", None)
    env.pop("PYTHONPATH", None)
    # Warm means as a user's second run finds it: the source snapshot's bytecode written by the
    # warm-up, not compiled again in every command (which PYTHONDONTWRITEBYTECODE would force).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if root is not None and (root / SNAPSHOT / "shipyard").is_dir():
        env["PYTHONPATH"] = str(root / SNAPSHOT)
    env.update(
        KEDRO_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="1",
        DVC_NO_ANALYTICS="1",
        BENTOML_DO_NOT_TRACK="True",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    if THREADS[0]:
        env.update(dict.fromkeys(_THREAD_VARS, str(THREADS[0])))
    if root is None:
        env.pop("SHIPYARD_ROOT", None)
    else:
        env["SHIPYARD_ROOT"] = str(root)
    return env


def child_cpu() -> float:
    """User + system CPU seconds of every finished child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# `shipyard train` exits 3 when every stage ran but the model failed its quality gate (make then
# exits 2): a finished run as far as timing goes; the verdict is reported separately.
GATE_FAILED = 3
MAKE_FAILED = 2


def check_exit(cmd: list[str], rc: int, output: str, gate_rc: int | None = None) -> None:
    """Raise :class:`BenchError` unless ``cmd`` succeeded, or exited ``gate_rc`` on a failed gate."""
    if rc == 0 or (gate_rc is not None and rc == gate_rc and "gate FAILED" in output):
        return
    raise BenchError(f"`{' '.join(cmd)}` exited {rc}:\n{output[-3000:]}")


def run(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = TIMEOUT, gate_rc: int | None = None
) -> tuple[float, str]:
    """Wall seconds of ``cmd`` and its output (stderr merged); :class:`BenchError` when it fails
    (see :func:`check_exit`)."""
    cpu = child_cpu()
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"`{' '.join(cmd)}` ran past {timeout:.0f} s") from exc
    seconds = time.perf_counter() - start
    LAST_CPU[0] = child_cpu() - cpu
    check_exit(cmd, proc.returncode, proc.stdout, gate_rc)
    return seconds, proc.stdout


def make_sandbox(parent: Path, snapshot: bool = True) -> Path:
    """A throwaway Shipyard repository under ``parent``: a copy of ``conf/``, git and DVC, and
    (``snapshot``) a copy of the framework's source."""
    root = parent / "repo"
    shutil.copytree(REPO / "conf", root / "conf")
    if snapshot:
        for package in sorted((REPO / "packages").glob("*/src/shipyard/*")):
            if package.is_dir() and not package.name.startswith(("_", ".")):
                shutil.copytree(
                    package, root / SNAPSHOT / "shipyard" / package.name, ignore=shutil.ignore_patterns("__pycache__")
                )
    env = bench_env(root)
    run(["git", "init", "-q"], root, env)
    run([str(BIN / "dvc"), "init", "-q"], root, env)
    # As in a Shipyard repository: Python's caches stay out of the code dependencies' hashes
    # (DVC's default file would let the bytecode a command writes make stages stale).
    shutil.copy(REPO / ".dvcignore", root / ".dvcignore")
    return root


def train_project(project: str, overrides: list[str], root: Path, workdir: Path, max_epochs: int | None = None) -> Any:
    """Train ``project`` as its pipeline would (fetch, ingest, split, fit preprocessing, train) with
    the config composed from ``REPO``'s conf/ and the raw data under ``root``; return the
    :class:`shipyard.data.Prepared` splits and the trained bundle."""
    import dataclasses

    from shipyard.core.compose import compose
    from shipyard.data import prepare
    from shipyard.train.fit import train_model

    cfg = compose(project, [*overrides, "trainer.progress_bar=false"], root=REPO)
    if max_epochs is not None:
        cfg.trainer = dataclasses.replace(cfg.trainer, max_epochs=min(cfg.trainer.max_epochs, max_epochs))
    data = prepare(cfg, root)
    result = train_model(
        data.train,
        data.val,
        data.state,
        model=cfg.model,
        optim=cfg.optim,
        trainer=cfg.trainer,
        seed=cfg.seed,
        project=cfg.project,
        workdir=workdir / "train",
    )
    return cfg, data, result.bundle
