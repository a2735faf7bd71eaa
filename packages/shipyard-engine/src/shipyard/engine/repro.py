"""Run a project's compiled pipeline with DVC.

``dvc repro`` decides what is stale (content hashes of deps, params and outs) and records the
result in ``dvc.lock``. By default the stages' commands (``sh pipelines/stage.sh TEAM/NAME
STAGE``) run inside this process instead of one Python process per stage: the command in
``dvc.yaml`` is unchanged (plain ``dvc repro`` still runs it as a subprocess), but ``make train``
pays for importing torch and Lightning once rather than once per stage. Multi-process training
(DDP) always runs as a subprocess, because Lightning's launcher re-executes the stage command.
"""

from __future__ import annotations

import contextlib
import io
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from shipyard.core.errors import DataError, ShipyardError, StageError
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig
from shipyard.engine.compiler import stage_command

__all__ = ["ReproResult", "ensure_raw_data", "reproduce"]

_STAGE_CMD = shlex.split(stage_command("TEAM/NAME", "STAGE"))[:-2]


class ReproResult:
    def __init__(self, ran: list[str], skipped: list[str]) -> None:
        self.ran, self.skipped = ran, skipped


def _needs_subprocess(config: ShipyardConfig, stage: str) -> bool:
    devices = config.trainer.devices
    many = (isinstance(devices, int) and devices > 1) or isinstance(devices, list) or devices == -1
    return stage == "train" and (many or config.trainer.num_nodes > 1)


def _dvc_quiet() -> None:
    import logging

    logging.getLogger("dvc").setLevel(logging.WARNING)


def ensure_raw_data(config: ShipyardConfig, paths: ProjectPaths) -> str | None:
    """Make the project's raw file present: DVC cache first, then its declared ``fetch``.

    Returns a line describing what was done, or ``None`` when nothing was needed.
    """
    source = config.data.source
    if not source.path:
        return None
    raw = paths.root / source.path
    if raw.exists():
        return None
    from dvc.repo import Repo

    pointer = raw.with_name(raw.name + ".dvc")
    # DVC prints "git add ..." hints when its context closes; Shipyard says what it did itself.
    with contextlib.redirect_stdout(io.StringIO()), Repo(str(paths.root)) as repo:
        if pointer.is_file():
            try:
                repo.checkout(targets=[str(pointer)])
            except Exception:  # noqa: BLE001 - a cache miss is expected on a fresh clone
                pass
            if raw.exists():
                return f"checked out {source['path']} from the DVC cache"
        from shipyard.data.sources import fetch_raw

        if fetch_raw(source, paths.root) is None:
            raise DataError(
                f"raw data file {source.path} is missing",
                where=source.path,
                fix="`dvc pull` it from the project's remote, or put the file there",
            )
        repo.add([str(raw)])
    return f"wrote {source.path} from {source.fetch} and tracked it with DVC (commit {source.path}.dvc to version it)"


def _unwrap(exc: BaseException) -> BaseException:
    """The Shipyard error behind a DVC failure, else the innermost cause."""
    seen: BaseException | None = exc
    last = exc
    while seen is not None:
        if isinstance(seen, ShipyardError):
            return seen
        last = seen
        seen = seen.__cause__ or seen.__context__
    return last


def reproduce(
    paths: ProjectPaths,
    config: ShipyardConfig,
    *,
    force: bool = False,
    target: str | None = None,
    in_process: bool = True,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> ReproResult:
    """``dvc repro`` the project's ``dvc.yaml``; return the stages that ran and were skipped."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from shipyard.engine.dvc_adapter import stage_runner
    from shipyard.engine.pipeline import NODES
    from shipyard.engine.stage import run_stage

    _dvc_quiet()
    ran: list[str] = []

    def hook(cmd: str, cwd: str, spawn: Callable[[], None]) -> None:
        argv = shlex.split(cmd)
        ours = argv[: len(_STAGE_CMD)] == _STAGE_CMD and len(argv) == len(_STAGE_CMD) + 2
        stage = argv[-1] if ours else None
        ran.append(stage or cmd)
        say(f"▶ {stage or cmd}")
        if stage is None or not in_process or _needs_subprocess(config, stage):
            spawn()
            return
        run_stage(Path(cwd), argv[-2], stage)

    try:
        with stage_runner(hook), Repo(str(paths.root)) as repo:
            if target:
                repo.reproduce(f"{paths.dvc_yaml}:{target}", force=force)
            else:
                # Plan from this project's dvc.yaml only: without single_item DVC first builds the
                # graph of every dvc.yaml in the repository (about 45 ms a project). The compiler
                # writes stages in dependency order, and a project's outputs are its own.
                repo.reproduce(str(paths.dvc_yaml), force=force, single_item=True)
    except DvcException as exc:
        cause = _unwrap(exc)
        if isinstance(cause, ShipyardError):
            raise cause from exc
        detail = f": {type(cause).__name__}: {cause}" if cause is not exc else ""
        raise StageError(
            f"{exc}{detail}",
            where=paths.rel(paths.dvc_yaml),
            fix="rerun with --verbose for the full traceback",
        ) from exc
    skipped = [s.name for s in NODES if s.name not in ran]
    return ReproResult(ran, skipped)
