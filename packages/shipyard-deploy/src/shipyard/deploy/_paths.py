"""Paths as a deployment's files record them: relative to the repository, so that a built folder
(DVC-tracked, committed by pointer) reads the same on every machine."""

from __future__ import annotations

import os
from pathlib import Path

from shipyard.core.errors import ConfigError
from shipyard.core.paths import find_root

__all__ = ["repo_relative", "repo_root"]


def repo_root(near: Path) -> Path | None:
    """The Shipyard repository holding ``near`` (or ``$SHIPYARD_ROOT``), None outside one."""
    try:
        return Path(find_root(Path(near).resolve()))
    except ConfigError:
        return None


def repo_relative(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when inside it (``deploy/tabular/churn/service``), else absolute.

    Symbolic links are kept where that makes the path relative: ``.venv/bin/python`` links to the
    base interpreter, and resolving it would name a Python without the virtual environment."""
    for candidate in (Path(os.path.abspath(path)), Path(path).resolve()):
        if root is not None and candidate.is_relative_to(root):
            return candidate.relative_to(root).as_posix()
    return str(Path(path).resolve())
