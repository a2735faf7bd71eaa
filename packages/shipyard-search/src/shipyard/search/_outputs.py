"""A search's files under ``data/<team>/<name>/08_reporting/search/``, written atomically:

* ``trials.csv``: one row per trial (state, feasibility and each constraint's violation, objectives,
  parameters, metrics, error);
* ``pareto.json``: the objectives, constraints and the feasible Pareto front;
* ``plots/*.html``: Pareto front, parameter importances and history (optuna.visualization);
* ``report.json``: the chosen trial, the rule that chose it, and its validation and test metrics.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.atomic import atomic_path, write_json
from shipyard.search._results import TrialRecord, pareto_front
from shipyard.search._spec import SearchSpec

if TYPE_CHECKING:
    import optuna

__all__ = ["write_plots", "write_tables"]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def write_tables(folder: Path, rows: list[TrialRecord], spec: SearchSpec) -> list[TrialRecord]:
    """``trials.csv`` and ``pareto.json``; returns the Pareto front."""
    import pandas as pd

    table = []
    for r in rows:
        row: dict[str, Any] = {"number": r.number, "state": r.state, "feasible": r.feasible, "worker": r.worker}
        row.update({o.metric: r.metrics.get(o.metric) for o in spec.objectives})
        # How far each constraint is from being met (<= 0: met), empty for an unfinished trial.
        row.update(
            {
                f"violation:{c.text}": v
                for c, v in zip(spec.constraints, r.violations or [None] * len(spec.constraints), strict=True)
            }
        )
        row.update(
            {f"param:{k}": (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in r.params.items()}
        )
        row.update({k: v for k, v in r.metrics.items() if k not in row})
        row["seconds"] = r.seconds.get("total")
        row["error"] = r.error
        table.append(row)
    with atomic_path(folder / "trials.csv") as tmp:
        pd.DataFrame(table).to_csv(tmp, index=False)
    front = pareto_front(rows, spec)
    write_json(
        folder / "pareto.json",
        {
            "study": spec.study_name,
            "objectives": [{"metric": o.metric, "direction": o.direction} for o in spec.objectives],
            "constraints": [c.text for c in spec.constraints],
            "trials": [r.to_json(spec) for r in front],
        },
    )
    return front


def write_plots(folder: Path, study: optuna.Study, spec: SearchSpec) -> dict[str, str]:
    """Interactive HTML plots (and PNG where kaleido is installed); returns ``{plot: file or
    the reason it was skipped}``. Plotly is loaded from its CDN when a plot is opened."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        return {"all": "skipped: plotly is not installed (pip install plotly)"}
    from optuna import visualization as vis

    names = [o.metric for o in spec.objectives]
    multi = len(names) > 1
    makers: dict[str, Any] = {}
    if multi:
        # Infeasible trials are drawn apart (and the history plots grey them): Optuna reads the
        # constraints recorded on each trial (Trial.set_constraint).
        makers["pareto_front"] = lambda: vis.plot_pareto_front(study, target_names=names)
    for i, name in enumerate(names):
        target = (lambda t, i=i: t.values[i]) if multi else None
        makers[f"history_{_slug(name)}"] = lambda target=target, name=name: vis.plot_optimization_history(
            study, target=target, target_name=name
        )
        makers[f"param_importances_{_slug(name)}"] = lambda target=target, name=name: vis.plot_param_importances(
            study, target=target, target_name=name
        )
    out: dict[str, str] = {}
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    for name, make in makers.items():
        out[name] = _write_figure(folder / "plots", name, make)
    return out


def _write_figure(folder: Path, name: str, make: Any) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            figure = make()
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        # Too few complete trials, or parameters that never varied: nothing to plot yet.
        return f"skipped: {exc}"
    path = folder / f"{name}.html"
    with atomic_path(path) as tmp:
        figure.write_html(str(tmp), include_plotlyjs="cdn", full_html=True)
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return path.name
    with atomic_path(path.with_suffix(".png")) as tmp:
        figure.write_image(str(tmp), format="png")
    return path.name
