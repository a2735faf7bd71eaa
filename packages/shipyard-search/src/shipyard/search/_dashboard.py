"""``make dashboard PROJECT=x``: optuna-dashboard on the study's storage, on loopback."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from shipyard.core.errors import ConfigError
from shipyard.core.paths import ProjectPaths
from shipyard.search._storage import JOURNAL_FILE, SQLITE_FILE, StorageChoice

__all__ = ["dashboard", "study_storage"]


def study_storage(project: str, overrides: Sequence[str], *, root: Path) -> tuple[StorageChoice, str]:
    """The storage and study name a project's search uses (it must exist already)."""
    from shipyard.search._api import search_choice, search_folder
    from shipyard.search._check import compose_trial
    from shipyard.search._spec import search_spec
    from shipyard.search._storage import resolve_storage

    paths = ProjectPaths.of(root, project)
    spec = search_spec(compose_trial(project, list(overrides), root), root, choice=search_choice(overrides))
    folder = search_folder(paths)
    choice = resolve_storage(spec.storage, folder, 1, root, spec.where)
    if choice.kind == "memory":
        raise ConfigError(
            "an in-memory study is gone when its search ends",
            where=spec.where,
            key="search.storage",
            value="memory",
            fix="search with storage auto, sqlite, journal or a database URL to watch it",
        )
    if choice.kind in ("sqlite", "journal") and not Path(choice.target).is_file():
        raise ConfigError(
            f"no study yet for {project} (looked for {folder.relative_to(root) / SQLITE_FILE} and {JOURNAL_FILE})",
            where=spec.where,
            key="search.storage",
            fix=f"run `make search PROJECT={project}` first",
        )
    return choice, spec.study_name


def dashboard(
    project: str,
    overrides: Sequence[str] = (),
    *,
    root: Path,
    host: str = "127.0.0.1",
    port: int = 8080,
    say: Callable[[str], None] = print,
) -> None:
    """Serve optuna-dashboard on the project's study until interrupted."""
    from optuna_dashboard import run_server

    choice, study = study_storage(project, overrides, root=root)
    say(f"optuna-dashboard for study {study!r} ({choice.describe()}): http://{host}:{port}/  (Ctrl-C stops it)")
    run_server(choice.open(), host=host, port=port)
