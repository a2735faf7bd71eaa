"""`shipyard monitor`: one window of a project's prediction log (or an input file) against the
production version's reference profile, the trigger, and a retraining when the rule says so.

The statistics, reports and trigger rule are :mod:`shipyard.monitor`'s; this module finds the
version, the log and the window, keeps the trigger's state, and acts: ``alert`` reports only;
``retrain`` refreshes the raw data (``monitor.retrain.refresh``, then a new DVC version of the
raw file), runs the same pipeline, gate and registration as `make train` with the firing in the
new version's lineage, and promotes only with ``auto_promote`` and a passing gate (which
includes the no-regression check against production).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError, DataError
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import ShipyardConfig, TriggerAction

__all__ = ["monitor_project", "parse_moment", "refresh_raw_data", "retrain", "write_schedule"]


def parse_moment(text: str | None, option: str) -> datetime | None:
    """An ISO date or time (UTC unless it says otherwise), or None."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ConfigError(
            f"{option} is not a date or time",
            key=option,
            value=text,
            fix="write ISO 8601, e.g. 2026-11-30 or 2026-11-30T06:00",
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _reference(paths: ProjectPaths) -> Any:
    from shipyard.registry import Registry

    registry = Registry(paths)
    production = registry.production()
    if production is not None and production.card.get("reference_profile"):
        return production
    for version in reversed(registry.versions()):
        if version.card.get("reference_profile"):
            return version
    raise DataError(
        f"no version of {paths.project} carries a reference profile to compare with",
        fix=f"train it with this Shipyard (make train PROJECT={paths.project}) and promote a version",
    )


def _log_location(paths: ProjectPaths, cfg: ShipyardConfig) -> Any:
    from shipyard.predlog import resolve_location

    log = cfg.monitor.log
    return resolve_location(log.path or paths.rel(paths.artifact("predictions")), log.url, paths.root)


def _age(version: Any, now: datetime) -> timedelta:
    created = datetime.fromisoformat(version.card.get("created_at", version.created_at))
    return now - (created if created.tzinfo else created.replace(tzinfo=UTC))


def _batches(
    paths: ProjectPaths, cfg: ShipyardConfig, profile: dict[str, Any], args: dict[str, Any]
) -> tuple[Any, str, str | None]:
    from shipyard.monitor import input_batches
    from shipyard.predlog import KEY, PREDICTION, SCORE, read_batches

    features = list(profile["features"])
    if args.get("input"):
        path = Path(args["input"])
        path = path if path.is_absolute() else Path.cwd() / path
        return input_batches(path, features), str(args["input"]), None
    location = _log_location(paths, cfg)
    columns = [*features, PREDICTION, KEY, SCORE]
    batches = read_batches(location, columns, since=args.get("since"), until=args.get("until"))
    return batches, location.display, PREDICTION


def _report_folder(paths: ProjectPaths, since: datetime | None, until: datetime | None, source: str) -> Path:
    def stamp(moment: datetime | None) -> str:
        return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%S") if moment else "open"

    name = f"{stamp(since)}_{stamp(until)}" if since or until else "input_" + Path(source).stem
    return paths.artifact("monitor_reports") / name


