"""Run a project's compiled pipeline with DVC.

``dvc repro`` decides what is stale (content hashes of deps, params and outs) and records the
result in ``dvc.lock``. By default the stages' commands (``sh pipelines/stage.sh TEAM/NAME
STAGE``) run inside this process instead of one Python process per stage (through
:mod:`shipyard.engine.dvc_adapter`): the command in ``dvc.yaml`` is unchanged (plain ``dvc repro``
still runs it as a subprocess), but ``make train`` pays for importing torch and Lightning once
rather than once per stage. Multi-process training (DDP) always runs as a subprocess, because
Lightning's launcher re-executes the stage command.

Two things a failed or killed run leaves behind are put right here: DVC takes back the
``.gitignore`` entries of a failed run's outputs (even of the stages that succeeded), so they are
written again; and DVC's lock file can still name a process that was killed, which is cleared
when that process is certainly dead on this host.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shipyard.core.errors import DataError, ShipyardError, StageError
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig, SourceConf
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
    """Make the project's raw file present, and those of the feature sources its views read:
    DVC cache first, then its declared ``fetch``.

    Returns a line describing what was done, or ``None`` when nothing was needed.
    """
    sources = [config.data.source]
    if config.features.views:
        from shipyard.core.compose import section
        from shipyard.engine.features import project_views

        for view in project_views(config, paths, guard=False):
            sources.append(section(SourceConf, dict(view["source"]), "source"))
    notes = [note for source in sources if (note := _ensure_source(source, paths))]
    return "; ".join(dict.fromkeys(notes)) or None


def _ensure_source(source: SourceConf, paths: ProjectPaths) -> str | None:
    if not source.path:
        return None
    raw = paths.root / source.path
    if raw.exists():
        return None
    from shipyard.engine.dvc_adapter import open_repo

    pointer = raw.with_name(raw.name + ".dvc")
    # DVC prints "git add ..." hints when its context closes; Shipyard says what it did itself.
    with contextlib.redirect_stdout(io.StringIO()), open_repo(paths.root) as repo:
        if pointer.is_file():
            try:
                repo.checkout(targets=[str(pointer)])
            except Exception:  # noqa: BLE001 - a cache miss is expected on a fresh clone
                pass
            if raw.exists():
                return f"checked out {source.path} from the DVC cache"
        from shipyard.data.sources import fetch_raw

        if fetch_raw(source, paths.root) is None:
            raise DataError(
                f"raw data file {source.path} is missing",
                where=source.path,
                fix="`dvc pull` it from the project's remote, or put the file there",
            )
        repo.add([str(raw)])
    return f"wrote {source.path} from {source.fetch} and tracked it with DVC (commit {source.path}.dvc to version it)"


class LockedError(ShipyardError):
    """Another live process holds DVC's lock on the project's files."""

    exit_code = 2
    kind = "lock error"


def _dead(pid: int) -> bool:
    """Certainly dead on this host: no such process, or one that exited and awaits its parent
    (a zombie holds no files and no locks). A live process, even one whose PID was reused, is
    not treated as dead."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False


