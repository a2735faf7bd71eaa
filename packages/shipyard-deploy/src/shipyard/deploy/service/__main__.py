"""``python -m shipyard.deploy.service serve OUT_DIR --port N [--host H]`` (and ``build``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shipyard.core.errors import ConfigError, DataError, ShipyardError
from shipyard.deploy.service import build_service, serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shipyard.deploy.service", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="show the traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="serve a built service folder on localhost")
    run.add_argument("out_dir", type=Path)
    run.add_argument("--port", type=int, default=None, help="default: deploy.service.port of the build")
    run.add_argument("--host", default=None, help="default: deploy.service.host of the build (127.0.0.1)")
    build = commands.add_parser("build", help="build a service folder (and Bento) from a model bundle")
    build.add_argument("bundle_dir", type=Path)
    build.add_argument("out_dir", type=Path)
    build.add_argument("--project", required=True, help="team/name")
    build.add_argument("--version", default=None, help="model version (default: the weights hash, 12 digits)")
    build.add_argument("--conf", default=None, help="the deploy.service section as JSON")
    build.add_argument("--example", type=Path, default=None, help="Parquet file of test rows for request.json")
    return parser


def _serve(args: argparse.Namespace) -> int:
    from shipyard.deploy.service._app import read_spec

    settings = read_spec(args.out_dir.resolve())["settings"]
    return serve(args.out_dir, args.port or settings["port"], args.host or settings["host"])


def _conf(text: str | None) -> dict[str, object] | None:
    if not text:
        return None
    try:
        return dict(json.loads(text))
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            "--conf is not a JSON object", key="--conf", value=text, fix="e.g. --conf '{\"port\": 3001}'"
        ) from exc


def _example(path: Path | None) -> object:
    if path is None:
        return None
    if not path.is_file():
        raise DataError(f"--example {path} does not exist", where=str(path), fix="name the test split's Parquet file")
    import pandas as pd

    return pd.read_parquet(path)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args)
        conf = _conf(args.conf)
        example = _example(args.example)
        report = build_service(
            args.bundle_dir, args.out_dir, conf, project=args.project, version=args.version, example=example
        )
        print(json.dumps(report, indent=2))
        return 0
    except ShipyardError as exc:
        if args.verbose:
            raise
        print(exc.render(), file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
