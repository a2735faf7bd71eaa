"""Build a project's deployment targets from a registered version (production by default).

The bundle and test split of that version come out of DVC's cache at the version's commit, so a
deployment is exactly the model the registry names, whatever the working tree holds now. Every
prediction from every target carries ``<team>/<name>@<version>``. Built targets are tracked by
DVC (``deploy/<team>/<name>/<target>.dvc``).

Promoting and rolling back build first and switch the registry after: a version whose model
cannot be built (not in DVC's cache, an edge variant out of tolerance) leaves production, every
deployment folder and its DVC pointer as they were.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError, DataError, did_you_mean
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig
from shipyard.engine.pipeline import DATASETS

if TYPE_CHECKING:
    from shipyard.registry import Version

__all__ = [
    "TARGETS",
    "deploy_dir",
    "deploy_project",
    "deployed_version",
    "materialize",
    "promote",
    "rollback",
    "summary",
]

TARGETS = ("service", "batch", "edge")
# Where each built target records the model version it holds (the files shipyard.deploy writes;
# read here without importing the targets' code).
VERSION_FILES = {
    "service": ("service.json", "model_version"),
    "batch": ("job.yaml", "version"),
    "edge": ("metadata.json", "model_version"),
}


def deploy_dir(paths: ProjectPaths, target: str) -> Path:
    return paths.deploy_dir(target)


@contextlib.contextmanager
def materialize(paths: ProjectPaths, commit: str, names: tuple[str, ...]) -> Iterator[dict[str, Path]]:
    """The given pipeline datasets as they were at ``commit``, from DVC's cache, in a temp dir."""
    from dvc.repo import Repo
    from dvc_data.index import DataIndexError

    tmp = Path(tempfile.mkdtemp(prefix="shipyard-release-"))
    try:
        out = {}
        with contextlib.redirect_stdout(io.StringIO()), Repo.open(str(paths.root), rev=commit) as repo:
            for name in names:
                source = paths.rel(DATASETS[name].path(paths))
                target = tmp / name / Path(source).name
                target.parent.mkdir(parents=True)
                try:
                    repo.dvcfs.get(source, str(target), recursive=True)
                except (FileNotFoundError, DataIndexError) as exc:
                    # A missing file object, or a missing folder listing (the .dir object).
                    raise DataError(
                        f"{source} of commit {commit[:12]} is not in DVC's cache ({exc})",
                        where=source,
                        fix="fetch it (`dvc pull`, or `dvc fetch --rev <version tag>` from the project's remote), "
                        "then run this again",
                    ) from exc
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


Builder = Callable[[Path, Path, ShipyardConfig, str, str, Path, Path | None], dict[str, Any]]


def _log_spec(cfg: ShipyardConfig, project: str) -> dict[str, Any] | None:
    """``monitor.log`` as the service and the batch job record it (the default place:
    ``data/<team>/<name>/09_monitoring/predictions``, repository-relative)."""
    from shipyard.core.paths import ARTIFACTS
    from shipyard.deploy._predlog import log_spec

    layer, name = ARTIFACTS["predictions"]
    return log_spec(cfg.monitor.log, f"data/{project}/{layer}/{name}")


def _builders() -> dict[str, Builder]:
    def edge(
        bundle: Path, out: Path, cfg: ShipyardConfig, project: str, version: str, test: Path, store: Path | None
    ) -> dict[str, Any]:
        import pandas as pd
        from shipyard.deploy.edge import build_edge

        frame = pd.read_parquet(test)
        return build_edge(bundle, out, cfg.deploy.edge, project=project, version=version, test_frame=frame)

    def service(
        bundle: Path, out: Path, cfg: ShipyardConfig, project: str, version: str, test: Path, store: Path | None
    ) -> dict[str, Any]:
        import pandas as pd
        from shipyard.deploy.service import build_service

        # request.json gets a real row of the version's test split.
        frame = pd.read_parquet(test)
        return build_service(
            bundle,
            out,
            cfg.deploy.service,
            project=project,
            version=version,
            example=frame,
            feature_store=store,
            key_field=cfg.data.key,
            prediction_log=_log_spec(cfg, project),
        )

    def batch(
        bundle: Path, out: Path, cfg: ShipyardConfig, project: str, version: str, test: Path, store: Path | None
    ) -> dict[str, Any]:
        from shipyard.deploy.batch import build_batch_job

        return build_batch_job(
            bundle,
            out,
            cfg.deploy.batch,
            project=project,
            version=version,
            data_key=cfg.data.key,
            data_source=cfg.data.source,
            feature_store=store,
            prediction_log=_log_spec(cfg, project),
        )

    return {"edge": edge, "service": service, "batch": batch}


