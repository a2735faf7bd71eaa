"""Build a batch job folder: ``deploy/<team>/<name>/batch/``.

::

    job.yaml          the spec: model version, key, chunk size, engine, reject policy, defaults
    bundle/           a copy of the model bundle (the job scores with exactly this model)
    pipeline.py       the job's Kedro pipeline (plan -> score -> finish)
    schedule.cron     one crontab line
    airflow_dag.py    an Airflow DAG (when deploy.batch.schedule.airflow)
    README.md         how to run it

Building imports nothing heavy (no torch): the bundle is checked by its files and weights hash.
The folder is written atomically, and only when its content changes.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.atomic import atomic_dir
from shipyard.core.compose import section
from shipyard.core.errors import ConfigError, DataError
from shipyard.core.hashing import file_sha256
from shipyard.core.paths import find_root, parse_project
from shipyard.core.schema import BatchConf, SourceConf, SourceKind
from shipyard.deploy._schedule import Dag, airflow_dag, cron_text
from shipyard.deploy.batch._job import BUNDLE_DIR, CANDIDATE_DIR, JOB_FILE, Job
from shipyard.deploy.batch.pipeline import NODES

__all__ = ["build_batch_job"]

BUNDLE_FILES = ("bundle.json", "weights.safetensors")
VENV_PYTHON = ".venv/bin/python"  # the repository's environment (`make setup`)
DEFAULT_KEY = "row_id"  # what shipyard.data numbers rows as when a project names no key


def build_batch_job(
    bundle_dir: Path,
    out_dir: Path,
    conf: BatchConf | Mapping[str, Any] | None,
    *,
    project: str,
    version: str,
    data_key: str | None = None,
    data_source: SourceConf | Mapping[str, Any] | None = None,
    feature_store: Path | None = None,
    candidate: tuple[Path, str] | None = None,
    prediction_log: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the batch job of ``project`` for the bundle in ``bundle_dir`` to ``out_dir``.

    ``conf`` is the project's ``deploy.batch`` section (typed, or plain data checked against its
    schema); ``data_key`` and ``data_source`` are the project's ``data.key`` and ``data.source``
    (the job's key column and default input); ``prediction_log`` where and how the job records
    what it scores (:func:`shipyard.deploy._predlog.log_spec`; None: nothing). ``version`` names
    the model in every output row (a registry version, or the weights hash). ``feature_store``: a
    folder holding the online store of a model with shared features (``features.json``,
    ``features.db``), copied into the job; its input rows then carry the entity key(s) and event
    time instead of those features. ``candidate`` (its bundle folder and version) is scored beside
    the model on every row (shadow scoring): ``candidate_prediction``, ``candidate_score`` and
    ``candidate_model_version`` columns. Returns what was built: the folder, its files, the cron
    line and whether anything changed.
    """
    from shipyard.features import SPEC_FILE, STORE_FILE, lookup_columns, open_lookup, store_columns

    team, name = parse_project(project)
    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    meta = _bundle_meta(bundle_dir)
    settings = conf if isinstance(conf, BatchConf) else section(BatchConf, conf, "deploy.batch")
    source = (
        data_source if isinstance(data_source, SourceConf | None) else section(SourceConf, data_source, "data.source")
    )
    if not str(version).strip():
        raise ConfigError(
            "a batch job needs a model version", key="version", fix="pass the registry version or weights hash"
        )
    key = settings.key or data_key or DEFAULT_KEY
    generated = settings.key is None and not data_key
    settings = _with_defaults(settings, key, source, team, name)
    shadow = _candidate(meta, candidate)
    job = Job(
        dir=out_dir.resolve(),
        project=project,
        version=str(version),
        weights_sha256=str(meta["weights_sha256"]),
        task=str(meta.get("task") or meta["preprocessor"]["task"]),
        key_generated=generated,
        features=tuple(_input_columns(meta, store_columns, lookup_columns)),
        conf=settings,
        candidate=shadow,
        prediction_log=dict(prediction_log) if prediction_log else None,
    )
    files = _render(job, out_dir)
    store: list[Path] = []
    if store_columns(meta.get("features")):
        if feature_store is None:
            raise DataError(
                "this model looks shared features up, and the batch job has no online store",
                where=str(bundle_dir),
                fix="build the job with `make deploy` (it materialises features.db beside the model)",
            )
        open_lookup(feature_store, meta["features"])  # fails here, not at run time, without its files
        store = [feature_store / n for n in (SPEC_FILE, STORE_FILE) if (feature_store / n).is_file()]
    bundles = {BUNDLE_DIR: bundle_dir, **({CANDIDATE_DIR: Path(candidate[0])} if candidate else {})}
    changed = bool(store) or _changed(out_dir, files, bundles)
    if changed:
        with atomic_dir(out_dir) as tmp:
            for folder, source_dir in bundles.items():
                (tmp / folder).mkdir()
                for file in BUNDLE_FILES:
                    (tmp / folder / file).write_bytes((source_dir / file).read_bytes())
            for rel, text in files.items():
                (tmp / rel).write_text(text, encoding="utf-8")
            for file in store:
                (tmp / file.name).write_bytes(file.read_bytes())
    return {
        "job_dir": str(out_dir),
        "files": sorted([*files, *(f"{folder}/{f}" for folder in bundles for f in BUNDLE_FILES)]),
        "version": job.version,
        "cron": files["schedule.cron"].strip().splitlines()[-1],
        "changed": changed,
    }


