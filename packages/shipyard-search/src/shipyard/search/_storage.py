"""Where a study lives, and the host-local locks that keep parallel workers exact.

``storage`` in the search config:

* ``auto`` (default): ``study.db`` (SQLite) when that study already exists in the search
  folder, else a journal file (``journal.log``, Optuna's ``JournalFileBackend``);
* ``memory``: nothing kept, one worker, no resume;
* ``sqlite`` / ``journal``: that file in the search folder;
* ``journal:<path>``: a journal file elsewhere (repository-relative);
* a database URL (``postgresql+psycopg://...``, ``sqlite:///path.db``): an RDB storage; for many
  hosts. Running trials write heartbeats there; a trial silent past the grace period lost its
  worker (a dead host, a killed process): Optuna fails it and its parameters are queued again.

Claiming a trial happens under a lock that every worker of the study shares: a file lock in the
search folder for file storages (one host), and for PostgreSQL an advisory lock in the database
itself, so workers on many hosts never overshoot ``n_trials`` or take the same queued trial.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError

__all__ = [
    "JOURNAL_FILE",
    "SQLITE_FILE",
    "StorageChoice",
    "claim_lock",
    "file_lock",
    "resolve_storage",
    "study_lock_key",
]

SQLITE_FILE = "study.db"
JOURNAL_FILE = "journal.log"
CLAIM_LOCK = ".claim.lock"
# A trial whose worker died is run again at most this many times (a trial that kills its worker
# every time, say by running out of memory, then stays failed and the search goes on).
MAX_RETRIES = 2


@dataclass(frozen=True)
class StorageChoice:
    kind: str  # memory | sqlite | journal | url
    target: str  # the file or URL ("" for memory)
    local: bool  # on this host only: a RUNNING trial with no search running is stale
    heartbeat: tuple[int, int] | None = None  # url: (interval, grace period) in seconds
    where: str = ""  # the search's file, for messages

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
        return _rdb(self.target, self.heartbeat, self.where)

    @property
    def url(self) -> str:
        """What optuna-dashboard takes."""
        return f"sqlite:///{self.target}" if self.kind == "sqlite" else self.target

    def describe(self) -> str:
        """For messages and reports: a database URL without its password."""
        if self.kind == "url":
            from sqlalchemy.engine import make_url

            return make_url(self.target).render_as_string(hide_password=True)
        return {"memory": "in memory", "sqlite": f"SQLite {self.target}", "journal": f"journal file {self.target}"}[
            self.kind
        ]


def _rdb(url: str, heartbeat: tuple[int, int] | None, where: str) -> Any:
    """Many hosts: each running trial writes a heartbeat; one silent past the grace period lost
    its worker, so Optuna fails it (:func:`optuna.storages.fail_stale_trials`, called before
    each claim) and Optuna's retry callback queues its parameters as a new trial."""
    import optuna
    from shipyard.search._study import quiet_optuna
    from sqlalchemy.exc import SQLAlchemyError

    quiet_optuna()  # heartbeats and the retry callback are "experimental" in Optuna's words
    interval, grace = heartbeat if heartbeat is not None else (None, None)
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES) if heartbeat else None
    try:
        # Optuna creates its tables on first use; two hosts doing it at once collide in PostgreSQL.
        with _advisory_lock(url, study_lock_key("")):
            return optuna.storages.RDBStorage(
                url,
                heartbeat_interval=interval,
                grace_period=grace,
                heartbeat_stale_trial_callback=retry,
                engine_kwargs={"pool_pre_ping": True},
            )
    except ImportError as exc:
        raise ConfigError(
            f"the database driver for {url.split(':', 1)[0]} is not installed: {exc}",
            where=where or None,
            key="search.storage",
            fix="install the driver into the environment (psycopg[binary] for postgresql+psycopg://, "
            "pymysql for mysql+pymysql://)",
        ) from exc
    except SQLAlchemyError as exc:
        from sqlalchemy.engine import make_url

        shown = make_url(url).render_as_string(hide_password=True)
        raise ConfigError(
            f"cannot open the study storage {shown}: {str(getattr(exc, 'orig', None) or exc).splitlines()[0]}",
            where=where or None,
            key="search.storage",
            value=shown,
            fix="check that the database server runs and accepts this user, and the URL "
            "(postgresql+psycopg://user:password@host:5432/database)",
        ) from exc


def _abs(root: Path, path: str) -> str:
    p = Path(path)
    return str(p if p.is_absolute() else (root / p).resolve())


def resolve_storage(
    setting: str, folder: Path, workers: int, root: Path, where: str, heartbeat: tuple[int, int] | None = None
) -> StorageChoice:
    """The storage for ``setting`` (see the module docs); ``heartbeat`` (interval, grace period)
    applies to a database URL."""
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
        choice = StorageChoice("url", setting, False, heartbeat, where)
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


def study_lock_key(study_name: str) -> int:
    """A signed 64-bit advisory-lock key per study (studies in one database do not wait on each other)."""
    return int.from_bytes(hashlib.sha256(f"shipyard-search:{study_name}".encode()).digest()[:8], "big", signed=True)


def _backend(url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(url).get_backend_name())


@lru_cache(maxsize=4)
def _lock_engine(url: str) -> Any:
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    # A connection of its own, opened per claim: the lock dies with it if this process does.
    return create_engine(url, poolclass=NullPool)


@contextlib.contextmanager
def claim_lock(choice: StorageChoice, folder: Path, study_name: str) -> Iterator[None]:
    """Held while a worker opens the study or claims a trial: shared by every worker that can
    reach the study. PostgreSQL: a session advisory lock in the database (many hosts). Other
    storages: a file lock in the search folder (one host; another database reached from several
    hosts may then overshoot ``n_trials`` by one trial per extra host)."""
    if choice.kind == "url" and _backend(choice.target) == "postgresql":
        with _advisory_lock(choice.target, study_lock_key(study_name)):
            yield
        return
    with file_lock(folder / CLAIM_LOCK):
        yield


@contextlib.contextmanager
def _advisory_lock(url: str, key: int) -> Iterator[None]:
    """A PostgreSQL session advisory lock (nothing for other databases)."""
    if _backend(url) != "postgresql":
        yield
        return
    from sqlalchemy import text

    with _lock_engine(url).connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
