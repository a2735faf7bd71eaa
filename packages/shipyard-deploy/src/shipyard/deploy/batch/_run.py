"""Run a built batch job: resolve the run's settings, then run the job's Kedro pipeline."""

from __future__ import annotations

import dataclasses
import logging
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.core.compose import dump, section
from shipyard.core.errors import ConfigError
from shipyard.core.schema import BatchConf
from shipyard.deploy.batch._job import Job, load_job

__all__ = ["run_batch_job"]


def run_batch_job(
    job_dir: Path,
    input: str | None = None,
    output: str | None = None,
    *,
    engine: str | None = None,
    resume: bool = True,
    scheduler: str | None = None,
    chunk_size: int | None = None,
    max_reject_fraction: float | None = None,
    date: str | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Score ``input`` with the job in ``job_dir`` into ``output``; returns the run's summary.

    ``input``/``output`` default to the job spec's; ``{date}`` in either becomes ``date``
    (default: today, UTC). ``resume`` keeps the parts an earlier run of the same job wrote (a
    finished job is then left as it is); ``resume=False`` rescores everything into ``output``.
    ``progress``: True/False forces the progress bar on/off; None shows it on a terminal.
    """
    job = _override(load_job(Path(job_dir)), engine, scheduler, chunk_size, max_reject_fraction)
    # The weights are checked before the output is touched: a damaged bundle leaves nothing behind.
    from shipyard.deploy._bundles import rebuild_fix
    from shipyard.train.bundle import verify_bundle

    verify_bundle(job.bundle, fix=rebuild_fix(job.project, "batch"))
    day = date or datetime.now(UTC).date().isoformat()
    run = {
        "input": _location(input or job.conf.input, "input", day),
        "output": _location(output or job.conf.output, "output", day),
        "resume": resume,
        "progress": progress,
    }
    with ExitStack() as resources:
        run["resources"] = resources
        return _run_pipeline(job, run)


def _override(
    job: Job, engine: str | None, scheduler: str | None, chunk_size: int | None, max_reject_fraction: float | None
) -> Job:
    conf = dump(job.conf)
    if engine is not None:
        conf["engine"] = engine
    if scheduler is not None:
        conf["dask"]["scheduler"] = scheduler
        conf["engine"] = "dask"
    if chunk_size is not None:
        conf["chunk_size"] = chunk_size
    if max_reject_fraction is not None:
        conf["rejects"]["max_fraction"] = max_reject_fraction
    return dataclasses.replace(job, conf=section(BatchConf, conf, "run"))


def _location(value: str | None, role: str, day: str) -> str:
    if not value:
        raise ConfigError(
            f"no {role} given",
            key=role,
            fix=f"pass --{role} (make batch {role.upper()}=...) or set deploy.batch.{role} in the project config",
        )
    return value.replace("{date}", day)


def _run_pipeline(job: Job, run: dict[str, Any]) -> dict[str, Any]:
    from shipyard.core.env import env_default

    # Kedro configures logging when its runner is first imported: make that quiet, without
    # leaving the setting in the environment of a caller that runs the job in-process.
    with env_default("KEDRO_LOGGING_CONFIG", str(Path(__file__).with_name("logging.yml"))):
        from kedro.runner import SequentialRunner
    from kedro.io import DataCatalog, MemoryDataset
    from shipyard.deploy.batch.pipeline import create_pipeline

    logging.getLogger("kedro").setLevel(logging.CRITICAL)  # the caller reports a failed node once
    catalog = DataCatalog(
        datasets={
            "job": MemoryDataset(job, copy_mode="assign"),
            "run": MemoryDataset(run, copy_mode="assign"),
            "plan": MemoryDataset(copy_mode="assign"),
            "part_results": MemoryDataset(copy_mode="assign"),
            "summary": MemoryDataset(copy_mode="assign"),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return dict(catalog["summary"].load())