def monitor_project(
    paths: ProjectPaths,
    cfg: ShipyardConfig,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    input: str | None = None,
    labels: str | None = None,
    now: datetime | None = None,
    act: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Judge one window and apply the trigger; the result (``monitor.json``'s content)."""
    from shipyard.monitor import TriggerState, decide, monitor_window, read_labels, write_reports

    now = now or datetime.now(UTC)
    version = _reference(paths)
    profile = version.card["reference_profile"]
    if input is None:
        until = until or now
        if since is None:
            from shipyard.core.rules import parse_duration

            since = until - timedelta(seconds=parse_duration(cfg.monitor.schedule.window, "monitor.schedule.window"))
    elif since or until:
        raise ConfigError(
            "--input takes a whole file: --since and --until choose rows of the prediction log",
            key="--input",
            fix="drop --since/--until, or drop --input to read the log",
        )
    batches, source, prediction = _batches(paths, cfg, profile, {"input": input, "since": since, "until": until})
    joined = read_labels(Path(labels), cfg.data.key or "row_id", cfg.data.target) if labels else None
    trigger = cfg.monitor.trigger
    max_age = trigger.max_age or cfg.project.max_age
    from shipyard.core.rules import parse_duration

    age = _age(version, now) if version.stages and version.stages[0] == "production" else None
    stale = bool(max_age and age is not None and age.total_seconds() > parse_duration(max_age, "max_age"))
    result = monitor_window(
        batches,
        profile,
        cfg.monitor.drift,
        project=paths.project,
        version=version.version,
        since=since,
        until=until,
        source=source,
        prediction_column=prediction,
        labels=joined,
        stale=stale,
        metric_drop=(trigger.metric, trigger.max_drop) if trigger.metric and trigger.max_drop else None,
    )
    result["judged_at"] = now.isoformat()
    state_file = paths.artifact("trigger_state")
    state = TriggerState.load(state_file)
    decision = decide(state, result, trigger, now=now, production_age=age, max_age=cfg.project.max_age)
    result["trigger"] = {
        "fired": decision.fired,
        "reasons": decision.reasons,
        "cooling_until": decision.cooling_until,
        "action": str(trigger.action),
        "summary": decision.summary,
        "consecutive": decision.consecutive,
    }
    folder = _report_folder(paths, since, until, source)
    result["reports"] = {"json": paths.rel(folder / "monitor.json"), "html": paths.rel(folder / "report.html")}
    if act:  # --no-action only reports: the trigger neither counts the window nor fires
        state.save(state_file)
    if decision.fired and act and trigger.action == TriggerAction.retrain:
        firing = {"at": now.isoformat(), "reasons": decision.reasons, "report": result["reports"]["json"]}
        # The firing is saved before the retraining: a retraining that fails still starts the cooldown.
        result["retrain"] = retrain(paths, cfg, firing, say=say)
        state.firings[-1]["retrain"] = result["retrain"]
        state.save(state_file)
    write_reports(result, profile, folder)
    return result


def refresh_raw_data(paths: ProjectPaths, cfg: ShipyardConfig, say: Callable[[str], None]) -> dict[str, Any]:
    """Run ``monitor.retrain.refresh`` and record the raw file as a new DVC version."""
    command = cfg.monitor.retrain.refresh
    if command:
        say(f"retrain: refreshing the data: {command}")
        proc = subprocess.run(command, shell=True, cwd=paths.root, capture_output=True, text=True)
        if proc.returncode != 0:
            raise DataError(
                f"the data refresh command failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}",
                key="monitor.retrain.refresh",
                fix="fix the command (it runs from the repository root), or set monitor.retrain.refresh: null",
            )
    source = cfg.data.source
    if not source.path or not (paths.root / source.path).exists():
        return {"refresh": command, "raw": None}
    import contextlib
    import io

    from shipyard.core.hashing import file_sha256
    from shipyard.engine.dvc_adapter import open_repo

    raw = paths.root / source.path
    pointer = raw.with_name(raw.name + ".dvc")
    before = pointer.read_text() if pointer.is_file() else None
    with contextlib.redirect_stdout(io.StringIO()), open_repo(paths.root) as repo:
        repo.add([str(raw)])
    changed = before != pointer.read_text()
    say(f"retrain: {source.path} {'is a new DVC version' if changed else 'is unchanged'}")
    return {
        "refresh": command,
        "raw": source.path,
        "new_version": changed,
        "sha256": file_sha256(raw) if raw.is_file() else None,
    }


def retrain(
    paths: ProjectPaths, cfg: ShipyardConfig, firing: dict[str, Any], *, say: Callable[[str], None]
) -> dict[str, Any]:
    """Refresh, train, gate and register as `make train` does; promote only when the rule allows."""
    import contextlib

    from shipyard.engine.cli import run_training

    data = refresh_raw_data(paths, cfg, say)
    firing = dict(firing, data=data)
    # The training's own lines go to stderr: stdout stays the monitoring table (or its JSON).
    with contextlib.redirect_stdout(sys.stderr):
        code, version = run_training(paths, cfg, trigger=firing)
    outcome: dict[str, Any] = {"data": data, "exit_code": code, "version": version.version if version else None}
    if version is None:
        outcome["promoted"] = False
        return outcome
    passed = bool(version.gate_passed)
    outcome["gate_passed"] = passed
    if cfg.monitor.trigger.auto_promote and passed and code == 0:
        from shipyard.engine.deploy import promote

        promote(paths, cfg, version.version, "production", say=say)
        outcome["promoted"] = True
        say(f"retrain: {paths.project} {version.version} passed its gate and is now production (auto_promote)")
    else:
        outcome["promoted"] = False
        why = "auto_promote is off" if not cfg.monitor.trigger.auto_promote else "its gate did not pass"
        say(f"retrain: {paths.project} {version.version} left as a candidate ({why})")
    return outcome


# -- the schedule ----------------------------------------------------------------------------------

_VENV_PYTHON = ".venv/bin/python"


def _python(root: Path) -> str:
    """The project's interpreter relative to the repository: this one when it lives there (not
    resolved: a venv's bin/python links to a base interpreter without the project's packages)."""
    python = Path(sys.executable).absolute()
    return python.relative_to(root).as_posix() if python.is_relative_to(root) else _VENV_PYTHON


def _cron_text(project: str, cron: str, python: str) -> str:
    from shipyard.deploy._schedule import cron_text

    run = f'"${{SHIPYARD_PYTHON:-{python}}}" -m shipyard.engine monitor {project}'
    comment = (
        f"{project} monitoring: add these lines to a crontab (`crontab -e`), SHIPYARD_ROOT set to the\n"
        "repository's checkout on that machine. Each run judges the prediction log of the last\n"
        "monitor.schedule.window against production's reference and applies monitor.trigger.\n"
        "Exit status: 0 healthy, 4 drift, 5 production stale, 2 a config or data mistake.\n"
        f"It runs with SHIPYARD_PYTHON, else {python} there."
    )
    return cron_text(comment, cron, run, "repository")


def _dag_text(project: str, cron: str, python: str, depth: int) -> str:
    from shipyard.deploy._schedule import Dag, airflow_dag

    team, name = project.split("/")
    doc = f"""Airflow DAG of the {project} monitoring run, written by `shipyard monitor --schedule`.

One task: `shipyard monitor {project}` over the window that ends at the run's data interval end.
Exit status 4 (drift) or 5 (stale) fails the task, so Airflow's alerting sees it; the trigger's
action (alert or retrain) is the project's `monitor.trigger`. The repository is ``$SHIPYARD_ROOT``,
else the folder {depth} level(s) above this file's (symlinks followed); the interpreter is
``$SHIPYARD_PYTHON``, else ``{python}`` there. Without Airflow, ``python airflow_dag.py ISO-TIME``
prints the command the task runs.
"""
    constants = (
        f"PROJECT = {project!r}\n"
        f"DEPTH = {depth}  # folders between the repository and this file's folder\n"
        f"PYTHON = {python!r}  # the project's interpreter, relative to the repository\n"
        'ARGS = ["shipyard.engine", "monitor", PROJECT, "--until"]'
    )
    return airflow_dag(
        Dag(
            doc=doc,
            constants=constants,
            arg="until",
            macro="data_interval_end",
            command_doc="The task's shell command: judge the window that ends at ``until``.",
            dag_id=f"shipyard_monitor_{team}_{name}".replace("-", "_"),
            cron=cron,
            retries=0,
            tags=("shipyard", "monitor", team),
            task="monitor",
            task_doc="Judge the window ending at the run's data interval end.",
            usage="ISO-TIME",
        )
    )


def write_schedule(paths: ProjectPaths, cfg: ShipyardConfig) -> list[Path]:
    """``deploy/<team>/<name>/monitor/schedule.cron`` (and ``airflow_dag.py``): paths that hold on
    any machine (the repository from ``$SHIPYARD_ROOT``, its own interpreter)."""
    from shipyard.core.atomic import write_text

    folder = paths.deploy_dir("monitor")
    schedule = cfg.monitor.schedule
    python = _python(paths.root)
    written = [folder / "schedule.cron"]
    write_text(written[0], _cron_text(paths.project, schedule.cron.strip(), python))
    if schedule.airflow:
        depth = len(folder.relative_to(paths.root).parts)
        written.append(folder / "airflow_dag.py")
        write_text(written[1], _dag_text(paths.project, schedule.cron.strip(), python, depth))
    return written
