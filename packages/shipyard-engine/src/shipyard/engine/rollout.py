"""Shadow and canary rollouts: start one, compare it on live traffic, end it.

``start_rollout`` builds the project's service with production and one candidate (a version that
passed its gate, refused otherwise exactly as promotion refuses it); the built folder's
``service.json`` is the record of the rollout in progress. ``compare`` judges it on the logged
traffic against ``deploy.service.rollout.compare``. ``end_rollout`` promotes the candidate
through the registry (deployments follow, as ``shipyard promote``) or aborts (the service goes
back to production alone). Every start and end, with the verdict at that time, is appended to
the candidate's lineage: a git note (``refs/notes/shipyard-rollouts``) on its registration
commit, which ``shipyard lineage`` shows; the version's tag and card are never rewritten.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError, DataError
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import RolloutMode, ShipyardConfig

__all__ = [
    "NOTES_REF",
    "compare",
    "current_rollout",
    "end_rollout",
    "rollout_history",
    "start_rollout",
    "with_rollout",
]

NOTES_REF = "refs/notes/shipyard-rollouts"


def with_rollout(
    config: ShipyardConfig, mode: str | None, candidate: str | None, share: float | None
) -> ShipyardConfig:
    """The config with ``deploy.service.rollout`` set (or cleared with ``mode=None``), checked
    by the same rules as the YAML."""
    from shipyard.core.rules import check_bounds

    service = config.deploy.service
    rollout = dataclasses.replace(
        service.rollout,
        mode=RolloutMode(mode) if mode else None,
        candidate=candidate if mode else None,
        share=service.rollout.share if share is None else share,
    )
    check_bounds(rollout, "deploy.service.rollout.")
    deploy = dataclasses.replace(config.deploy, service=dataclasses.replace(service, rollout=rollout))
    return dataclasses.replace(config, deploy=deploy)


def start_rollout(
    paths: ProjectPaths,
    config: ShipyardConfig,
    version: str,
    mode: str,
    share: float | None,
    *,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Build the service with production and ``version`` side by side; returns its build report."""
    from shipyard.engine.deploy import _restorable, deploy_project
    from shipyard.registry import Registry, RegistryError

    registry = Registry(paths)
    candidate = registry.promotable(version)  # refused as promotion refuses it
    production = registry.production()
    if production is None:
        raise RegistryError(
            f"{paths.project} has no production version for {candidate.version} to be compared with",
            fix=f"promote one first: shipyard promote {paths.project} VERSION",
        )
    if production.version == candidate.version:
        raise ConfigError(
            f"{candidate.version} is already production",
            value=candidate.version,
            fix="roll out a newer version that passed its gate (shipyard status lists them)",
        )
    rolled = with_rollout(config, mode, candidate.version, share)
    plan = rolled.deploy.service.rollout
    if plan.mode == RolloutMode.canary and not (plan.sticky_header or plan.sticky_key or config.data.key):
        raise ConfigError(
            f"a canary needs a key to keep each caller on one model, and {paths.project} has no data.key",
            key="deploy.service.rollout.sticky_header",
            fix="pass deploy.service.rollout.sticky_header=X-Client-Id (a request header), or set data.key",
        )
    with _restorable(paths, ["service"]):
        reports = deploy_project(paths, rolled, targets=["service"], say=say)
    _note(
        paths,
        candidate.commit,
        {
            "event": "started",
            "version": candidate.version,
            "mode": str(plan.mode),
            "share": plan.share if plan.mode == RolloutMode.canary else None,
            "production": production.version,
        },
    )
    return reports["service"]


def current_rollout(paths: ProjectPaths) -> dict[str, Any]:
    """The rollout the built service carries: production's and the candidate's version labels."""
    spec_file = paths.deploy_dir("service") / "service.json"
    spec = json.loads(spec_file.read_text()) if spec_file.is_file() else {}
    plan = spec.get("rollout")
    if not plan:
        raise ConfigError(
            f"{paths.project} has no rollout in progress",
            where=paths.rel(spec_file) if spec_file.is_file() else None,
            fix=f"start one: shipyard rollout {paths.project} VERSION --mode shadow (or --mode canary --share 0.1)",
        )
    return {
        "mode": plan["mode"],
        "started_at": plan.get("started_at"),
        "share": plan["share"],
        "production": str(spec["model_version"]),
        "candidate": str(plan["candidate"]["model_version"]),
    }


def _version_of(label: str) -> str:
    return label.rpartition("@")[2]


