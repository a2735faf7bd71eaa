"""``shipyard new TEAM/NAME --from FILE --target COLUMN``: a project from a file in one command.

Reads a CSV, Parquet file or SQLite table, proposes the task, key, column roles and split
(:func:`shipyard.data.propose.propose`), copies the file to ``data/<team>/<name>/01_raw/`` and
tracks it with DVC, and writes ``conf/project/<team>/<name>.yaml`` with a comment on each
inferred choice. An existing project, or a different file already at the data's destination, is
refused; when anything fails, what this command wrote is removed again.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    from shipyard.data.propose import Proposal

__all__ = ["NewProject", "new_project", "project_yaml"]

_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".db": "sql", ".sqlite": "sql", ".sqlite3": "sql"}
_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


@dataclass
class NewProject:
    project: str
    config: Path
    data: Path
    proposal: Proposal
    next_commands: list[str]


def _q(value: Any) -> str:
    """A YAML scalar or flow list: plain when safe, JSON-quoted otherwise."""
    if isinstance(value, list):
        return "[" + ", ".join(_q(v) for v in value) + "]"
    if isinstance(value, str) and _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value)


def _kind(path: Path, table: str | None) -> str:
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"--from {path.name}: cannot tell the format from the suffix {path.suffix or '(none)'!r}",
            key="--from",
            value=str(path),
            fix="give a .csv, .parquet or SQLite (.db, .sqlite) file",
        )
    if kind == "sql" and not table:
        raise ConfigError(
            f"--from {path.name} is a SQLite database: name the table to read",
            key="--table",
            fix="add --table NAME",
        )
    if kind != "sql" and table:
        raise ConfigError("--table is for a SQLite database only", key="--table", fix="drop --table")
    return kind


def _source(kind: str, rel: str, table: str | None) -> dict[str, Any]:
    if kind == "sql":
        return {"kind": "sql", "url": f"sqlite:///{rel}", "table": table}
    return {"kind": kind, "path": rel}


def project_yaml(project: str, source: dict[str, Any], p: Proposal, description: str) -> str:
    """The project's YAML, each inferred choice with a comment saying why."""
    lines = [
        "# @package _global_",
        f"# Written by `shipyard new` from {p.rows} rows: every inferred choice says why. Edit freely;",
        "# docs/configuration.md lists every key.",
        "project:",
        f"  task: {p.task}  # {p.task_reason}",
        f"  description: {_q(description)}",
        "",
        "data:",
        "  source: {" + ", ".join(f"{k}: {_q(v)}" for k, v in source.items()) + "}",
        f"  target: {_q(p.target)}",
    ]
    key_line = f"  key: {_q(p.key)}" if p.key else "  key: null"
    lines.append(f"{key_line}  # {p.key_reason}")
    if p.unlabeled:
        lines.append(f"  drop_unlabeled: true  # {p.unlabeled} row(s) have no label: left out and counted")
    dates = p.columns("datetime")
    time_column = p.split.get("time_column")
    features_dates = [c for c in dates if c != time_column and c not in p.sparse]
    if features_dates:
        lines.append(f"  datetime: {_q(features_dates)}  # ISO 8601 dates/times: expanded into numeric parts")
    text = [c for c in p.columns("text") if c not in p.sparse]
    if text:
        reasons = "; ".join(f"{c}: {p.roles[c].reason}" for c in text)
        lines.append(f"  text: {_q(text)}  # left out of the features ({reasons})")
    drop = [c for c, r in p.roles.items() if (r.role in ("identifier", "constant") or c in p.sparse) and c != p.key]
    if drop:
        reasons = "; ".join(f"{c}: {p.sparse.get(c) or p.roles[c].reason}" for c in drop)
        lines.append(f"  drop: {_q(drop)}  # {reasons}")
    numeric = [c for c in p.columns("numeric") if c not in p.sparse]
    categorical = [c for c in p.columns("categorical") if c not in p.sparse]
    lines.append(
        f"# features: {len(numeric)} numeric ({', '.join(numeric[:8])}{', ...' if len(numeric) > 8 else ''}), "
        f"{len(categorical)} categorical ({', '.join(categorical[:8])}{', ...' if len(categorical) > 8 else ''})"
    )
    lines += ["", "split:"]
    if p.split:
        lines.append(f"  kind: time  # {p.split_reason}")
        lines.append(f"  time_column: {_q(p.split['time_column'])}")
    else:
        lines.append(f"  kind: auto  # {p.split_reason}")
    if p.classes:
        smallest = min(p.classes.values())
        mix = ", ".join(f"{k}: {v}" for k, v in list(p.classes.items())[:10])
        lines += ["", f"# classes: {mix}"]
        if smallest / p.rows < 0.5 / len(p.classes):
            lines.append("# the smallest class is rare: the gate compares on test/balanced_accuracy (gate.imbalance)")
    lines += ["", "deploy:", "  targets: [service, batch]  # built by `make promote`", ""]
    return "\n".join(lines)


