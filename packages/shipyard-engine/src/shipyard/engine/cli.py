"""The ``shipyard`` command line.

argparse and nothing heavy at import: every command imports what it needs when it runs, so
``shipyard --help`` and config errors return fast (docs/architecture.md, invariant 8). A user's mistake prints
one message and exits non-zero (2 for config and data errors); ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

_OVERRIDES_HELP = "Hydra overrides: key=value, +key=value, ~key, group=option (e.g. trainer=gpu)"


def _compose(args: argparse.Namespace) -> tuple[Any, Any]:
    """The project's paths and its validated, typed config."""
    from shipyard.core.compose_cache import cached_compose
    from shipyard.core.paths import ProjectPaths, find_root

    root = find_root()
    return ProjectPaths.of(root, args.project), cached_compose(args.project, args.overrides, root=root)


def cmd_config(args: argparse.Namespace) -> int:
    import yaml
    from shipyard.core.compose import to_dict

    config = to_dict(_compose(args)[1])
    print(json.dumps(config, indent=2) if args.json else yaml.safe_dump(config, sort_keys=False), end="")
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from pathlib import Path

    from shipyard.core.paths import find_root
    from shipyard.engine.new import new_project

    root = find_root()
    made = new_project(
        root,
        args.project,
        Path(args.source),
        args.target,
        table=args.table,
        task=args.task,
        time_split=args.time_split,
        time_column=args.time_column,
        description=args.description,
    )
    p = made.proposal
    print(f"wrote {made.config.relative_to(root)} and tracked {made.data.relative_to(root)} with DVC")
    print(f"  task: {p.task} ({p.task_reason})")
    print(f"  key: {p.key or 'row_id (generated)'}; split: {p.split.get('kind', 'auto')} ({p.split_reason})")
    for role in ("numeric", "categorical", "datetime", "text", "identifier", "constant"):
        names = p.columns(role)
        if names:
            print(f"  {role}: {', '.join(names[:10])}{', ...' if len(names) > 10 else ''}")
    print("next:")
    pointer = made.data.with_name(made.data.name + ".dvc")
    print(
        f"  git add {made.config.relative_to(root)} {pointer.relative_to(root)} "
        f"{made.data.with_name('.gitignore').relative_to(root)} && git commit -m 'New project {made.project}'"
    )
    for line in made.next_commands:
        print(f"  {line}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from shipyard.engine.compiler import compile_project

    paths, cfg = _compose(args)
    changed = compile_project(cfg, paths)
    print(f"{'wrote' if changed else 'unchanged'}: {paths.rel(paths.dvc_yaml)}, {paths.rel(paths.params_yaml)}")
    return 0


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def _check_accelerator(cfg: Any) -> None:
    """A GPU trainer on a machine without CUDA fails now, naming the key, not after data prep."""
    if cfg.trainer.accelerator not in ("gpu", "cuda"):
        return
    import torch
    from shipyard.core.errors import ConfigError

    if not torch.cuda.is_available():
        raise ConfigError(
            "trainer.accelerator is gpu but this machine has no CUDA GPU",
            key="trainer.accelerator",
            value=str(cfg.trainer.accelerator),
            fix="use trainer=cpu (or trainer=ddp for several CPU processes) here",
        )


def _print_gate(gate: dict[str, Any]) -> None:
    if gate.get("skipped"):
        _say("  gate skipped (gate.enabled=false)")
    for check in gate.get("checks", []):
        mark = "pass" if check["passed"] else "FAIL"
        _say(f"  gate {mark}: {check['name']}: {check['observed']} (expected {check['expected']})")


def _print_metrics(paths: Any) -> None:
    metrics = json.loads(paths.artifact("metrics").read_text())
    shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/")}
    print(f"{paths.project}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))


def cmd_train(args: argparse.Namespace) -> int:
    paths, cfg = _compose(args)
    code, _version = run_training(
        paths, cfg, force=args.force, register=not args.no_register, subprocess=args.subprocess, wait=args.wait
    )
    return code


def run_training(
    paths: Any,
    cfg: Any,
    *,
    force: bool = False,
    register: bool = True,
    subprocess: bool = False,
    wait: bool = False,
    trigger: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    """What `make train` does: compile, `dvc repro`, register; returns (exit code, the version
    registered or None). ``trigger``: the monitoring firing that asked for this training,
    recorded in the new version's lineage."""
    from shipyard.engine.compiler import check_params_yaml, compile_project
    from shipyard.engine.fastpath import compute_stamp, read_stamp, write_stamp
    from shipyard.engine.release import write_reference_contract
    from shipyard.engine.repro import ensure_raw_data
    from shipyard.engine.stage import remember_params
    from shipyard.registry._registry import project_lock

    _check_accelerator(cfg)
    # An edited params.yaml stops the run before anything is written (the lock file included).
    check_params_yaml(cfg, paths)
    version = None
    with project_lock(paths, wait=wait, say=_say):
        compile_project(cfg, paths)
        remember_params(paths, cfg)
        write_reference_contract(paths)
        note = ensure_raw_data(cfg, paths)
        if note:
            _say(f"data: {note}")
        previous = read_stamp(paths)
        fast = (
            not force
            and trigger is None
            and previous is not None
            and previous.get("registered") == register
            and previous.get("stamp") == compute_stamp(paths)
        )
        if fast and previous is not None:
            _say("up to date: every stage (nothing changed since the last run)")
            _print_metrics(paths)
            _print_gate(previous["gate"])
            print(previous["summary"])
            return (0 if previous["gate"].get("passed") else 3), None
        from shipyard.engine.repro import reproduce

        result = reproduce(paths, cfg, force=force, in_process=not subprocess)
        if result.skipped:
            _say(f"up to date: {', '.join(result.skipped)}")
        _print_metrics(paths)
        gate = json.loads(paths.artifact("gate_report").read_text())
        verdict = "passed" if gate.get("passed") else "FAILED"
        if not register:
            summary = later = f"gate {verdict} (not registered: --no-register)"
        else:
            from shipyard.engine.release import register_run

            version, created, card = register_run(paths, cfg, trigger=trigger)
            gate = card["gate"]
            verdict = "passed" if gate.get("passed") else "FAILED"
            stage = f" ({version.stages[0]})" if version.stages else ""
            later = f"already registered as {paths.project} {version.version}; gate {verdict}"
            summary = f"registered {paths.project} {version.version}{stage}; gate {verdict}" if created else later
        _print_gate(gate)
        print(summary)
        write_stamp(paths, {"gate": gate, "summary": later, "registered": register})
    if not gate.get("passed"):
        _say("the model did not pass its gate: it cannot be promoted (see the checks above)")
        return 3, version
    return 0, version


def cmd_monitor(args: argparse.Namespace) -> int:
    from shipyard.engine.monitoring import monitor_project, parse_moment
    from shipyard.monitor import exit_code, table

    paths, cfg = _compose(args)
    if args.schedule:
        from shipyard.engine.monitoring import write_schedule

        for path in write_schedule(paths, cfg):
            print(f"wrote {paths.rel(path)}")
        return 0
    result = monitor_project(
        paths,
        cfg,
        since=parse_moment(args.since, "--since"),
        until=parse_moment(args.until, "--until"),
        input=args.input,
        labels=args.labels,
        now=parse_moment(args.now, "--now"),
        act=not args.no_action,
        say=_say,
    )
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(table(result))
        print(f"report: {result['reports']['html']} (data: {result['reports']['json']})")
    return exit_code(result["status"])


def cmd_batch(args: argparse.Namespace) -> int:
    from shipyard.core.errors import ConfigError
    from shipyard.deploy.batch import run_batch_job
    from shipyard.engine.deploy import deploy_dir

    paths = _registry_paths(args)
    job = deploy_dir(paths, "batch")
    if not (job / "job.yaml").is_file():
        raise ConfigError(
            f"{paths.project} has no batch job yet",
            where=paths.rel(job),
            fix=f"build it: make deploy PROJECT={paths.project} TARGET=batch",
        )
    summary = run_batch_job(
        job, args.input, args.output, engine=args.engine, scheduler=args.scheduler, resume=not args.no_resume
    )
    print(json.dumps(summary))
    return 0


def cmd_affected(args: argparse.Namespace) -> int:
    from shipyard.core.paths import find_root
    from shipyard.engine.affected import affected_projects

    found = affected_projects(find_root(), args.base)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for item in found:
        why = "; ".join(f"{kind}: {', '.join(paths[:3])}" for kind, paths in item["because"].items())
        print(f"{item['project']}  ({why})")
    if not found:
        print(f"no project is affected by the changes since {args.base}")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from shipyard.engine.compiler import compile_project
    from shipyard.engine.repro import ensure_raw_data, reproduce
    from shipyard.search import run_search

    paths, cfg = _compose(args)
    # A search reads the split and the fitted preprocessing, so it compiles the project and
    # brings those stages up to date first; then it puts the compiled files back as they were,
    # so params.yaml keeps what `make train` wrote (the search's own keys live in its report).
    saved = {p: p.read_text() for p in (paths.dvc_yaml, paths.params_yaml) if p.is_file()}
    try:
        compile_project(cfg, paths)
        from shipyard.engine.release import write_reference_contract

        write_reference_contract(paths)
        note = ensure_raw_data(cfg, paths)
        if note:
            _say(f"data: {note}")
        reproduce(paths, cfg, target="fit_preprocessing")
        run_search(
            args.project,
            args.overrides,
            root=paths.root,
            workers=args.workers,
            n_trials=args.n_trials,
            timeout=args.timeout,
            final=not args.no_final,
        )
    finally:
        _restore(saved)
    _track_search(paths)
    return 0


def _restore(saved: dict[Any, str]) -> None:
    from shipyard.core.atomic import write_text

    for path, text in saved.items():
        if not path.is_file() or path.read_text() != text:
            write_text(path, text)


def _track_search(paths: Any) -> None:
    """The search's reports and plots are DVC-tracked outputs (the study storage stays out)."""
    import contextlib
    import io
    import logging

    from shipyard.engine.dvc_adapter import open_repo

    folder = paths.artifact("search")
    outputs = [p for p in sorted(folder.glob("*")) if p.is_file() and p.suffix in (".json", ".csv", ".html", ".png")]
    plots = folder / "plots"
    if plots.is_dir():
        outputs.append(plots)
    if not outputs:
        return
    logging.getLogger("dvc").setLevel(logging.WARNING)
    with contextlib.redirect_stdout(io.StringIO()), open_repo(paths.root) as repo:
        repo.add([str(p) for p in outputs])


def cmd_dashboard(args: argparse.Namespace) -> int:
    from shipyard.core.paths import find_root
    from shipyard.search import dashboard

    dashboard(args.project, args.overrides, root=find_root(), host=args.host, port=args.port)
    return 0


def _registry_paths(args: argparse.Namespace) -> Any:
    from shipyard.core.paths import ProjectPaths, find_root

    return ProjectPaths.of(find_root(), args.project)


def _say_built(paths: Any, reports: dict[str, dict[str, Any]]) -> None:
    from shipyard.engine.deploy import deploy_dir, summary

    for target, report in reports.items():
        _say(summary(target, deploy_dir(paths, target), report) or f"  {target}: built")


def cmd_promote(args: argparse.Namespace) -> int:
    from shipyard.engine.deploy import promote

    paths, cfg = _compose(args)
    version, previous, reports = promote(paths, cfg, args.version, args.stage, say=_say)
    _say_built(paths, reports)
    before = f" (was {previous.version}, now archived)" if previous else ""
    print(f"{paths.project} {version.version} is now {args.stage}{before}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from shipyard.core.errors import ConfigError

    if args.version and "=" in args.version:  # `rollout P --abort key=value`: an override, not a version
        args.overrides, args.version = [args.version, *args.overrides], None
    paths, cfg = _compose(args)
    ends = [flag for flag in ("promote", "abort") if getattr(args, flag)]
    if len(ends) > 1 or (ends and (args.version or args.mode)) or (not ends and not (args.version and args.mode)):
        raise ConfigError(
            "say what to do: start a rollout, or end the one in progress",
            fix=f"shipyard rollout {paths.project} VERSION --mode shadow|canary [--share 0.1], "
            f"or shipyard rollout {paths.project} --promote | --abort",
        )
    if ends:
        from shipyard.engine.rollout import end_rollout

        result = end_rollout(paths, cfg, promote=args.promote, say=_say)
        _say_built(paths, result["reports"])
        verdict = result["verdict"].get("verdict") or "not judged"
        done = "is now production" if args.promote else "rollout aborted; production serves alone"
        print(f"{paths.project} {result['version']}: {done} (compare's verdict then: {verdict})")
        if cfg.deploy.service.rollout.mode is not None:
            _say(f"note: remove deploy.service.rollout from {paths.rel(paths.config_file)}: the rollout has ended")
        return 0
    from shipyard.engine.rollout import start_rollout

    report = start_rollout(paths, cfg, args.version, args.mode, args.share, say=_say)
    plan = report["rollout"]
    share = f", {plan['share']:.0%} of keys to the candidate" if plan["mode"] == "canary" else ""
    print(f"{paths.project}: {plan['mode']} rollout of {plan['candidate']}{share}: {report['out_dir']}")
    print(f"  serve it: make serve PROJECT={paths.project}; judge it: shipyard compare {paths.project}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from shipyard.deploy.service._compare import EXIT_CODES
    from shipyard.engine.rollout import compare

    paths, cfg = _compose(args)
    report = compare(paths, cfg, since=args.since, until=args.until, labels=args.labels)
    if args.json:
        print(json.dumps(report, indent=2))
        return EXIT_CODES[report["verdict"]]
    _print_compare(report)
    return EXIT_CODES[report["verdict"]]


def _print_compare(report: dict[str, Any]) -> None:
    rollout, rows, agreement = report["rollout"], report["rows"], report["agreement"]
    print(f"{rollout['mode']} rollout: production {rollout['production']}, candidate {rollout['candidate']}")
    print(f"  {'':<22} {'production':>14} {'candidate':>14}")
    print(f"  {'rows':<22} {rows['production']:>14} {rows['candidate']:>14}")
    for name in ("p50", "p95"):
        cells = [report["latency_ms"][r].get(name) for r in ("production", "candidate")]
        print(f"  {'latency ' + name + ' (ms/batch)':<22} " + " ".join(_cell(c) for c in cells))
    for role in ("production", "candidate"):
        dist = report["predictions"][role]
        classes = ", ".join(f"{k}: {v:.3f}" for k, v in dist.get("classes", {}).items())
        score = dist.get("score") or dist.get("prediction") or {}
        spread = ", ".join(f"{k} {v:.4g}" for k, v in score.items())
        print(f"  {role:<11} {classes}{'; ' if classes and spread else ''}{spread}")
    if agreement["rate"] is not None:
        rate, n, coverage = agreement["rate"], agreement["rows"], agreement["coverage"]
        print(f"  agreement: {rate:.4f} on {n} rows (coverage {coverage:.3f})")
    live = report["live"]
    if live:
        cells = [live[r]["value"] for r in ("production", "candidate")]
        print(f"  {'live ' + live['metric']:<22} " + " ".join(_cell(c) for c in cells))
    print(f"verdict: {report['verdict'].upper()}")
    for reason in report["reasons"]:
        print(f"  - {reason}")


def _cell(value: float | None) -> str:
    return f"{value:>14.4f}" if value is not None else f"{'-':>14}"


def cmd_rollback(args: argparse.Namespace) -> int:
    from shipyard.engine.deploy import rollback

    paths, cfg = _compose(args)
    restored, replaced, reports = rollback(paths, cfg, say=_say)
    _say_built(paths, reports)
    print(f"{paths.project}: production is {restored.version} again ({replaced.version} archived)")
    return 0


def _materialize(args: argparse.Namespace) -> int:
    from pathlib import Path

    from shipyard.core.errors import ConfigError
    from shipyard.engine.features import materialize_targets

    if not args.view or "/" not in args.view:
        raise ConfigError("features materialize needs a project", fix="run `shipyard features materialize TEAM/NAME`")
    paths, cfg = _compose(argparse.Namespace(project=args.view, overrides=[]))
    for target, report in materialize_targets(paths, cfg).items():
        store = Path(report["store"])
        where = paths.rel(store) if store.is_absolute() else report["store"]  # a file, or a redacted URL
        print(f"{target}: {report['rows']} feature rows into {where}")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from shipyard.engine.deploy import deploy_dir, deploy_project, summary

    paths, cfg = _compose(args)
    targets = [t for t in (args.target or "").split(",") if t] or None
    reports = deploy_project(paths, cfg, targets=targets, version=args.version, say=_say)
    for target, report in reports.items():
        out = deploy_dir(paths, target)
        print(summary(target, out, report) or f"{target}: {paths.rel(out)}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from shipyard.engine.release import status_of

    paths, cfg = _compose(args)
    status = status_of(paths, cfg)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    stale = " STALE (older than max_age " + str(status["max_age"]) + ")" if status["stale"] else ""
    print(f"{status['project']} ({status['task']}): production {status['production'] or 'none'}{stale}")
    for v in status["versions"]:
        metrics = ", ".join(f"{k}={m:.4f}" for k, m in v["metrics"].items())
        gate = "gate passed" if v["gate_passed"] else "gate FAILED"
        print(f"  {v['version']:<8} {v['stage'] or '-':<10} {v['created_at']}  {gate}  {metrics}")
    for target, info in status["deployments"].items():
        holds = info["version"] or "unknown version"
        behind = "" if info["is_production"] else f"  NOT the production version ({status['production'] or 'none'})"
        print(f"  deployed {target}: {info['path']} ({holds}){behind}")
    return 0


def cmd_lineage(args: argparse.Namespace) -> int:
    from shipyard.engine.release import lineage_of

    paths = _registry_paths(args)
    card = lineage_of(paths, args.version)
    if args.json:
        print(json.dumps(card, indent=2))
        return 0
    git = card.get("git", {})
    print(f"{paths.project} {card['version']} ({card.get('stage') or 'no stage'})")
    print(f"  created:     {card.get('created_at')}")
    print(f"  commit:      {git.get('commit')}{' (tree was dirty)' if git.get('dirty') else ''}")
    print(f"  registered:  {card.get('registered_commit')}")
    print(f"  model:       {card['model']['target']} weights sha256 {card['model']['weights_sha256'][:16]}…")
    for path, digest in card.get("data", {}).items():
        print(f"  data:        {path} md5 {digest}")
    for path, digest in card.get("code", {}).items():
        print(f"  code:        {path} md5 {digest}")
    for view, hashes in card.get("features", {}).items():
        listed = ", ".join(f"{name} {digest[:12]}" for name, digest in hashes.items())
        print(f"  features:    {view}: {listed}")
    env = card.get("environment", {})
    print(f"  params:      sha256 {card.get('params_sha256', '')[:16]}…  seed {card.get('seed')}")
    print(
        f"  environment: {env.get('lock_file')} sha256 {str(env.get('lock_sha256'))[:16]}…  python {env.get('python')}"
    )
    hw = card.get("hardware", {})
    print(f"  hardware:    {hw.get('accelerator')} x{hw.get('devices')} {hw.get('cuda') or hw.get('cpu')}")
    training = card.get("training", {})
    print(f"  training:    {training.get('train_seconds')} s, {training.get('epochs')} epochs")
    print(
        "  metrics:     "
        + ", ".join(f"{k}={v:.4f}" for k, v in card.get("metrics", {}).items() if k.startswith("test/"))
    )
    print(f"  gate:        {'passed' if card.get('gate', {}).get('passed') else 'FAILED'}")
    for event in card.get("rollouts", []):
        detail = ", ".join(
            f"{k} {event[k]}"
            for k in ("mode", "share", "production", "previous", "verdict")
            if event.get(k) is not None
        )
        print(f"  rollout:     {event['at']} {event['event']} ({detail})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from shipyard.core.atomic import write_text
    from shipyard.core.compose import compose
    from shipyard.core.errors import DataError
    from shipyard.engine.html_report import collect, render
    from shipyard.engine.release import lineage_of, status_of
    from shipyard.registry import Registry

    paths = _registry_paths(args)
    cfg = compose(args.project, root=paths.root)
    artifacts = collect(paths)
    if artifacts["metrics"] is None:
        raise DataError(
            f"{paths.project} has no finished run in this workspace",
            key="TEAM/NAME",
            fix=f"make train PROJECT={paths.project} first",
        )
    versions = Registry(paths).versions()
    version = args.version or (versions[-1].version if versions else None)
    card = lineage_of(paths, version) if version else None
    note = None
    if card is not None:
        bundle = json.loads((paths.artifact("model_bundle") / "bundle.json").read_text())
        if bundle.get("weights_sha256") != card.get("model", {}).get("weights_sha256"):
            # Another run is in the workspace: show the version's own metrics and gate.
            artifacts.update(metrics=card.get("metrics"), gate_report=card.get("gate"), confusion=None)
            note = (
                f"the workspace holds another run than {version}: metrics and gate are {version}'s; the data, split "
                "and learning curve sections are the workspace run's"
            )
    status = status_of(paths, cfg)
    deployments = {}
    for target, info in status["deployments"].items():
        parity = paths.deploy_dir(target) / "parity_report.json"
        deployments[target] = {**info, "parity": json.loads(parity.read_text()) if parity.is_file() else None}
    run = {"project": paths.project, "model": cfg.model.target, "seed": cfg.seed}
    page = render(
        paths.project, str(cfg.project.task), artifacts, run=run, card=card, deployments=deployments, note=note
    )
    out = paths.root / "reports" / paths.team / paths.name / f"{version or 'workspace'}.html"
    write_text(out, page)
    print(paths.rel(out))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from shipyard.core.compose import compose, list_projects
    from shipyard.core.paths import ProjectPaths, find_root
    from shipyard.engine.release import status_of

    root = find_root()
    rows = []
    for name in list_projects(root):
        paths = ProjectPaths.of(root, name)
        status = status_of(paths, compose(name, root=root))
        age = f"{status['age_days']:.1f}d" if status["age_days"] is not None else "-"
        flag = "STALE" if status["stale"] else ""
        rows.append((name, paths.team, status["production"] or "-", age, status["max_age"] or "-", flag))
    if args.json:
        keys = ("project", "team", "production", "age", "max_age", "stale")
        print(json.dumps([dict(zip(keys, r, strict=True)) for r in rows], indent=2))
        return 0
    print(f"{'project':<32} {'team':<12} {'production':<11} {'age':<8} {'max_age':<8}")
    for row in rows:
        print(f"{row[0]:<32} {row[1]:<12} {row[2]:<11} {row[3]:<8} {row[4]:<8} {row[5]}")
    return 0


def cmd_projects(args: argparse.Namespace) -> int:
    from shipyard.core.compose import list_projects
    from shipyard.core.paths import find_root

    for name in list_projects(find_root()):
        print(name)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    """``features list``: every view and version; ``features show VIEW[@VERSION]``: one view,
    its features with their hashes, the projects that use it and the production models on it."""
    from shipyard.core.errors import ConfigError
    from shipyard.core.paths import find_root
    from shipyard.engine.features import describe_view, list_views

    root = find_root()
    if args.action == "materialize":
        return _materialize(args)
    if args.action == "list":
        rows = list_views(root)
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        if not rows:
            print("no feature views: declare them under conf/features/<team>/*.yaml (see README)")
        for row in rows:
            ttl = f", ttl {row['ttl']}" if row["ttl"] else ""
            head = f"{row['view']}@{row['version']}  {row['owner']}"
            print(f"{head}  entity {row['entity']}, source {row['source']}{ttl}")
            print(f"    {row['description']}")
            print(f"    features: {', '.join(row['features'])}")
        return 0
    if not args.view:
        raise ConfigError("features show needs a view", fix="run `shipyard features show VIEW[@VERSION]`")
    view = describe_view(root, args.view)
    if args.json:
        print(json.dumps(view, indent=2, default=str))
        return 0
    print(f"{view['view']}@{view['version']}  (versions: {', '.join(map(str, view['versions']))})  {view['file']}")
    print(f"  owner:       {view['owner']} (team {view['team']})")
    print(f"  description: {view['description']}")
    print(f"  entity:      {view['entity']} (join key {view['join_key']})")
    print(f"  source:      {view['source'].get('path') or view['source'].get('url')} (event time {view['event_time']})")
    print(f"  ttl:         {view['ttl_seconds']} s" if view["ttl_seconds"] else "  ttl:         none")
    for name, spec in view["features"].items():
        what = {k: v for k, v in spec.items() if k not in ("hash", "window_seconds")}
        print(f"  {name}: {what}  hash {spec['hash'][:12]}  {view['feature_descriptions'].get(name, '')}")
    print(f"  used by:     {', '.join(view['used_by']) or 'no project'}")
    print(f"  production:  {', '.join(view['production_models']) or 'no production model'}")
    return 0


def cmd_stage(args: argparse.Namespace) -> int:
    from shipyard.core.paths import find_root
    from shipyard.engine.stage import run_stage

    run_stage(find_root(), args.project, args.stage)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipyard",
        description="Shipyard: declarative, config-driven MLOps. Projects live in conf/project/<team>/<name>.yaml.",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def with_project(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("project", metavar="TEAM/NAME", help="project, e.g. tabular/breast_cancer")
        p.add_argument("overrides", nargs="*", metavar="OVERRIDE", help=_OVERRIDES_HELP)
        return p

    p = with_project("config", "print the resolved config of a project")
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.set_defaults(func=cmd_config)
    p = sub.add_parser(
        "new",
        help="a new project from a CSV, Parquet file or SQLite table (infers task, key, roles, split)",
        description="Write conf/project/TEAM/NAME.yaml from a data file, with a comment on each inferred "
        "choice, and track the file with DVC. Refuses an existing project.",
    )
    p.add_argument("project", metavar="TEAM/NAME", help="the new project, e.g. ads/clicks")
    p.add_argument("--from", dest="source", required=True, metavar="FILE", help=".csv, .parquet or SQLite .db")
    p.add_argument("--target", required=True, metavar="COLUMN", help="the label column")
    p.add_argument("--table", help="the table of a SQLite database")
    p.add_argument("--task", choices=("binary", "multiclass", "regression"), help="instead of the inferred task")
    p.add_argument("--time-split", action="store_true", help="split by time on the first date/time column")
    p.add_argument("--time-column", metavar="COLUMN", help="split by time on this column")
    p.add_argument("--description", help="one line on what the model is for")
    p.set_defaults(func=cmd_new, overrides=[])
    with_project("compile", "write pipelines/<team>/<name>/dvc.yaml and params.yaml").set_defaults(func=cmd_compile)
    p = with_project("train", "compose, validate, compile and `dvc repro` a project")
    p.add_argument("--force", action="store_true", help="rerun every stage (dvc repro --force)")
    p.add_argument(
        "--subprocess", action="store_true", help="run each stage in its own process, as plain dvc repro does"
    )
    p.add_argument("--no-register", action="store_true", help="do not register the trained model as a version")
    p.add_argument("--wait", action="store_true", help="wait for another training of the project instead of stopping")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("promote", help="put a version that passed its gate into production (or another stage)")
    p.add_argument("project", metavar="TEAM/NAME")
    p.add_argument("version", metavar="VERSION", help="e.g. v3 or v3.0.0")
    p.add_argument("--stage", default="production", choices=("candidate", "staging", "production", "archived"))
    p.set_defaults(func=cmd_promote, overrides=[])
    p = sub.add_parser(
        "rollout",
        help="serve a candidate beside production (shadow or canary), then --promote or --abort it",
        description="Start: shipyard rollout TEAM/NAME VERSION --mode shadow|canary [--share 0.1]. "
        "End: shipyard rollout TEAM/NAME --promote | --abort.",
    )
    p.add_argument("project", metavar="TEAM/NAME")
    p.add_argument(
        "version", metavar="VERSION", nargs="?", help="the candidate, e.g. v3 (it must have passed its gate)"
    )
    p.add_argument("--mode", choices=("shadow", "canary"), help="shadow: scored off the answer path; canary: answers")
    p.add_argument("--share", type=float, default=None, help="canary: share of keys the candidate answers (0.1)")
    p.add_argument("--promote", action="store_true", help="end the rollout: the candidate becomes production")
    p.add_argument("--abort", action="store_true", help="end the rollout: production serves alone again")
    p.set_defaults(func=cmd_rollout, overrides=[])
    p = with_project("compare", "judge the rollout in progress on its logged traffic (exit 0 pass, 4 fail, 5 too few)")
    p.add_argument(
        "--since", help="rows logged since: ISO time (UTC) or a span back (12h, 7d); default: the rollout's start"
    )
    p.add_argument("--until", help="rows logged before: ISO time (UTC) or a span back from now")
    p.add_argument("--labels", help="CSV or Parquet file of outcomes: the row key and the target per scored row")
    p.add_argument("--json", action="store_true", help="the whole report as JSON")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("rollback", help="put the previous production version back; deployments follow")
    p.add_argument("project", metavar="TEAM/NAME")
    p.set_defaults(func=cmd_rollback, overrides=[])
    p = with_project("deploy", "build the deployment targets (deploy.targets) of the production version")
    p.add_argument("--target", help="comma-separated targets to build instead: service, batch, edge")
    p.add_argument("--version", help="deploy this version instead of production (it must have passed its gate)")
    p.set_defaults(func=cmd_deploy)
    p = sub.add_parser("batch", help="run a project's built batch job over an input (file, folder or SQL table)")
    p.add_argument("project", metavar="TEAM/NAME")
    p.add_argument("--input", help="CSV/Parquet file or folder, or <SQLAlchemy URL>?table=NAME (default: the job's)")
    p.add_argument("--output", help="Parquet folder, .csv file or <SQLAlchemy URL>?table=NAME (default: the job's)")
    p.add_argument("--engine", choices=("local", "dask"), help="override the job's engine")
    p.add_argument("--scheduler", help="a running Dask scheduler's address, tcp://host:8786 (implies --engine dask)")
    p.add_argument("--no-resume", action="store_true", help="score everything again instead of resuming")
    p.set_defaults(func=cmd_batch)
    p = with_project(
        "monitor",
        "judge a window of the prediction log against production's reference profile; apply the trigger "
        "(exit 0 healthy, 4 drift, 5 stale, 2 a config or data mistake)",
    )
    p.add_argument("--since", help="window start, ISO date/time, UTC (default: until - monitor.schedule.window)")
    p.add_argument("--until", help="window end, ISO date/time, UTC (default: now)")
    p.add_argument("--input", help="a Parquet or CSV file of inputs to judge instead of the log")
    p.add_argument("--labels", help="CSV/Parquet of the row key (data.key) and the label (data.target), joined by key")
    p.add_argument("--now", help=argparse.SUPPRESS)  # a fixed clock: replays and tests
    p.add_argument("--no-action", action="store_true", help="report what the trigger decides, never retrain")
    p.add_argument("--json", action="store_true", help="print monitor.json instead of the table")
    p.add_argument(
        "--schedule", action="store_true", help="write the cron line and Airflow DAG under deploy/<team>/<name>/monitor"
    )
    p.set_defaults(func=cmd_monitor)
    p = with_project("status", "versions, stages, metrics, gate results, lineage and deployments of a project")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("lineage", help="how a model version was made")
    p.add_argument("project", metavar="TEAM/NAME")
    p.add_argument("version", metavar="VERSION")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lineage)
    p = sub.add_parser(
        "report",
        help="one self-contained HTML page: data, split, curve, confusion, metrics, gate, lineage, deployments",
    )
    p.add_argument("project", metavar="TEAM/NAME")
    p.add_argument("version", metavar="VERSION", nargs="?", help="a registered version (default: the newest)")
    p.set_defaults(func=cmd_report, overrides=[])
    p = with_project("search", "run the project's Optuna search (search=<name> picks conf/search/<name>.yaml)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes on this host")
    p.add_argument("--n-trials", type=int, default=None, help="override search.n_trials")
    p.add_argument("--timeout", type=float, default=None, help="seconds; override search.timeout")
    p.add_argument("--no-final", action="store_true", help="skip retraining the selected trial and its test evaluation")
    p.set_defaults(func=cmd_search)
    p = with_project("dashboard", "serve optuna-dashboard on the project's study storage")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=cmd_dashboard)
    p = sub.add_parser("affected", help="projects whose config, data or code changed since a git ref")
    p.add_argument("--base", required=True, help="git ref to compare with, e.g. origin/main")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_affected)
    p = sub.add_parser("list", help="every project: team, production version, age, staleness")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    sub.add_parser("projects", help="list the projects under conf/project/").set_defaults(func=cmd_projects)
    p = sub.add_parser(
        "features",
        help="shared feature views under conf/features/: list, show VIEW[@VERSION], materialize TEAM/NAME "
        "(refresh the online store of a project's deployed service and batch job)",
    )
    p.add_argument("action", choices=["list", "show", "materialize"])
    p.add_argument("view", nargs="?", metavar="VIEW[@VERSION] | TEAM/NAME")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_features)
    p = sub.add_parser("stage", help="run one compiled stage (what dvc.yaml calls)")
    p.add_argument("project", metavar="TEAM/NAME")
    p.add_argument("stage")
    p.set_defaults(func=cmd_stage)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Shipyard's own warnings as one line each (Python's default adds the source line)."""
    print(f"warning: {message}", file=sys.stderr)


# Commands that load torch, Lightning, DVC and Kedro. Python tears those down module by module
# and object by object at exit (half a million objects after a training), which takes longer than
# most stages; when such a command is the process's own, the process ends as soon as it is done.
_QUICK_EXIT = ("train", "stage")


def main(argv: Sequence[str] | None = None) -> int:
    import warnings

    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        code = _main(argv)
    if argv is None and sys.argv[1:2] and sys.argv[1] in _QUICK_EXIT:
        _quick_exit(code)
    return code


def _quick_exit(code: int) -> None:
    """End the process now with ``code``, skipping the interpreter's teardown of its modules.

    Everything that exiting must still do is done first: the ``atexit`` handlers (logging's
    flush, multiprocessing's clean-up) and flushing stdout and stderr. Every file Shipyard writes
    is complete and renamed into place before the command returns (shipyard.core.atomic), and
    DVC's repository was closed. A process with a thread or child process still running
    (one a library left behind) exits the ordinary way, which waits for them."""
    import atexit
    import threading

    import psutil

    if any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        return
    if psutil.Process().children():
        return
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can reach it
            pass
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    # Overrides may come before or after options (`train P --force a=1 b=2`): argparse stops
    # the positional list at the first option, so collect the rest here.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if not hasattr(args, "overrides") or any(e.startswith("-") and "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    extra = os.environ.pop("SHIPYARD_OVERRIDES", "")
    if extra and hasattr(args, "overrides"):
        # `make train ARGS="..."` passes overrides here, so ${...} survives make and the shell.
        try:
            args.overrides = [*args.overrides, *shlex.split(extra)]
        except ValueError as exc:
            print(f"config error: cannot split ARGS ({exc})\n  fix: balance the quotes in ARGS", file=sys.stderr)
            return 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`shipyard list | head`): not an error; keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        from shipyard.core.errors import report

        return report(exc, verbose=args.verbose)
