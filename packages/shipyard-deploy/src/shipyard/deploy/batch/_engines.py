"""Who runs the tasks of a plan: this process (``local``) or a Dask cluster (``dask``).

Both call :func:`score_task`, which reads its chunks, scores them and commits each part through
the sink; only the task list differs. Dask does the scheduling (a ``LocalCluster`` of worker
processes on loopback, or a running scheduler's address); Shipyard only submits the tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError
from shipyard.deploy.batch._sinks import SinkSpec, open_sink, part_name, writing
from shipyard.deploy.batch._sources import SourceSpec, open_source

if TYPE_CHECKING:
    from shipyard.deploy.batch._job import Job
    from shipyard.deploy.batch._plan import Plan, Task
    from shipyard.deploy.batch._score import Scorer

__all__ = ["run_tasks", "score_task"]

PartDone = Callable[[dict[str, Any]], None]


@lru_cache(maxsize=4)
def _scorer(job: Job) -> Scorer:
    """One loaded bundle per job and process: a Dask worker loads it for its first task only."""
    from shipyard.deploy.batch._score import Scorer

    return Scorer(job)


def score_task(
    task: Task,
    *,
    job: Job,
    source: SourceSpec,
    sink: SinkSpec,
    columns: list[str],
    scored_at: datetime,
    on_part: PartDone | None = None,
) -> list[dict[str, Any]]:
    """Score the chunks of one task and commit each as a part; returns the parts' counts."""
    scorer = _scorer(job)
    reader, writer = open_source(source), open_sink(sink)
    size = job.conf.chunk_size
    results = []
    for chunk in reader.chunks(task.unit, size, task.first, task.stop, columns):
        name = part_name(task.unit.index, chunk.index)
        if name in task.skip:
            continue
        offset = None if task.unit.offset is None else task.unit.offset + chunk.index * size
        scored = scorer.score(chunk, offset, name, scored_at)
        with writing(sink):
            writer.write(name, scored, chunk.last)
        result = {"part": name, "rows": scored.rows, "rejected": scored.rejected, "last": chunk.last}
        results.append(result)
        if on_part is not None:
            on_part(result)
    scorer.flush_log()
    return results


def run_tasks(plan: Plan, on_part: PartDone) -> list[dict[str, Any]]:
    if plan.job.conf.engine == "dask":
        return _run_dask(plan, on_part)
    results: list[dict[str, Any]] = []
    for task in plan.tasks:
        results += score_task(
            task,
            job=plan.job,
            source=plan.source,
            sink=plan.sink_spec,
            columns=plan.columns,
            scored_at=plan.scored_at,
            on_part=on_part,
        )
    return results


def _run_dask(plan: Plan, on_part: PartDone) -> list[dict[str, Any]]:
    if not plan.tasks:
        return []
    with _quiet("distributed"), ExitStack() as stack:
        settings = plan.job.conf.dask
        target: Any = settings.scheduler
        if target is None:
            from distributed import LocalCluster

            # Loopback only; a random port for the scheduler's HTTP endpoints (8787 may be taken).
            target = stack.enter_context(
                LocalCluster(
                    n_workers=settings.n_workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",
                    silence_logs=logging.ERROR,
                )
            )
        client = stack.enter_context(_client(target))
        return _gather(client, plan, on_part)


def _gather(client: Any, plan: Plan, on_part: PartDone) -> list[dict[str, Any]]:
    from distributed import as_completed

    futures = client.map(
        score_task,
        plan.tasks,
        job=plan.job,
        source=plan.source,
        sink=plan.sink_spec,
        columns=plan.columns,
        scored_at=plan.scored_at,
        pure=False,
    )
    results: list[dict[str, Any]] = []
    try:
        for future in as_completed(futures):
            for result in future.result():
                results.append(result)
                on_part(result)
    except BaseException:
        client.cancel(futures)
        raise
    return results


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Dask logs every worker start and stop at INFO; a batch run shows its progress bar instead."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _client(target: Any) -> Any:
    from distributed import Client

    try:
        return Client(target, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise ConfigError(
            f"cannot reach the Dask scheduler at {target}: {exc}",
            key="deploy.batch.dask.scheduler",
            value=str(target),
            fix="start the scheduler and workers, check the address (tcp://host:8786), or set it to null "
            "for a local cluster",
        ) from exc
