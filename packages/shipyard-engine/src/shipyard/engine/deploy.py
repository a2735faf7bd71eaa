"""Build a project's deployment targets from a registered version (production by default).

The bundle and test split of that version come out of DVC's cache at the version's commit, so a
deployment is exactly the model the registry names, whatever the working tree holds now. Every
prediction from every target carries ``<team>/<name>@<version>``. Built targets are tracked by
DVC (``deploy/<team>/<name>/<target>.dvc``).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError, did_you_mean
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig
from shipyard.engine.pipeline import DATASETS

__all__ = ["TARGETS", "deploy_dir", "deploy_project", "materialize", "summary"]

TARGETS = ("service", "batch", "edge")


def deploy_dir(paths: ProjectPaths, target: str) -> Path:
    return paths.root / "deploy" / paths.team / paths.name / target


@contextlib.contextmanager
def materialize(paths: ProjectPaths, commit: str, names: tuple[str, ...]) -> Iterator[dict[str, Path]]:
    """The given pipeline datasets as they were at ``commit``, from DVC's cache, in a temp dir."""
    from dvc.repo import Repo

    tmp = Path(tempfile.mkdtemp(prefix="shipyard-release-"))
    try:
        out = {}
        with contextlib.redirect_stdout(io.StringIO()), Repo.open(str(paths.root), rev=commit) as repo:
            for name in names:
                source = paths.rel(DATASETS[name].path(paths))
                target = tmp / name / Path(source).name
                target.parent.mkdir(parents=True)
                repo.dvcfs.get(source, str(target), recursive=True)
                out[name] = target
        yield out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def summary(target: str, out: Path, report: dict[str, Any]) -> str:
    """One line on a built target."""
    if target == "edge":
        from shipyard.deploy.edge import edge_status

        return edge_status(out) or ""
    return str(report.get("summary", ""))


Builder = Callable[[Path, Path, ShipyardConfig, str, str, Path], dict[str, Any]]


def _builders() -> dict[str, Builder]:
    def edge(bundle: Path, out: Path, cfg: ShipyardConfig, project: str, version: str, test: Path) -> dict[str, Any]:
        import pandas as pd
        from shipyard.deploy.edge import build_edge

        frame = pd.read_parquet(test)
        return build_edge(bundle, out, cfg.deploy.edge, project=project, version=version, test_frame=frame)

    def service(bundle: Path, out: Path, cfg: ShipyardConfig, project: str, version: str, test: Path) -> dict[str, Any]:
        import pandas as pd
        from shipyard.deploy.service import build_service

        # request.json gets a real row of the version's test split.
        frame = pd.read_parquet(test)
        return build_service(bundle, out, cfg.deploy.service, project=project, version=version, example=frame)

    def batch(bundle: Path, out: Path, cfg: ShipyardConfig, project: str, version: str, test: Path) -> dict[str, Any]:
        from shipyard.deploy.batch import build_batch_job

        return build_batch_job(
            bundle,
            out,
            cfg.deploy.batch,
            project=project,
            version=version,
            data_key=cfg.data.key,
            data_source=cfg.data.source,
        )

    return {"edge": edge, "service": service, "batch": batch}


def _track(paths: ProjectPaths, folders: list[Path]) -> None:
    """Record built targets in DVC (content hashes; `git add` the .dvc pointers to version them)."""
    import logging

    from dvc.repo import Repo

    logging.getLogger("dvc").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()), Repo(str(paths.root)) as repo:
        repo.add([str(f) for f in folders])


def deploy_project(
    paths: ProjectPaths,
    config: ShipyardConfig,
    *,
    targets: list[str] | None = None,
    version: str | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, dict[str, Any]]:
    """Build ``targets`` (default: ``deploy.targets``) for ``version`` (default: production)."""
    from shipyard.registry import Registry, RegistryError

    wanted = [str(t) for t in (targets or config.deploy.targets)]
    if not wanted:
        raise ConfigError(
            f"{paths.project} declares no deployment targets",
            key="deploy.targets",
            fix="set deploy.targets: [service, batch, edge] (any of them) in the project file, or pass TARGET=edge",
        )
    for target in wanted:
        if target not in TARGETS:
            raise ConfigError(
                f"unknown deployment target {target!r}{did_you_mean(target, TARGETS)}",
                key="deploy.targets",
                value=target,
                fix="use: " + ", ".join(TARGETS),
            )
    registry = Registry(paths)
    item = registry.get(version) if version else registry.production()
    if item is None:
        raise RegistryError(
            f"{paths.project} has no production version to deploy",
            fix=f"promote a version that passed its gate: make promote PROJECT={paths.project} VERSION=v1 "
            f"(see make status PROJECT={paths.project})",
        )
    if not item.gate_passed:
        raise RegistryError(
            f"{paths.project} {item.version} did not pass its gate and cannot be deployed",
            fix="deploy a version that passed (make status shows the gate results)",
        )
    label = f"{paths.project}@{item.version}"
    builders = _builders()
    reports: dict[str, dict[str, Any]] = {}
    with materialize(paths, item.commit, ("model_bundle", "test_split")) as files:
        for target in wanted:
            say(f"▶ deploy {target} ({label})")
            out = deploy_dir(paths, target)
            reports[target] = builders[target](
                files["model_bundle"], out, config, paths.project, label, files["test_split"]
            )
    _track(paths, [deploy_dir(paths, t) for t in wanted])
    return reports
