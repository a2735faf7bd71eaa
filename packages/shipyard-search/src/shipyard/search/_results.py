"""What a finished study means: trial records, feasibility, the Pareto front, the chosen trial.

Feasibility is recomputed here from each trial's recorded metrics and the constraints of the
search, not read from the sampler (random and grid samplers do not record constraints), so an
infeasible trial is never selected whichever sampler ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.search._errors import SearchError
from shipyard.search._spec import SearchSpec

if TYPE_CHECKING:
    import optuna

__all__ = ["TrialRecord", "format_table", "pareto_front", "records", "select_trial"]


@dataclass
class TrialRecord:
    number: int
    state: str  # COMPLETE | PRUNED | FAIL | RUNNING | WAITING
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    feasible: bool = False
    violations: list[float] = field(default_factory=list)
    worker: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    interrupted: bool = False

    def value(self, metric: str) -> float:
        return float(self.metrics.get(metric, math.nan))

    def to_json(self, spec: SearchSpec) -> dict[str, Any]:
        return {
            "number": self.number,
            "state": self.state,
            "values": {o.metric: self.value(o.metric) for o in spec.objectives},
            "feasible": self.feasible,
            "constraints": {c.text: v for c, v in zip(spec.constraints, self.violations, strict=False)},
            "params": self.params,
            "overrides": self.overrides,
            "metrics": self.metrics,
            "seconds": self.seconds,
            "worker": self.worker,
            "error": self.error,
        }


def _decode(params: dict[str, Any], spec: SearchSpec) -> dict[str, Any]:
    by_key = {p.key: p for p in spec.params}
    out = {}
    for key, value in params.items():
        p = by_key.get(key)
        out[key] = p.decode(value) if p is not None and p.kind in ("categorical", "group") else value
    return out


def records(study: optuna.Study, spec: SearchSpec) -> list[TrialRecord]:
    from shipyard.search._study import retried

    trials = study.get_trials(deepcopy=False)
    again = retried(trials)
    out = []
    for t in trials:
        metrics = dict(t.user_attrs.get("metrics") or {})
        run = dict(t.user_attrs.get("run") or {})
        if t.number in again:
            run.setdefault("error", f"its worker stopped sending heartbeats: run again as trial {again[t.number]}")
        complete = t.state.name == "COMPLETE"
        out.append(
            TrialRecord(
                number=t.number,
                state=t.state.name,
                params=_decode(dict(t.params), spec),
                metrics=metrics,
                overrides=list(run.get("overrides") or []),
                feasible=complete and spec.feasible(metrics),
                violations=[c.violation(metrics) for c in spec.constraints] if complete else [],
                worker=run.get("worker"),
                seconds=dict(run.get("seconds") or {}),
                error=run.get("error") or run.get("pruned"),
                interrupted=bool(t.user_attrs.get("interrupted")) or t.number in again,
            )
        )
    return out


def _signed(record: TrialRecord, spec: SearchSpec) -> tuple[float, ...]:
    """Objective values turned so that smaller is better."""
    return tuple(record.value(o.metric) * (-1 if o.direction == "maximize" else 1) for o in spec.objectives)


def _dominates(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def pareto_front(rows: list[TrialRecord], spec: SearchSpec) -> list[TrialRecord]:
    """Complete, feasible trials that no other complete, feasible trial dominates."""
    candidates = [r for r in rows if r.state == "COMPLETE" and r.feasible]
    signed = {r.number: _signed(r, spec) for r in candidates}
    front = [r for r in candidates if not any(_dominates(signed[o.number], signed[r.number]) for o in candidates)]
    return sorted(front, key=lambda r: (signed[r.number], r.number))


def select_trial(rows: list[TrialRecord], spec: SearchSpec) -> TrialRecord:
    """The trial the selection rule picks: best ``select_metric`` among the feasible trials
    (or the feasible Pareto front); ties go to the objectives in order, then the earliest."""
    pool = (
        pareto_front(rows, spec)
        if spec.select_among == "pareto"
        else [r for r in rows if r.state == "COMPLETE" and r.feasible]
    )
    if not pool:
        complete = sum(r.state == "COMPLETE" for r in rows)
        failed = [r for r in rows if r.state == "FAIL" and not r.interrupted]
        detail = f"; first failure: {failed[0].error}" if failed and not complete else ""
        raise SearchError(
            f"no trial meets every constraint ({len(rows)} trials, {complete} complete, 0 feasible){detail}",
            key="search.constraints" if complete else None,
            fix="relax search.constraints or run more trials (search.n_trials)"
            if complete
            else "fix the failure shown above, then rerun the search (it continues the study)",
        )
    sign = -1 if spec.select_direction == "maximize" else 1
    return min(pool, key=lambda r: (sign * r.value(spec.select_metric), _signed(r, spec), r.number))


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A plain fixed-width text table."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        return "" if value is None else str(value)

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)
