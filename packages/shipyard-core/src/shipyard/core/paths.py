"""Where things live in a Shipyard repository: the one place for the artifact layout.

The repository root holds ``conf/``, ``pipelines/``, ``data/``, ``deploy/`` and ``.dvc/``.
Every path a project uses (each stage output, search results, deployments, monitoring logs) is
derived here, so that no two modules spell a path differently.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from shipyard.core.errors import ConfigError

__all__ = ["ARTIFACTS", "ONLINE_STORE_FILE", "ProjectPaths", "find_root", "parse_project"]

_PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*/[a-z0-9][a-z0-9_\-]*$")
# Kedro's data layer names, under data/<team>/<name>/.
_DATA_LAYERS = (
    "01_raw",
    "02_intermediate",
    "04_feature",
    "05_model_input",
    "06_models",
    "07_model_output",
    "08_reporting",
    "09_monitoring",
)

# Every artifact a project's pipeline writes: name -> (layer, file or folder name).
ARTIFACTS: dict[str, tuple[str, str]] = {
    "dataset": ("02_intermediate", "dataset.parquet"),
    "ingest_report": ("02_intermediate", "ingest_report.json"),
    "training_frame": ("04_feature", "training_frame.parquet"),
    "feature_manifest": ("04_feature", "features.json"),
    "check_report": ("08_reporting", "data_checks.json"),
    "check_summary": ("08_reporting", "data_checks.txt"),
    "train_split": ("05_model_input", "train.parquet"),
    "val_split": ("05_model_input", "val.parquet"),
    "test_split": ("05_model_input", "test.parquet"),
    "split_manifest": ("05_model_input", "split_manifest.json"),
    "preprocessor": ("06_models", "preprocessor.json"),
    "model_bundle": ("06_models", "bundle"),
    "train_report": ("08_reporting", "train_report.json"),
    "learning_curve": ("08_reporting", "learning_curve.csv"),
    "metrics": ("08_reporting", "metrics.json"),
    "gate_report": ("08_reporting", "gate.json"),
    "confusion": ("08_reporting", "confusion.csv"),
    "edge_metrics": ("08_reporting", "edge_metrics.json"),
    "report": ("08_reporting", "report.html"),
    "search": ("08_reporting", "search"),
    "train_workdir": ("06_models", ".train"),
    "contract": ("06_models", "contract.json"),
    "reference_profile": ("06_models", "reference_profile.json"),
    # Written by `shipyard train` from the registry before the pipeline runs (committed with the
    # version): the contract of the production (else latest) version, which the check stage reads.
    "reference_contract": ("pipeline", "reference_contract.json"),
    "predictions": ("09_monitoring", "predictions"),
    "monitor_reports": ("09_monitoring", "reports"),
    "trigger_state": ("09_monitoring", "trigger.json"),
    "rollout_compare": ("09_monitoring", "rollout_compare.json"),
}
DEPLOY_TARGETS = ("service", "batch", "edge", "monitor")
# A team step's outputs: data steps' beside the ingested data, report steps' beside the reports.
STEP_LAYERS = {"data": "02_intermediate", "report": "08_reporting"}
STEP_SUFFIX = {"parquet": ".parquet", "csv": ".csv", "json": ".json", "text": ".txt"}
# The embedded online store a built service or batch job carries (features.online_store: null).
ONLINE_STORE_FILE = "features.sqlite"


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
    def feature_defs(self) -> Path:
        """The feature definitions the project uses, compiled from conf/features/ with their hashes."""
        return self.pipeline_dir / "features.yaml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data" / self.team / self.name

    def layer(self, layer: str) -> Path:
        if layer not in _DATA_LAYERS:
            raise ValueError(f"unknown data layer {layer!r}")
        return self.data_dir / layer

    def artifact(self, name: str) -> Path:
        """The file or folder of one pipeline artifact (see :data:`ARTIFACTS`)."""
        layer, filename = ARTIFACTS[name]
        if layer == "pipeline":
            return self.pipeline_dir / filename
        return self.layer(layer) / filename

    def step_output(self, name: str, kind: str, placement: str) -> Path:
        """The file of a team step's output ``name`` (its kind and the step's placement)."""
        return self.layer(STEP_LAYERS[placement]) / "steps" / f"{name}{STEP_SUFFIX[kind]}"

    @property
    def deploy_root(self) -> Path:
        return self.root / "deploy" / self.team / self.name

    def deploy_dir(self, target: str) -> Path:
        """The built deployment of ``target`` (service, batch, edge), or the monitoring schedule."""
        if target not in DEPLOY_TARGETS:
            raise ValueError(f"unknown deployment target {target!r}")
        return self.deploy_root / target

    def rel(self, path: Path) -> str:
        """``path`` relative to the repository root, with forward slashes."""
        return path.resolve().relative_to(self.root.resolve()).as_posix()
