"""Where things live in a Shipyard repository.

The repository root holds ``conf/``, ``pipelines/``, ``data/`` and ``.dvc/``; every path a
project uses is derived here so that no two modules spell a path differently.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from shipyard.core.errors import ConfigError

__all__ = ["ProjectPaths", "find_root", "parse_project"]

_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*/[a-z0-9][a-z0-9_\-]*$")
_DATA_LAYERS = ("01_raw", "02_intermediate", "05_model_input", "06_models", "08_reporting")


def find_root(start: Path | None = None) -> Path:
    """The repository root: ``$SHIPYARD_ROOT`` or the nearest parent holding ``conf/``."""
    env = os.environ.get("SHIPYARD_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "conf" / "config.yaml").is_file():
            return candidate
    raise ConfigError(
        f"no Shipyard repository found at or above {here}",
        fix="run the command inside the repository (the folder with conf/config.yaml) or set SHIPYARD_ROOT",
    )


def parse_project(name: str) -> tuple[str, str]:
    """Split ``team/name`` into its parts, refusing anything else."""
    if not _PROJECT_RE.match(name):
        raise ConfigError(
            f"bad project name {name!r}",
            value=name,
            fix="name a project as <team>/<name> in lower case, e.g. tabular/breast_cancer",
        )
    team, project = name.split("/")
    return team, project


@dataclass(frozen=True)
class ProjectPaths:
    """Every path of one project, relative to the repository root unless stated."""

    root: Path
    team: str
    name: str

    @classmethod
    def of(cls, root: Path, project: str) -> ProjectPaths:
        team, name = parse_project(project)
        return cls(root=root, team=team, name=name)

    @property
    def project(self) -> str:
        return f"{self.team}/{self.name}"

    @property
    def config_file(self) -> Path:
        return self.root / "conf" / "project" / self.team / f"{self.name}.yaml"

    @property
    def pipeline_dir(self) -> Path:
        return self.root / "pipelines" / self.team / self.name

    @property
    def dvc_yaml(self) -> Path:
        return self.pipeline_dir / "dvc.yaml"

    @property
    def params_yaml(self) -> Path:
        return self.pipeline_dir / "params.yaml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data" / self.team / self.name

    def layer(self, layer: str) -> Path:
        if layer not in _DATA_LAYERS:
            raise ValueError(f"unknown data layer {layer!r}")
        return self.data_dir / layer

    def rel(self, path: Path) -> str:
        """``path`` relative to the repository root, with forward slashes."""
        return path.resolve().relative_to(self.root.resolve()).as_posix()