def _track(paths: ProjectPaths, folders: list[Path]) -> None:
    """Record built targets in DVC (content hashes; `git add` the .dvc pointers to version them)."""
    import logging

    from shipyard.engine.dvc_adapter import open_repo

    logging.getLogger("dvc").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()), open_repo(paths.root) as repo:
        repo.add([str(f) for f in folders])


def _check_targets(paths: ProjectPaths, wanted: list[str]) -> None:
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
    _check_targets(paths, wanted)
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
    candidate = _rollout_candidate(paths, config, registry, item) if "service" in wanted else None
    shadow = _shadow_candidate(paths, config, registry, item) if "batch" in wanted else None
    reports: dict[str, dict[str, Any]] = {}
    with materialize(paths, item.commit, ("model_bundle", "test_split")) as files:
        store = _feature_store(paths, config, files["model_bundle"], files["test_split"].parent.parent, say)
        for target in wanted:
            out = deploy_dir(paths, target)
            if target == "service" and candidate is not None:
                mode = config.deploy.service.rollout.mode
                say(f"▶ deploy service ({label} with candidate {candidate.version}, {mode})")
                reports[target] = _rollout_service(paths, config, files, label, candidate)
                continue
            if target == "batch" and shadow is not None:
                say(f"▶ deploy batch ({label} with shadow candidate {shadow.version})")
                reports[target] = _shadow_batch(paths, config, files, label, shadow)
                continue
            say(f"▶ deploy {target} ({label})")
            reports[target] = builders[target](
                files["model_bundle"], out, config, paths.project, label, files["test_split"], store
            )
    _track(paths, [deploy_dir(paths, t) for t in wanted])
    return reports


def _feature_store(
    paths: ProjectPaths, config: ShipyardConfig, bundle: Path, scratch: Path, say: Callable[[str], None]
) -> Path | None:
    """The online store of a model trained with shared features, materialised once into
    ``scratch`` for the targets to copy; None for a model without them."""
    import json

    manifest = json.loads((bundle / "bundle.json").read_text()).get("features")
    if not manifest or not manifest.get("views"):
        return None
    from shipyard.engine.features import materialize_store

    folder = scratch / "feature_store"
    report = materialize_store(paths, config, manifest, folder)
    where = "features.db" if config.features.online_store is None else report["store"]
    say(f"▶ materialised {report['rows']} feature rows into the online store ({where})")
    return folder


def _rollout_candidate(paths: ProjectPaths, config: ShipyardConfig, registry: Any, serving: Version) -> Version | None:
    """The rollout's candidate (``deploy.service.rollout``), refused unless it passed its gate."""
    rollout = config.deploy.service.rollout
    if rollout.mode is None or rollout.candidate is None:
        return None
    candidate = registry.promotable(rollout.candidate)
    if candidate.version == serving.version:
        raise ConfigError(
            f"the rollout's candidate {candidate.version} is the version the service serves",
            key="deploy.service.rollout.candidate",
            value=rollout.candidate,
            fix="name a newer version, or remove deploy.service.rollout (the rollout has ended)",
        )
    return candidate


def _shadow_candidate(paths: ProjectPaths, config: ShipyardConfig, registry: Any, serving: Version) -> Version | None:
    """The batch job's shadow candidate (``deploy.batch.shadow``): gated, and not the model itself."""
    if config.deploy.batch.shadow is None:
        return None
    candidate = registry.promotable(config.deploy.batch.shadow)
    if candidate.version == serving.version:
        raise ConfigError(
            f"the batch job's shadow candidate {candidate.version} is the version it scores with",
            key="deploy.batch.shadow",
            value=config.deploy.batch.shadow,
            fix="name a newer version, or remove deploy.batch.shadow",
        )
    return candidate


def _shadow_batch(
    paths: ProjectPaths, config: ShipyardConfig, files: dict[str, Path], label: str, candidate: Version
) -> dict[str, Any]:
    from shipyard.deploy.batch import build_batch_job

    with materialize(paths, candidate.commit, ("model_bundle",)) as theirs:
        return build_batch_job(
            files["model_bundle"],
            deploy_dir(paths, "batch"),
            config.deploy.batch,
            project=paths.project,
            version=label,
            data_key=config.data.key,
            data_source=config.data.source,
            candidate=(theirs["model_bundle"], f"{paths.project}@{candidate.version}"),
            prediction_log=_log_spec(config, paths.project),
        )


