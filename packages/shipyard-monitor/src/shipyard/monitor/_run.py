"""A monitoring run over one window: where the rows come from, the verdict, the files written."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.core.errors import DataError
from shipyard.core.schema import DriftConf
from shipyard.monitor._report import render_html
from shipyard.monitor._window import Labels, judge_window

__all__ = ["EXIT_DRIFT", "EXIT_HEALTHY", "EXIT_STALE", "exit_code", "input_batches", "monitor_window"]

# Exit codes a scheduler acts on (2 stays a config or data mistake, 3 a failed gate).
EXIT_HEALTHY = 0
EXIT_DRIFT = 4
EXIT_STALE = 5


def exit_code(status: str) -> int:
    return {"drift": EXIT_DRIFT, "stale": EXIT_STALE}.get(status, EXIT_HEALTHY)


def input_batches(path: Path, columns: list[str], batch_rows: int = 65536) -> Iterator[Any]:
    """Record batches of a Parquet or CSV file of inputs (``--input``), in bounded memory; the
    columns it lacks read as empty."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    if not path.exists():
        raise DataError(f"input {path} does not exist", where=str(path), fix="pass an existing Parquet or CSV file")
    fmt = "csv" if path.suffix.lower() == ".csv" else "parquet"
    try:
        dataset = ds.dataset(str(path), format=fmt)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {path} as {fmt}: {exc}", where=str(path), fix="pass Parquet or CSV") from exc
    present = [c for c in columns if c in dataset.schema.names]
    if not present:
        raise DataError(
            f"input {path} holds none of the model's features",
            where=str(path),
            fix=f"give a file with the feature columns (e.g. {', '.join(columns[:5])})",
        )
    yield from dataset.to_batches(columns=present, batch_size=batch_rows)


def monitor_window(
    batches: Any,
    profile: dict[str, Any],
    drift: DriftConf,
    *,
    project: str,
    version: str | None,
    since: datetime | None,
    until: datetime | None,
    source: str,
    prediction_column: str | None,
    labels: Labels | None = None,
    stale: bool = False,
    metric_drop: tuple[str, float] | None = None,
) -> dict[str, Any]:
    """Judge one window; the result (``status``: healthy, drift, stale or too_small, and every
    test) as plain data. ``metric_drop``: (metric, max_drop) of the trigger, a drop past which is
    drift too."""
    result = judge_window(
        batches,
        profile,
        drift,
        prediction_column=prediction_column,
        labels=labels,
        classes=list(profile.get("classes") or []),
    )
    reasons: list[str] = []
    if result["drifted"]:
        reasons.append(f"{len(result['drifted'])} drifted feature(s): {', '.join(result['drifted'][:10])}")
    if result.get("prediction_drift"):
        reasons.append("the prediction's distribution drifted")
    drops = (result.get("labels") or {}).get("drops", {})
    if metric_drop and metric_drop[0] in drops and drops[metric_drop[0]] > metric_drop[1]:
        reasons.append(f"live {metric_drop[0]} dropped {drops[metric_drop[0]]:.4f} below validation")
    if stale:
        reasons.append("production is older than its max_age")
    status = "drift" if reasons and not (stale and len(reasons) == 1) else "stale" if stale else "healthy"
    if not result["judged"] and status == "healthy":
        status = "too_small"
    result.update(
        project=project,
        version=version,
        source=source,
        status=status,
        reasons=reasons,
        window={"since": since.isoformat() if since else None, "until": until.isoformat() if until else None},
        drift_conf={
            "alpha": drift.alpha,
            "wasserstein": drift.wasserstein,
            "jensenshannon": drift.jensenshannon,
            "missing": drift.missing,
            "min_rows": drift.min_rows,
        },
    )
    return result


def write_reports(result: dict[str, Any], profile: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """``monitor.json`` and ``report.html`` of a window into ``folder`` (atomically)."""
    from shipyard.core.atomic import write_json, write_text

    folder.mkdir(parents=True, exist_ok=True)
    data, page = folder / "monitor.json", folder / "report.html"
    write_json(data, result)
    write_text(page, render_html(result, profile))
    return data, page