def _window(text: str | None, now: datetime) -> datetime | None:
    """``--since``: an ISO date or time (UTC unless it says), or a span back from now (12h, 7d)."""
    if not text:
        return None
    from shipyard.core.rules import parse_duration

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return now - timedelta(seconds=parse_duration(text, "--since"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _labels(paths: ProjectPaths, config: ShipyardConfig, file: str | None) -> Any:
    """The labels file as ``key``/``label`` columns: the project's data.key and data.target."""
    if not file:
        return None
    import pandas as pd

    path = Path(file)
    if not path.is_file():
        raise DataError(f"--labels {file} does not exist", where=file, fix="name a CSV or Parquet file of outcomes")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    key, target = config.data.key, config.data.target
    missing = [c for c in (key, target) if c is None or c not in frame.columns]
    if missing:
        raise DataError(
            f"--labels {file} lacks the column(s) {', '.join(repr(c) for c in missing)}",
            where=file,
            fix=f"give the row key ({key or 'set data.key'}) and the outcome ({target}) of each scored row",
        )
    return pd.DataFrame({"key": frame[key].astype(str), "label": frame[target]})


def log_location(paths: ProjectPaths, config: ShipyardConfig) -> Any:
    from shipyard.predlog import resolve_location

    log = config.monitor.log
    return resolve_location(log.path or paths.rel(paths.artifact("predictions")), log.url, paths.root)


def compare(
    paths: ProjectPaths,
    config: ShipyardConfig,
    *,
    since: str | None = None,
    until: str | None = None,
    labels: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The rollout in progress judged on its logged traffic (written to rollout_compare.json)."""
    from shipyard.core.atomic import write_json
    from shipyard.deploy.service import compare_rollout

    rollout = current_rollout(paths)
    now = now or datetime.now(UTC)
    rules = config.deploy.service.rollout.compare
    drop = config.gate.regression_tolerance if rules.max_metric_drop is None else rules.max_metric_drop
    report = compare_rollout(
        log_location(paths, config),
        production=rollout["production"],
        candidate=rollout["candidate"],
        task=str(config.project.task),
        rules=rules,
        max_metric_drop=drop,
        since=_window(since or rollout["started_at"], now),
        until=_window(until, now),
        labels=_labels(paths, config, labels),
        mode=rollout["mode"],
    )
    report["rollout"] = rollout
    target = paths.artifact("rollout_compare")
    target.parent.mkdir(parents=True, exist_ok=True)
    write_json(target, report)
    return report


def end_rollout(
    paths: ProjectPaths, config: ShipyardConfig, *, promote: bool, say: Callable[[str], None]
) -> dict[str, Any]:
    """Promote the candidate (registry first checks its gate; deployments follow) or abort (the
    service goes back to production alone); the outcome goes into the candidate's lineage."""
    from shipyard.engine import deploy as deployment
    from shipyard.registry import Registry

    rollout = current_rollout(paths)
    candidate = Registry(paths).get(_version_of(rollout["candidate"]))
    verdict = _verdict_now(paths, config)
    plain = with_rollout(config, None, None, None)
    if promote:
        version, previous, reports = deployment.promote(paths, plain, candidate.version, say=say)
        outcome = {"event": "promoted", "previous": previous.version if previous else None}
    else:
        version, reports = candidate, {}
        outcome = {"event": "aborted"}
    if "service" not in reports:
        with deployment._restorable(paths, ["service"]):
            reports.update(deployment.deploy_project(paths, plain, targets=["service"], say=say))
    _note(paths, candidate.commit, {**outcome, "version": candidate.version, "mode": rollout["mode"], **verdict})
    return {"version": version.version, "outcome": outcome["event"], "verdict": verdict, "reports": reports}


def _verdict_now(paths: ProjectPaths, config: ShipyardConfig) -> dict[str, Any]:
    """The comparison's verdict when the rollout ended (recorded beside the outcome)."""
    try:
        report = compare(paths, config)
    except DataError as exc:
        return {"verdict": None, "reasons": [exc.message]}
    return {"verdict": report["verdict"], "reasons": report["reasons"], "agreement": report["agreement"]["rate"]}


# -- the lineage record ----------------------------------------------------------------------------


def _note(paths: ProjectPaths, commit: str, event: dict[str, Any]) -> None:
    """Append one event to the commit's rollout notes (one JSON object a line)."""
    from shipyard.registry import Registry

    name, email = Registry(paths)._identity()
    line = json.dumps({"at": datetime.now(UTC).isoformat(timespec="seconds"), **event}, sort_keys=True)
    identity = ["-c", f"user.name={name}", "-c", f"user.email={email}"]
    subprocess.run(
        ["git", *identity, "notes", "--ref", NOTES_REF, "append", "-m", line, commit],
        cwd=paths.root,
        check=True,
        capture_output=True,
    )


def rollout_history(root: Path, commit: str, version: str) -> list[dict[str, Any]]:
    """Every rollout event of ``version`` recorded on its registration commit, oldest first."""
    proc = subprocess.run(
        ["git", "notes", "--ref", NOTES_REF, "show", commit], cwd=root, capture_output=True, text=True
    )
    if proc.returncode != 0:
        return []
    events = []
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a blank separator line between appended notes
        if isinstance(event, dict) and event.get("version") == version:
            events.append(event)
    return events