def _rollout_service(
    paths: ProjectPaths, config: ShipyardConfig, files: dict[str, Path], label: str, candidate: Version
) -> dict[str, Any]:
    import pandas as pd
    from shipyard.core.compose import dump
    from shipyard.deploy.service import build_service

    log = dump(config.monitor.log)
    log["path"] = log["path"] or paths.rel(paths.artifact("predictions"))
    with materialize(paths, candidate.commit, ("model_bundle",)) as theirs:
        return build_service(
            files["model_bundle"],
            deploy_dir(paths, "service"),
            config.deploy.service,
            project=paths.project,
            version=label,
            example=pd.read_parquet(files["test_split"]),
            candidate=(theirs["model_bundle"], f"{paths.project}@{candidate.version}"),
            key_field=config.data.key,
            prediction_log=log,
        )


def deployed_version(folder: Path, target: str) -> str | None:
    """The model version a built target holds (``<team>/<name>@vN.0.0``), read from the built
    folder's own metadata; None when there is no readable record."""
    import yaml

    name, key = VERSION_FILES[target]
    try:
        data = yaml.safe_load((folder / name).read_text(encoding="utf-8"))  # YAML reads the JSON ones too
    except (OSError, yaml.YAMLError):
        return None
    value = data.get(key) if isinstance(data, dict) else None
    return str(value) if value else None


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link costs nothing and keeps the old bytes: builds replace files, never edit them."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextlib.contextmanager
def _restorable(paths: ProjectPaths, targets: list[str]) -> Iterator[None]:
    """Run a build; if it fails, put each target's folder, its DVC pointer and the folder's
    .gitignore back as they were (what did not exist before is removed again)."""
    root = paths.deploy_root
    files = [root / ".gitignore", *(root / f"{t}.dvc" for t in targets)]
    scratch_parent = paths.root / ".dvc" / "tmp" / "shipyard"
    scratch_parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="deploy-backup-", dir=scratch_parent))
    try:
        folders = {t: deploy_dir(paths, t) for t in targets}
        kept = {t: f for t, f in folders.items() if f.is_dir()}
        for target, folder in kept.items():
            shutil.copytree(folder, scratch / target, symlinks=True, copy_function=_link_or_copy)
        saved = {f: f.read_bytes() for f in files if f.is_file()}
        try:
            yield
        except BaseException:
            for target, folder in folders.items():
                if folder.is_dir():
                    shutil.rmtree(folder)  # the failed build's, or a rebuilt one the backup replaces
                if target in kept:
                    os.replace(scratch / target, folder)
            for file in files:
                if file in saved:
                    file.write_bytes(saved[file])
                elif file.is_file():
                    file.unlink()
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _build_then(
    paths: ProjectPaths, config: ShipyardConfig, version: str, switch: Callable[[], Any], say: Callable[[str], None]
) -> tuple[Any, dict[str, dict[str, Any]]]:
    """Build the declared targets for ``version``, then ``switch`` the registry; a failure in
    either leaves the deployments as they were."""
    targets = [str(t) for t in config.deploy.targets]
    if not targets:
        return switch(), {}
    with _restorable(paths, targets):
        reports = deploy_project(paths, config, version=version, say=say)
        return switch(), reports


def promote(
    paths: ProjectPaths, config: ShipyardConfig, version: str, stage: str = "production", *, say: Callable[[str], None]
) -> tuple[Version, Version | None, dict[str, dict[str, Any]]]:
    """Promote ``version``; to production, deployments follow: built first, switched after."""
    from shipyard.engine.release import schema_change_note
    from shipyard.registry import Registry

    registry = Registry(paths)
    target = registry.promotable(version)
    if stage == "production":
        note = schema_change_note(paths, registry.production(), target)
        if note:
            say(f"schema change: {note}")
    if stage != "production":
        return (*registry.promote(target.version, stage), {})
    (promoted, previous), reports = _build_then(
        paths, config, target.version, lambda: registry.promote(target.version, stage), say
    )
    return promoted, previous, reports


def rollback(
    paths: ProjectPaths, config: ShipyardConfig, *, say: Callable[[str], None]
) -> tuple[Version, Version, dict[str, dict[str, Any]]]:
    """Put the previous production version back (walking back through production's history);
    deployments follow: built first, switched after."""
    from shipyard.registry import Registry

    registry = Registry(paths)
    target, _current = registry.rollback_plan()
    (restored, replaced), reports = _build_then(
        paths, config, target.version, lambda: registry.rollback(expected=target.version), say
    )
    return restored, replaced, reports