def _input_columns(meta: Mapping[str, Any], stored: Any, inputs: Any) -> list[str]:
    """The columns an input row carries: the model's features, but the entity key(s) and event
    time in place of the features the online store fills."""
    filled = set(stored(meta.get("features")))
    features = [f for f in meta["preprocessor"]["features"] if f not in filled]
    return list(dict.fromkeys([*features, *inputs(meta.get("features"))]))


def _bundle_meta(bundle_dir: Path) -> dict[str, Any]:
    # The bundle loader's own check (files, format, weights against their hash), without torch.
    from shipyard.train.bundle import verify_bundle

    return verify_bundle(bundle_dir)


def _with_defaults(settings: BatchConf, key: str, source: SourceConf | None, team: str, name: str) -> BatchConf:
    import dataclasses

    output = settings.output or f"data/{team}/{name}/07_model_output/batch/{{date}}"
    return dataclasses.replace(settings, key=key, input=settings.input or _source_input(source), output=output)


def _source_input(source: SourceConf | None) -> str | None:
    """The project's own data source as the default input, where a batch job can read it."""
    if source is None:
        return None
    if source.kind in (SourceKind.csv, SourceKind.parquet) and source.path:
        return source.path
    if source.kind == SourceKind.sql and source.url and source.table:
        return f"{source.url}?table={source.table}"
    return None


def _candidate(meta: Mapping[str, Any], candidate: tuple[Path, str] | None) -> tuple[str, str] | None:
    """The shadow candidate's (version, weights hash), its bundle checked like the model's."""
    if candidate is None:
        return None
    from shipyard.core.errors import DataError

    theirs = _bundle_meta(Path(candidate[0]))
    task, their_task = meta["preprocessor"]["task"], theirs["preprocessor"]["task"]
    if their_task != task:
        raise DataError(
            f"the shadow candidate {candidate[1]} is a {their_task} model and the job's a {task} model",
            where=str(candidate[0]),
            fix="name a version of the same project in deploy.batch.shadow",
        )
    return str(candidate[1]), str(theirs["weights_sha256"])


def _changed(out_dir: Path, files: dict[str, str], bundles: dict[str, Path]) -> bool:
    for rel, text in files.items():
        path = out_dir / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            return True
    for folder, bundle_dir in bundles.items():
        for file in BUNDLE_FILES:
            path = out_dir / folder / file
            if not path.is_file() or file_sha256(path) != file_sha256(bundle_dir / file):
                return True
    expected = {*files, *bundles}
    return any(p.name not in expected for p in out_dir.iterdir())


# -- the files ---------------------------------------------------------------------------------


def _render(job: Job, out_dir: Path) -> dict[str, str]:
    import yaml

    place = _place(out_dir)
    files = {
        JOB_FILE: "# Batch job spec, written by `shipyard deploy` (rebuild instead of editing).\n"
        + yaml.safe_dump(job.spec(), sort_keys=False, default_flow_style=None, width=120),
        "pipeline.py": _pipeline_py(job),
        "schedule.cron": _cron(job, place),
        "README.md": _readme(job, place),
    }
    if job.conf.schedule.airflow:
        files["airflow_dag.py"] = _airflow_dag(job, place)
    return files


@dataclass(frozen=True)
class _Place:
    """Where a job sits, in paths that hold on any machine: the job folder relative to the
    repository (``base``; the job folder itself when it is in none), how many folders lie
    between the two, and the project's interpreter relative to the repository (None outside one)."""

    job: str
    depth: int
    python: str | None


def _place(out_dir: Path) -> _Place:
    out_dir = out_dir.resolve()
    root = _root(out_dir)
    if root is None or not out_dir.is_relative_to(root):
        return _Place(".", 0, None)
    job = out_dir.relative_to(root)
    # The interpreter running this build when it is in the repository, unresolved: a venv's
    # bin/python is a symlink to the base interpreter, which has none of the project's packages.
    # Elsewhere: the repository's own environment, where `make setup` puts it.
    python = Path(sys.executable).absolute()
    rel = python.relative_to(root).as_posix() if python.is_relative_to(root) else VENV_PYTHON
    return _Place(job.as_posix(), len(job.parts), rel)


def _root(out_dir: Path) -> Path | None:
    try:
        return Path(find_root(out_dir.parent)).resolve()
    except ConfigError:
        return None


