"""``python -m shipyard.search``: run a search, serve its dashboard, or be a worker.

The ``shipyard`` CLI and ``make search`` / ``make dashboard`` call the same functions. A mistake
prints one message and exits 2 (config, data) or 1 (search); ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

__all__ = ["main"]

_OVERRIDES_HELP = "Hydra overrides, including search=<name> and search.* keys (e.g. search.n_trials=50)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shipyard.search", description="Optuna searches declared in conf/search/."
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run or continue a project's search")
    run.add_argument("project", metavar="TEAM/NAME")
    run.add_argument("overrides", nargs="*", metavar="OVERRIDE", help=_OVERRIDES_HELP)
    run.add_argument("--workers", type=int, default=1, help="parallel worker processes on this host (default 1)")
    run.add_argument("--n-trials", type=int, default=None, help="override search.n_trials")
    run.add_argument("--timeout", type=float, default=None, help="override search.timeout (seconds)")
    run.add_argument("--no-final", action="store_true", help="skip retraining the chosen trial and its test evaluation")
    dash = sub.add_parser("dashboard", help="serve optuna-dashboard on a project's study (loopback)")
    dash.add_argument("project", metavar="TEAM/NAME")
    dash.add_argument("overrides", nargs="*", metavar="OVERRIDE", help=_OVERRIDES_HELP)
    dash.add_argument("--host", default="127.0.0.1")
    dash.add_argument("--port", type=int, default=8080)
    worker = sub.add_parser("worker", help=argparse.SUPPRESS)
    worker.add_argument("payload")
    return parser


def _run(args: argparse.Namespace) -> int:
    from shipyard.core.paths import find_root
    from shipyard.search._api import run_search

    run_search(
        args.project,
        args.overrides,
        root=find_root(),
        workers=args.workers,
        n_trials=args.n_trials,
        timeout=args.timeout,
        final=not args.no_final,
    )
    return 0


def _dashboard(args: argparse.Namespace) -> int:
    from shipyard.core.paths import find_root
    from shipyard.search._dashboard import dashboard

    dashboard(args.project, args.overrides, root=find_root(), host=args.host, port=args.port)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    extra = os.environ.pop("SHIPYARD_OVERRIDES", "")
    if extra and hasattr(args, "overrides"):
        # `make search ARGS="..."` arrives here unsplit, so ${...} survives make and the shell.
        args.overrides = [*args.overrides, *shlex.split(extra)]
    if args.command is None:
        _parser().print_help()
        return 2
    try:
        if args.command == "worker":
            from shipyard.search._runner import worker_main

            return worker_main(args.payload)
        return _run(args) if args.command == "run" else _dashboard(args)
    except KeyboardInterrupt:
        if args.command == "run":
            print("interrupted: rerun the same command to continue the study", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        from shipyard.core.errors import report

        return report(exc, verbose=args.verbose)
