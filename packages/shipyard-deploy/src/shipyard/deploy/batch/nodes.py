"""The Kedro nodes of a batch job: plan, score, finish.

Pure functions with named inputs and outputs (see :mod:`shipyard.deploy.batch.pipeline`). Data
does not flow between them in memory: ``plan`` names the work, ``score`` streams chunks from the
input to committed parts, ``finish`` adds up the parts' counts and applies the reject policy.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from typing import Any

from shipyard.core.errors import DataError
from shipyard.deploy.batch._job import Job
from shipyard.deploy.batch._plan import Plan, make_plan
from shipyard.deploy.batch._sinks import writing

__all__ = ["finish_job", "plan_job", "score_parts"]


def plan_job(job: Job, run: dict[str, Any]) -> Plan:
    """Check the input against the model, open the output, list the parts left to score."""
    resources = run.get("resources")
    if not isinstance(resources, ExitStack):
        resources = ExitStack()
    return make_plan(job, run, resources)


def score_parts(plan: Plan) -> list[dict[str, Any]]:
    """Score every pending part with the job's engine; returns this run's parts' counts."""
    from shipyard.deploy.batch._engines import run_tasks
    from tqdm.auto import tqdm

    if not plan.tasks:
        return []
    with tqdm(
        total=plan.total_rows,
        initial=plan.rows_done,
        unit="rows",
        unit_scale=True,
        desc=f"{plan.job.project} batch",
        disable=None if plan.progress is None else not plan.progress,
        file=sys.stderr,
        dynamic_ncols=True,
    ) as bar:
        results: list[dict[str, Any]] = run_tasks(plan, lambda part: bar.update(part["rows"]))
    return results


def finish_job(plan: Plan, results: list[dict[str, Any]]) -> dict[str, Any]:
    """Add up the counts, write the rejects file and the summary; too many rejects fail the job."""
    if plan.finished is not None:
        return dict(plan.finished, up_to_date=True)
    seconds = time.perf_counter() - plan.started
    parts = {**plan.done, **{r["part"]: r for r in results}}
    rows = sum(int(p["rows"]) for p in parts.values())
    rejected = sum(int(p["rejected"]) for p in parts.values())
    this_run = sum(int(r["rows"]) for r in results)
    fraction = rejected / rows if rows else 0.0
    limit = plan.job.conf.rejects.max_fraction
    ok = fraction <= limit
    summary = {
        "status": "succeeded" if ok else "failed",
        "project": plan.job.project,
        "model_version": plan.job.version,
        "engine": plan.job.conf.engine,
        "input": plan.source.display,
        "output": plan.sink_spec.display,
        "scored_at": plan.scored_at.isoformat(),
        "rows_read": rows,
        "rows_scored": rows - rejected,
        "rows_rejected": rejected,
        "reject_fraction": round(fraction, 6),
        "max_reject_fraction": limit,
        "parts": len(parts),
        "parts_resumed": len(plan.done),
        "parts_scored": len(results),
        "rows_this_run": this_run,
        "seconds": round(seconds, 3),
        "rows_per_second": round(this_run / seconds, 1) if seconds > 0 else None,
    }
    with writing(plan.sink_spec):
        summary = plan.sink.finish(summary, ok)
    if not ok:
        raise DataError(
            f"{rejected} of {rows} rows ({fraction:.2%}) failed the feature schema, more than the allowed {limit:.2%}",
            where=str(summary.get("rejects_file") or plan.sink_spec.display),
            fix="read the reasons in the rejects file and fix the input, or raise "
            "deploy.batch.rejects.max_fraction (--max-reject-fraction)",
        )
    return dict(summary)