def new_project(
    root: Path,
    project: str,
    source_file: Path,
    target: str,
    *,
    table: str | None = None,
    task: str | None = None,
    time_split: bool = False,
    time_column: str | None = None,
    description: str | None = None,
) -> NewProject:
    from shipyard.core.atomic import write_text
    from shipyard.core.compose import compose
    from shipyard.core.paths import ProjectPaths, parse_project
    from shipyard.core.schema import SourceConf, SourceKind
    from shipyard.data.propose import propose
    from shipyard.data.sources import read_source
    from shipyard.engine.dvc_adapter import track_file

    _, name = parse_project(project)
    paths = ProjectPaths.of(root, project)
    if paths.config_file.exists():
        raise ConfigError(
            f"project {project} exists already ({paths.rel(paths.config_file)}): `shipyard new` never overwrites it",
            key="TEAM/NAME",
            value=project,
            fix=f"pick another name, or edit {paths.rel(paths.config_file)} by hand",
        )
    source_file = source_file.expanduser().resolve()
    if not source_file.is_file():
        raise DataError(f"--from {source_file}: no such file", key="--from", fix="give the path of an existing file")
    kind = _kind(source_file, table)
    destination = paths.layer("01_raw") / source_file.name
    rel = destination.relative_to(root).as_posix()
    in_place = destination.exists() and destination.resolve() == source_file
    if destination.exists() and not in_place:
        raise DataError(
            f"{rel} exists already and is not the file given: `shipyard new` does not overwrite it",
            key="--from",
            fix=f"remove or rename {rel}, or pass --from {rel}",
        )
    # Read and propose before anything is written: a bad file or target changes nothing.
    where = {"url": f"sqlite:///{source_file}", "table": table} if kind == "sql" else {"path": str(source_file)}
    frame = read_source(SourceConf(kind=SourceKind(kind), **where), root)
    proposal = propose(frame, target, task=task, time_split=time_split, time_column=time_column)
    text = project_yaml(project, _source(kind, rel, table), proposal, description or f"{name} from {source_file.name}")
    written: list[Path] = []
    try:
        if not in_place:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source_file, destination)
            written.append(destination)
        written.append(destination.with_name(destination.name + ".dvc"))
        track_file(root, destination)
        written.append(paths.config_file)
        write_text(paths.config_file, text)
        compose(project, root=root)  # the YAML it wrote is valid, or nothing is left behind
    except BaseException:
        for path in reversed(written):
            if path.exists() and not (in_place and path == destination):
                path.unlink()
        raise
    next_commands = [
        f"make train PROJECT={project}",
        f"make promote PROJECT={project} VERSION=v1",
        f"make serve PROJECT={project}",
        f"make report PROJECT={project}",
    ]
    return NewProject(project, paths.config_file, destination, proposal, next_commands)