def _cron(job: Job, place: _Place) -> str:
    python = f'"${{SHIPYARD_PYTHON:-{place.python}}}"' if place.python else '"${SHIPYARD_PYTHON:-python3}"'
    run = f"{python} -m shipyard.deploy.batch run {shlex.quote(place.job)} --no-progress"
    base = "the repository's checkout" if place.depth else "this job folder"
    default = f"{place.python} there" if place.python else "python3 on PATH"
    comment = (
        f"{job.project} batch job: add these lines to a crontab (`crontab -e`), SHIPYARD_ROOT set to\n"
        f"{base} on that machine. It scores the job's default input into its default\n"
        "output ({date} = the day it runs, UTC); a run that was killed resumes, and a finished one is\n"
        f"left as it is. The job runs with SHIPYARD_PYTHON, else {default}."
    )
    return cron_text(comment, job.conf.schedule.cron, run, "repository" if place.depth else "job")


def _pipeline_py(job: Job) -> str:
    functions = sorted(f for f, _, _, _ in NODES)
    lines = [
        f'"""Kedro pipeline of the {job.project} batch job, written by `shipyard deploy` (rebuild, do not edit).',
        "",
        "`python -m shipyard.deploy.batch run <this folder> --input ... --output ...` runs it with its",
        "catalog: job (job.yaml), run (input, output, resume) and in-memory plan, part_results, summary.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from kedro.pipeline import Pipeline, node",
        f"from shipyard.deploy.batch.nodes import {', '.join(functions)}",
        "",
        "",
        "def create_pipeline(**kwargs) -> Pipeline:",
        "    return Pipeline(",
        "        [",
    ]
    for function, inputs, output, name in NODES:
        lines.append(f"            node({function}, {list(inputs)!r}, {output!r}, name={name!r}),".replace("'", '"'))
    lines += ["        ]", "    )", ""]
    return "\n".join(lines)


def _airflow_dag(job: Job, place: _Place) -> str:
    team, name = job.project.split("/")
    base = "the repository" if place.depth else "the job folder"
    python = f"{place.python!r}  # the project's interpreter, relative to {base}" if place.python else "None"
    default = f"``{place.python}`` in {base}" if place.python else "``python3`` on the task's PATH"
    doc = f"""Airflow DAG of the {job.project} batch job, written by `shipyard deploy` (rebuild, do not edit).

The shape of kedro-airflow's template (Airflow 3, ``airflow.sdk``), with one task: the job's
Kedro nodes hand each other an in-memory plan, and the scoring node's parallelism comes from
Dask (``engine: dask``), so one Airflow task per node would add hand-offs, not speed. A retried
task resumes where the failed try stopped; a finished run is left as it is.

Airflow runs in its own environment; the task runs the job in the project's, found where the task
runs: {base} is ``$SHIPYARD_ROOT``, else the folder this file sits in, {place.depth} level(s) up
(symlinks followed, so the file may be linked into Airflow's dags folder); the interpreter is
``$SHIPYARD_PYTHON``, else {default}. Without Airflow, ``python airflow_dag.py YYYY-MM-DD``
prints the command the task runs for that date.
"""
    constants = (
        f"JOB = {place.job!r}  # the job folder, relative to {base}\n"
        f"DEPTH = {place.depth}  # folders between {base} and this file's folder\n"
        f"PYTHON = {python}\n"
        'ARGS = ["shipyard.deploy.batch", "run", JOB, "--no-progress", "--date"]'
    )
    return airflow_dag(
        Dag(
            doc=doc,
            constants=constants,
            arg="ds",
            macro="ds",
            command_doc="The task's shell command, for the run's logical date ``ds``.",
            dag_id=f"shipyard_batch_{team}_{name}".replace("-", "_"),
            cron=job.conf.schedule.cron,
            retries=2,
            tags=("shipyard", "batch", team),
            task="score",
            task_doc="Score the day's input ({{ ds }} is the run's logical date) into its output.",
            usage="YYYY-MM-DD",
        )
    )


def _readme(job: Job, place: _Place) -> str:
    job_path = place.job
    conf = job.conf
    return f"""# Batch job: {job.project}

Written by `shipyard deploy` for model version `{job.version}` (rebuild it, do not edit it).

```bash
make batch PROJECT={job.project} INPUT=path/or/url OUTPUT=path/or/url
python -m shipyard.deploy.batch run {job_path} --input IN --output OUT [--engine dask] [--no-resume]
```

- Input: a CSV or Parquet file, a folder of them, or `<SQLAlchemy URL>?table=NAME`
  (default: `{conf.input}`).
- Output: a folder of Parquet parts, a `.csv` file, or `<SQLAlchemy URL>?table=NAME`
  (default: `{conf.output}`; `{{date}}` is the run's date).
- Rows are read {conf.chunk_size} at a time; each part is committed on its own, so a killed run
  resumes and a finished run is left as it is.
- Rows that break the feature schema go to the rejects file; more than {conf.rejects.max_fraction:.2%}
  of them fails the job.
- Row key: `{job.key}`{" (numbered by position when the input lacks it)" if job.key_generated else ""}.
- Schedules: `schedule.cron` (crontab lines){", `airflow_dag.py` (Airflow DAG)" if conf.schedule.airflow else ""}. They
  hold no path of the machine that built them: each runs the job with the repository's environment
  (`$SHIPYARD_PYTHON`, else `{place.python or "python3"}`) from the checkout `$SHIPYARD_ROOT` names
  (the DAG finds it from its own location when the variable is unset).
"""
