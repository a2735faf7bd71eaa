"""From a finished pipeline run to a registered model version with its lineage.

The model card gathers what made the model: the git commit (and whether the tree was dirty),
content hashes of data and code from ``dvc.lock``, the resolved params, the hash of the locked
environment, seed, hardware, training time, metrics and the gate's verdict, including the
comparison with the current production version.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from shipyard.core.compose import to_dict
from shipyard.core.errors import ConfigError
from shipyard.core.hashing import file_sha256, json_sha256
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig
from shipyard.engine.pipeline import DATASETS

__all__ = [
    "contract_reference",
    "lineage_of",
    "model_card",
    "parse_age",
    "register_run",
    "schema_change_note",
    "status_of",
    "write_reference_contract",
]

LOCK_FILE = "requirements.lock"


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def _changed_paths(root: Path) -> list[str]:
    """Tracked files that differ from HEAD (staged or not), from ``git status --porcelain -z``:
    NUL-separated ``XY path`` entries, a rename or copy followed by its source path."""
    proc = subprocess.run(
        ["git", "status", "--porcelain=v1", "-z", "--untracked-files=no"], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        return []
    entries = iter(proc.stdout.split("\0"))
    changed = []
    for entry in entries:
        if len(entry) < 4:
            continue
        changed.append(entry[3:])
        if entry[0] in "RC":
            changed.append(next(entries, ""))
    return [p for p in changed if p]


def _git_state(paths: ProjectPaths) -> dict[str, Any]:
    """The commit the model was trained on and the changes beside it. What the registration
    commits with the version (the project's pipeline, data and deploy pointers, its own and its
    team's YAML) does not make the tree dirty: the version's commit holds it."""
    from shipyard.registry import registration_paths

    own = registration_paths(paths)
    dirty = [
        path
        for path in _changed_paths(paths.root)
        if not any(path.startswith(p) if p.endswith("/") else path == p for p in own)
    ]
    return {"commit": _git(paths.root, "rev-parse", "HEAD") or None, "dirty": bool(dirty), "dirty_paths": dirty[:20]}


def _lock_hashes(paths: ProjectPaths) -> dict[str, Any]:
    lock = yaml.safe_load(paths.dvc_yaml.with_name("dvc.lock").read_text())
    data: dict[str, str] = {}
    code: dict[str, str] = {}
    outs: dict[str, str] = {}
    for stage in lock.get("stages", {}).values():
        for dep in stage.get("deps", []):
            # Package sources (the framework's and a team package's) are code; the rest is data.
            target = code if "/src/" in dep["path"] else data
            target[dep["path"]] = dep.get("md5") or dep.get("hash", "")
        for out in stage.get("outs", []):
            outs[out["path"]] = out.get("md5", "")
    return {"data": data, "code": code, "outs": outs}


def _feature_hashes(paths: ProjectPaths) -> dict[str, dict[str, str]]:
    """``{"view@version": {feature: hash}}`` of the shared features the model was trained with
    (from the compiled features.yaml the join stage read): what ``check_production`` guards."""
    if not paths.feature_defs.is_file():
        return {}
    views = yaml.safe_load(paths.feature_defs.read_text())["views"]
    return {f"{v['view']}@{v['version']}": {f: s["hash"] for f, s in v["features"].items()} for v in views}


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def contract_reference(paths: ProjectPaths) -> dict[str, Any]:
    """The contract the next training's check stage compares with: the production version's,
    else the latest registered version's that has one; else why there is none."""
    from shipyard.registry import Registry

    registry = Registry(paths)
    production = registry.production()
    if production is not None and production.card.get("contract"):
        return {"version": production.version, "stage": "production", "contract": production.card["contract"]}
    for version in reversed(registry.versions()):
        if version.card.get("contract"):
            return {"version": version.version, "stage": None, "contract": version.card["contract"]}
    return {
        "version": None,
        "stage": None,
        "contract": None,
        "reason": "the first training of this project: no registered version carries a contract",
    }


def write_reference_contract(paths: ProjectPaths, reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the check stage's reference contract (only when its content changes)."""
    from shipyard.core.atomic import write_json

    reference = contract_reference(paths) if reference is None else reference
    target = paths.artifact("reference_contract")
    if _read_json(target) != reference:
        write_json(target, reference)
    return reference


def schema_change_note(paths: ProjectPaths, old: Any, new: Any) -> str | None:
    """One line calling out that ``new``'s feature schema differs from ``old``'s (versions), or
    None when they agree or either has no contract."""
    from shipyard.data.contract import schema_changes

    if old is None or new is None or old.version == new.version:
        return None
    changes = schema_changes(old.card.get("contract"), new.card.get("contract"))
    if not changes:
        return None
    return (
        f"{paths.project} {new.version} changes the feature schema of {old.version}: {'; '.join(changes)}; "
        "a service built from it takes a different request: clients must change with it"
    )


def model_card(paths: ProjectPaths, config: ShipyardConfig) -> dict[str, Any]:
    reporting = paths.layer("08_reporting")
    report = json.loads((reporting / "train_report.json").read_text())
    metrics = json.loads((reporting / "metrics.json").read_text())
    gate = json.loads((reporting / "gate.json").read_text())
    bundle = DATASETS["model_bundle"].path(paths)
    hashes = _lock_hashes(paths)
    lock_file = paths.root / LOCK_FILE
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": _git_state(paths),
        "model": {
            "bundle": paths.rel(bundle),
            "bundle_md5": hashes["outs"].get(paths.rel(bundle), ""),
            "weights_sha256": json.loads((bundle / "bundle.json").read_text())["weights_sha256"],
            "target": config.model.target,
        },
        "data": hashes["data"],
        "code": hashes["code"],
        "outputs": hashes["outs"],
        "features": _feature_hashes(paths),
        "params": to_dict(config),
        "params_sha256": json_sha256(to_dict(config)),
        "environment": {
            "lock_file": LOCK_FILE if lock_file.is_file() else None,
            "lock_sha256": file_sha256(lock_file) if lock_file.is_file() else None,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
        },
        "seed": config.seed,
        "hardware": report["hardware"],
        "training": {
            k: report[k] for k in ("epochs", "train_seconds", "resumed", "stopped_early", "samples_per_second")
        },
        "metrics": metrics,
        "gate": gate,
        # The data contract and reference profile this version sets (DVC outputs of its split and
        # evaluate stages), so a later training or a monitoring run reads them from the version.
        "contract": _read_json(paths.artifact("contract")),
        "reference_profile": _read_json(paths.artifact("reference_profile")),
    }


def register_run(
    paths: ProjectPaths, config: ShipyardConfig, *, trigger: dict[str, Any] | None = None
) -> tuple[Any, bool, dict[str, Any]]:
    """Register the model the pipeline just produced; returns (version, created, card).
    ``trigger``: the monitoring firing that asked for this training (kept in the lineage)."""
    from shipyard.registry import Registry
    from shipyard.train.gate import regression_check

    card = model_card(paths, config)
    if trigger is not None:
        card["trigger"] = trigger
    registry = Registry(paths)
    production = registry.production()
    if (
        production is not None
        and not card["gate"].get("skipped")
        and card["gate"].get("metric") in production.card.get("metrics", {})
    ):
        check = regression_check(
            card["metrics"], production.card["metrics"], card["gate"]["metric"], config.gate.regression_tolerance
        )
        check["detail"] += f" ({production.version})"
        card["gate"]["checks"].append(check)
        card["gate"]["passed"] = all(c["passed"] for c in card["gate"]["checks"])
    version, created = registry.register(card)
    if created:
        against = production or next((v for v in reversed(registry.versions()) if v.version != version.version), None)
        note = schema_change_note(paths, against, version)
        if note:
            print(f"▶ schema change: {note}", file=sys.stderr)
    return version, created, version.card


def lineage_of(paths: ProjectPaths, version: str) -> dict[str, Any]:
    from shipyard.registry import Registry

    item = Registry(paths).get(version)
    card = dict(item.card)
    card["registered_commit"] = item.commit
    card["stage"] = item.stages[0] if item.stages else None
    from shipyard.engine.rollout import rollout_history

    card["rollouts"] = rollout_history(paths.root, item.commit, item.version)
    return card


_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_age(text: str) -> timedelta:
    text = str(text).strip()
    if len(text) < 2 or text[-1] not in _UNITS or not text[:-1].isdigit():
        raise ConfigError(
            f"bad max_age {text!r}", key="project.max_age", value=text, fix="write a number and h, d or w, e.g. 30d"
        )
    return int(text[:-1]) * _UNITS[text[-1]]


def status_of(paths: ProjectPaths, config: ShipyardConfig, *, now: datetime | None = None) -> dict[str, Any]:
    """Everything scripts and CI need about a project, machine-readable."""
    from shipyard.engine.deploy import VERSION_FILES, deployed_version
    from shipyard.registry import Registry

    registry = Registry(paths)
    versions = registry.versions()
    production = registry.production()
    now = now or datetime.now(UTC)
    newest = versions[-1] if versions else None
    reference = production or newest
    age = (now - datetime.fromisoformat(reference.card.get("created_at", reference.created_at))) if reference else None
    max_age = config.project.max_age
    deploy_root = paths.root / "deploy" / paths.team / paths.name
    deployments = {}
    if deploy_root.is_dir():
        # Skip .tmp-* (an interrupted build) and edge.rejected (a candidate that failed parity).
        for target in sorted(p for p in deploy_root.iterdir() if p.is_dir() and "." not in p.name):
            files = sorted(f for f in target.rglob("*") if f.is_file())
            label = deployed_version(target, target.name) if target.name in VERSION_FILES else None
            version = label.rpartition("@")[2] if label and label.startswith(f"{paths.project}@") else None
            deployments[target.name] = {
                "path": paths.rel(target),
                "model_version": label,  # what the built folder's own metadata says it serves
                "version": version,
                "is_production": version is not None and version == (production.version if production else None),
                "files": [paths.rel(f) for f in files[:50]],
            }
            if target.name == "edge":
                from shipyard.deploy.edge import REPORT

                report = target / REPORT
                if report.is_file():
                    deployments["edge"]["report"] = json.loads(report.read_text())
    return {
        "project": paths.project,
        "task": str(config.project.task),
        "production": production.version if production else None,
        "versions": [
            {
                "version": v.version,
                "stage": v.stages[0] if v.stages else None,
                "commit": v.commit,
                "created_at": v.card.get("created_at", v.created_at),
                "gate_passed": v.gate_passed,
                "gate": v.card.get("gate", {}).get("checks", []),
                "metrics": {k: m for k, m in v.card.get("metrics", {}).items() if k.startswith("test/")},
                "lineage": {
                    "git": v.card.get("git"),
                    "data": v.card.get("data"),
                    "params_sha256": v.card.get("params_sha256"),
                    "environment": v.card.get("environment"),
                },
            }
            for v in versions
        ],
        "age_days": round(age.total_seconds() / 86400, 2) if age is not None else None,
        "max_age": max_age,
        "stale": bool(age is not None and max_age and age > parse_age(max_age)),
        "deployments": deployments,
    }
