"""``python -m shipyard.deploy.batch run JOB_DIR --input IN --output OUT``: run a built batch job.

Prints the run's summary as one JSON line on stdout (the progress bar goes to stderr). A user's
mistake prints one message and exits 2; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shipyard.deploy.batch", description="Run a Shipyard batch job.")
    parser.add_argument("--verbose", "-v", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="score an input with a built job (deploy/<team>/<name>/batch)")
    run.add_argument("job_dir", metavar="JOB_DIR", type=Path, help="the job folder, e.g. deploy/tabular/churn/batch")
    run.add_argument(
        "--input", "-i", help="CSV/Parquet file or folder, or <SQLAlchemy URL>?table=NAME (default: job's)"
    )
    run.add_argument("--output", "-o", help="folder (Parquet parts), file.csv, or <SQLAlchemy URL>?table=NAME")
    run.add_argument("--engine", choices=("local", "dask"), help="override the job's engine")
    run.add_argument("--scheduler", help="Dask scheduler address (implies --engine dask)")
    run.add_argument("--chunk-size", type=int, help="rows per part (must match a run being resumed)")
    run.add_argument("--max-reject-fraction", type=float, help="fail when more rows than this are rejected")
    run.add_argument("--date", help="replaces {date} in input and output (default: today, UTC)")
    run.add_argument("--no-resume", action="store_true", help="rescore everything instead of keeping finished parts")
    bar = run.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show progress")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress")
    run.add_argument("--verbose", "-v", action="store_true", help="show tracebacks on errors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "run":
        parser.print_help()
        return 2
    try:
        from shipyard.deploy.batch._run import run_batch_job

        summary = run_batch_job(
            args.job_dir,
            args.input,
            args.output,
            engine=args.engine,
            resume=not args.no_resume,
            scheduler=args.scheduler,
            chunk_size=args.chunk_size,
            max_reject_fraction=args.max_reject_fraction,
            date=args.date,
            progress=args.progress,
        )
    except KeyboardInterrupt:
        print("interrupted (finished parts are kept; run again to resume)", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns errors into exit codes
        from shipyard.core.errors import report

        return report(exc, verbose=args.verbose)
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