def _lock_entries(lock: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(mode, path, {"pid", "cmd"}) for every entry of DVC's rwlock."""
    entries = [("write", path, info) for path, info in lock.get("write", {}).items()]
    entries += [("read", path, info) for path, infos in lock.get("read", {}).items() for info in infos]
    return entries


def _clear_stale_locks(repo: Any, say: Callable[[str], None]) -> None:
    """Drop the rwlock entries of processes that are certainly dead on this host.

    ``.dvc/tmp/rwlock`` names the process reading or writing each path; a run killed with
    SIGKILL leaves its entries there. DVC drops those of PIDs that no longer exist, but a killed
    process its parent has not reaped yet still has a PID, and DVC then refuses to run, naming it.
    """
    try:
        from dvc.rwlock import RWLOCK_FILE, _edit_rwlock  # DVC's own guarded edit of its lock file
    except ImportError:  # a DVC that edits its lock differently: leave it to DVC's own check
        return
    if not Path(repo.tmp_dir, RWLOCK_FILE).is_file():
        return
    hardlink = repo.config["core"].get("hardlink_lock", False)
    cleared: dict[int, str] = {}
    with _edit_rwlock(repo.tmp_dir, repo.fs, hardlink) as lock:
        for mode, path, info in _lock_entries(lock):
            pid = int(info["pid"])
            if pid == os.getpid() or not _dead(pid):
                continue
            cleared[pid] = str(info["cmd"])
            if mode == "write":
                del lock["write"][path]
            else:
                lock["read"][path].remove(info)
                if not lock["read"][path]:
                    del lock["read"][path]
    for pid, cmd in cleared.items():
        say(f"cleared DVC's lock entries of process {pid} ({cmd}): it was killed and is gone")


def _busy(repo_root: Path, cause: BaseException, where: str) -> LockedError:
    """DVC's lock names a live process: say which, and what to do."""
    try:
        lock = json.loads((repo_root / ".dvc" / "tmp" / "rwlock").read_text())
    except (OSError, json.JSONDecodeError):
        lock = {}
    entries = [info for _, _, info in _lock_entries(lock) if int(info["pid"]) != os.getpid()]
    holders = sorted({(int(info["pid"]), str(info["cmd"])) for info in entries})
    named = "; ".join(f"process {pid} ({cmd})" for pid, cmd in holders) or str(cause).splitlines()[0]
    return LockedError(
        f"DVC's lock says another process is using this project's files: {named}",
        where=where,
        fix="wait for it to finish (it is running on this host); if that process is no DVC or Shipyard run "
        "(its PID was reused), delete .dvc/tmp/rwlock while no DVC command runs, then run again",
    )


def _keep_outputs_ignored(repo: Any, paths: ProjectPaths) -> None:
    """Git-ignore every output the project's dvc.yaml declares. DVC adds these entries as stages
    run, but when a run fails it takes back every entry it added, the succeeded stages' too,
    leaving e.g. a large intermediate Parquet file ready to be committed."""
    from dvc.exceptions import DvcException

    with contextlib.suppress(DvcException):
        for stage in repo.stage.load_file(str(paths.dvc_yaml)):
            for out in stage.outs:
                if not Path(out.fs_path).parent.is_dir():
                    continue  # its stage never got to write anything there
                with contextlib.suppress(DvcException):  # e.g. an output the user tracks in git
                    out.ignore()


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
    from dvc.lock import LockError
    from shipyard.engine.dvc_adapter import open_repo, stage_runner
    from shipyard.engine.pipeline import project_nodes
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
        with stage_runner(hook), open_repo(paths.root) as repo:
            _clear_stale_locks(repo, say)
            try:
                if target:
                    repo.reproduce(f"{paths.dvc_yaml}:{target}", force=force)
                else:
                    # Plan from this project's dvc.yaml only: without single_item DVC first builds the
                    # graph of every dvc.yaml in the repository (about 45 ms a project). The compiler
                    # writes stages in dependency order, and a project's outputs are its own.
                    repo.reproduce(str(paths.dvc_yaml), force=force, single_item=True)
            except Exception:
                _keep_outputs_ignored(repo, paths)
                raise
    except DvcException as exc:
        cause = _unwrap(exc)
        if isinstance(cause, ShipyardError):
            raise cause from exc
        if isinstance(cause, LockError):
            raise _busy(paths.root, cause, paths.rel(paths.dvc_yaml)) from exc
        detail = f": {type(cause).__name__}: {cause}" if cause is not exc else ""
        raise StageError(
            f"{exc}{detail}",
            where=paths.rel(paths.dvc_yaml),
            fix="rerun with --verbose for the full traceback",
        ) from exc
    skipped = [s.name for s in project_nodes(config) if s.name not in ran]
    return ReproResult(ran, skipped)
