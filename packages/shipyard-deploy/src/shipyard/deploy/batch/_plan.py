"""Planning a run: check the input against the model, open the output, and list the work left.

Work is a list of :class:`Task` (a unit of the input and a range of its chunks). The local
engine runs one task per unit, in order; Dask runs ``parts_per_task`` chunks per task, in
parallel. Both name the parts the same way, so either engine can resume the other's run.
"""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shipyard.core.errors import DataError
from shipyard.deploy.batch._job import Job
from shipyard.deploy.batch._sinks import Sink, SinkSpec, open_sink, parse_output, part_name, writing
from shipyard.deploy.batch._sources import Source, SourceSpec, Unit, open_source, parse_input

__all__ = ["FINGERPRINT_VERSION", "Plan", "Task", "make_plan"]

FINGERPRINT_VERSION = 1


@dataclass(frozen=True)
class Task:
    unit: Unit
    first: int  # first chunk
    stop: int | None  # chunk after the last one; None = to the unit's end
    skip: frozenset[str] = frozenset()  # parts in the range that are already written


@dataclass
class Plan:
    job: Job
    source: SourceSpec
    sink_spec: SinkSpec
    sink: Sink = field(repr=False)
    columns: list[str]
    scored_at: datetime
    tasks: list[Task]
    done: dict[str, dict[str, Any]]  # parts written by earlier runs
    total_rows: int | None
    finished: dict[str, Any] | None  # the stored summary, when the job had already finished
    progress: bool | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def rows_done(self) -> int:
        return sum(int(p["rows"]) for p in self.done.values())


def make_plan(job: Job, run: dict[str, Any], resources: ExitStack) -> Plan:
    """``run``: input, output, resume, progress (already resolved by the caller)."""
    spec = parse_input(run["input"])
    source = open_source(spec)
    units = source.units()
    columns = _columns(job, source, units)
    # The output belongs to this project's batch job: it replaces only what that job wrote.
    sink_spec = parse_output(run["output"], owner=job.project)
    sink = open_sink(sink_spec)
    resources.callback(sink.close)
    fingerprint = _fingerprint(job, source)
    with writing(sink_spec):
        manifest = sink.begin(fingerprint, bool(run.get("resume", True)), datetime.now(UTC).isoformat())
        finished = sink.finished()
        done = sink.done() if finished is None else {}
    scored_at = datetime.fromisoformat(manifest["scored_at"])
    tasks = [] if finished else _tasks(job, units, done)
    known = [u.rows for u in units]
    return Plan(
        job=job,
        source=spec,
        sink_spec=sink_spec,
        sink=sink,
        columns=columns,
        scored_at=scored_at,
        tasks=tasks,
        done=done,
        total_rows=None if None in known else sum(int(r or 0) for r in known),
        finished=finished,
        progress=run.get("progress"),
    )


def _columns(job: Job, source: Source, units: list[Unit]) -> list[str]:
    """The input columns to read, key first; a missing column fails the job here, before any
    part is scored."""
    have = source.columns()
    source.require(list(job.features), "feature")
    source.require(list(job.conf.passthrough), "passthrough")
    if job.key not in have:
        if not job.key_generated:
            source.require([job.key], "key")
        elif source.spec.kind == "sql" or any(u.offset is None for u in units):
            raise DataError(
                f"input has no key column {job.key!r}, and its rows cannot be numbered "
                + ("(a SQL table has no order)" if source.spec.kind == "sql" else "across several CSV files"),
                where=source.spec.display,
                key=job.key,
                fix=f"add a {job.key!r} column that identifies rows, or use one file or Parquet input",
            )
    keyed = [job.key] if job.key in have else []
    return list(dict.fromkeys([*keyed, *job.features, *job.conf.passthrough]))


def _fingerprint(job: Job, source: Source) -> dict[str, Any]:
    """What the parts depend on. The reject threshold and the engine are not in it: changing
    them does not change a part."""
    rules = job.conf.rejects
    return {
        "fingerprint": FINGERPRINT_VERSION,
        "version": job.version,
        "weights_sha256": job.weights_sha256,
        "key": job.key,
        "passthrough": list(job.conf.passthrough),
        "chunk_size": job.conf.chunk_size,
        "range_margin": rules.range_margin,
        "unknown_category": rules.unknown_category,
        "input": source.identity(),
    }


def _tasks(job: Job, units: list[Unit], done: dict[str, dict[str, Any]]) -> list[Task]:
    size = job.conf.chunk_size
    per_task = job.conf.dask.parts_per_task if job.conf.engine == "dask" else None
    tasks = []
    for unit in units:
        count = _chunk_count(unit, size, done)
        if count is None:
            # Unknown length (CSV): one task reads the unit from its first missing part on.
            first = next(c for c in range(len(done) + 1) if part_name(unit.index, c) not in done)
            tasks.append(Task(unit, first, None, _written(unit, done)))
            continue
        pending = [c for c in range(count) if part_name(unit.index, c) not in done]
        if not pending:
            continue
        step = per_task or count
        for start in range(pending[0], count, step):
            stop = min(count, start + step)
            if any(start <= c < stop for c in pending):
                first = next(c for c in pending if c >= start)
                tasks.append(Task(unit, first, stop, _written(unit, done)))
    return tasks


def _chunk_count(unit: Unit, size: int, done: dict[str, dict[str, Any]]) -> int | None:
    if unit.rows is not None:
        return math.ceil(unit.rows / size)
    prefix = part_name(unit.index, 0)[:-5]
    lasts = [int(name[-5:]) for name, counts in done.items() if name.startswith(prefix) and counts.get("last")]
    return int(lasts[0]) + 1 if lasts else None


def _written(unit: Unit, done: dict[str, dict[str, Any]]) -> frozenset[str]:
    prefix = part_name(unit.index, 0)[:-5]
    return frozenset(name for name in done if name.startswith(prefix))
