"""The ``shipyard`` command line.

argparse and nothing heavy at import: every command imports what it needs when it runs, so
``shipyard --help`` and config errors return fast (DESIGN invariant 8). A user's mistake prints
one message and exits non-zero (2 for config and data errors); ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import traceback
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

_OVERRIDES_HELP = "Hydra overrides: key=value, +key=value, ~key, group=option (e.g. trainer=gpu)"


def _compose(args: argparse.Namespace) -> tuple[Any, Any, dict[str, Any]]:
    from shipyard.core.compose import compose, to_dict
    from shipyard.core.paths import ProjectPaths, find_root

    root = find_root()
    cfg = compose(args.project, args.overrides, root=root)
    return ProjectPaths.of(root, args.project), cfg, to_dict(cfg)


def cmd_config(args: argparse.Namespace) -> int:
    from omegaconf import OmegaConf

    _, cfg, config = _compose(args)
    print(json.dumps(config, indent=2) if args.json else OmegaConf.to_yaml(cfg), end="" if not args.json else "\n")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from shipyard.engine.compiler import compile_project

    paths, _, config = _compose(args)
    changed = compile_project(config, paths)
    print(f"{'wrote' if changed else 'unchanged'}: {paths.rel(paths.dvc_yaml)}, {paths.rel(paths.params_yaml)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from shipyard.engine.compiler import compile_project
    from shipyard.engine.repro import ensure_raw_data, reproduce

    paths, _, config = _compose(args)
    note = ensure_raw_data(config, paths)
    if note:
        print(f"data: {note}", file=sys.stderr)
    compile_project(config, paths)
    result = reproduce(paths, config, force=args.force, in_process=not args.subprocess)
    if result.skipped:
        print(f"up to date: {', '.join(result.skipped)}", file=sys.stderr)
    metrics_file = paths.layer("08_reporting") / "metrics.json"
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith("test/")}
        print(f"{paths.project}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    return 0


def cmd_projects(args: argparse.Namespace) -> int:
    from shipyard.core.compose import list_projects
    from shipyard.core.paths import find_root

    for name in list_projects(find_root()):
        print(name)
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
    with_project("compile", "write pipelines/<team>/<name>/dvc.yaml and params.yaml").set_defaults(func=cmd_compile)
    p = with_project("train", "compose, validate, compile and `dvc repro` a project")
    p.add_argument("--force", action="store_true", help="rerun every stage (dvc repro --force)")
    p.add_argument(
        "--subprocess", action="store_true", help="run each stage in its own process, as plain dvc repro does"
    )
    p.set_defaults(func=cmd_train)
    sub.add_parser("projects", help="list the projects under conf/project/").set_defaults(func=cmd_projects)
    p = sub.add_parser("stage", help="run one compiled stage (what dvc.yaml calls)")
    p.add_argument("project", metavar="TEAM/NAME")
    p.add_argument("stage")
    p.set_defaults(func=cmd_stage)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
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
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        from shipyard.core.errors import ShipyardError

        if args.verbose:
            traceback.print_exc()
        if isinstance(exc, ShipyardError):
            print(exc.render(), file=sys.stderr)
            return exc.exit_code
        print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if not args.verbose:
            print("  rerun with --verbose for the traceback", file=sys.stderr)
        return 1
