"""Where a study lives, and the host-local locks that keep parallel workers exact.

``storage`` in the search config:

* ``auto`` (default): ``study.db`` (SQLite) when that study already exists in the search
  folder, else a journal file (``journal.log``, Optuna's ``JournalFileBackend``);
* ``memory``: nothing kept, one worker, no resume;
* ``sqlite`` / ``journal``: that file in the search folder;
* ``journal:<path>``: a journal file elsewhere (repository-relative);
* a database URL (``postgresql://...``, ``sqlite:///path.db``): an RDB storage; for many hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError

__all__ = ["JOURNAL_FILE", "SQLITE_FILE", "StorageChoice", "file_lock", "resolve_storage"]

SQLITE_FILE = "study.db"
JOURNAL_FILE = "journal.log"


@dataclass(frozen=True)
class StorageChoice:
    kind: str  # memory | sqlite | journal | url
    target: str  # the file or URL ("" for memory)
    local: bool  # on this host only: a RUNNING trial with no search running is stale

    def open(self) -> Any:
        import optuna

        if self.kind == "memory":
            return optuna.storages.InMemoryStorage()
        if self.kind == "journal":
            from optuna.storages.journal import JournalFileBackend, JournalStorage

            Path(self.target).parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(self.target))
        if self.kind == "sqlite":
            Path(self.target).parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.RDBStorage(
                f"sqlite:///{self.target}", engine_kwargs={"connect_args": {"timeout": 60}}
            )
        # Many hosts: heartbeats let Optuna fail the trials of a host that died.
        try:
            return optuna.storages.RDBStorage(self.target, heartbeat_interval=60, grace_period=180)
        except ImportError as exc:
            raise ConfigError(
                f"the database driver for {self.target.split(':', 1)[0]} is not installed: {exc}",
                key="search.storage",
                fix="install the driver (psycopg2-binary for PostgreSQL, pymysql for MySQL) into the environment",
            ) from exc

    @property
    def url(self) -> str:
        """What optuna-dashboard takes."""
        return f"sqlite:///{self.target}" if self.kind == "sqlite" else self.target

    def describe(self) -> str:
        return {"memory": "in memory", "sqlite": f"SQLite {self.target}", "journal": f"journal file {self.target}"}.get(
            self.kind, self.target
        )


def _abs(root: Path, path: str) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else (root / p).resolve())


def resolve_storage(setting: str, folder: Path, workers: int, root: Path, where: str) -> StorageChoice:
    """The storage for ``setting`` (see the module docs)."""
    sqlite, journal = str(folder / SQLITE_FILE), str(folder / JOURNAL_FILE)
    if setting == "auto":
        # A new study goes to a journal file: one transaction on SQLite costs ~15-30 ms (fsync),
        # a journal append ~1 ms, and it serves one worker or many alike. An existing SQLite
        # study (storage: sqlite earlier) is continued where it is.
        kind = "sqlite" if Path(sqlite).is_file() else "journal"
        choice = StorageChoice(kind, sqlite if kind == "sqlite" else journal, True)
    elif setting in ("memory", "sqlite", "journal"):
        choice = StorageChoice(setting, {"memory": "", "sqlite": sqlite, "journal": journal}[setting], True)
    elif setting.startswith("journal:"):
        choice = StorageChoice("journal", _abs(root, setting.removeprefix("journal:")), True)
    elif setting.startswith("sqlite:///"):
        choice = StorageChoice("sqlite", _abs(root, setting.removeprefix("sqlite:///")), True)
    elif "://" in setting:
        choice = StorageChoice("url", setting, False)
    else:
        raise ConfigError(
            f"unknown storage {setting!r}",
            where=where,
            key="search.storage",
            value=setting,
            fix="use auto, memory, sqlite, journal, journal:<path> or a database URL (postgresql://user@host/db)",
        )
    if workers > 1 and choice.kind in ("memory", "sqlite"):
        raise ConfigError(
            f"{workers} workers cannot share {choice.describe()}",
            where=where,
            key="search.storage",
            value=setting,
            fix="run with WORKERS=1, or set search.storage=journal (parallel workers on one host; a new study "
            "unless its journal exists) or a database URL (many hosts)",
        )
    return choice


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """An exclusive ``flock`` on ``path`` (yields False when ``wait`` is off and it is held)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
