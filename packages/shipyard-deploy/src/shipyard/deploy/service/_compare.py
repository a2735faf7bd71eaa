"""``compare``: production and a rollout's candidate, judged on the traffic they were logged on.

Reads the prediction log (:mod:`shipyard.predlog`) for a window, keeps the two versions' rollout
records (the columns :mod:`._rollout` adds) and reports, side by side: rows, agreement on the
same rows (shadow: each row was scored by both), the prediction and score distributions, the
latency of each model, and live metrics where labels were joined by key. The verdict applies the
YAML rules (``deploy.service.rollout.compare``): ``pass``, ``fail`` (with the reasons), or
``insufficient`` when too few rows were compared to judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from shipyard.core.schema import RolloutRulesConf

__all__ = ["EXIT_CODES", "compare_rollout"]

# What `shipyard compare` exits with, so a scheduler or CI can act on the verdict.
EXIT_CODES = {"pass": 0, "fail": 4, "insufficient": 5}
_QUANTILES = (0.1, 0.5, 0.9)


def compare_rollout(
    location: Any,
    *,
    production: str,
    candidate: str,
    task: str,
    rules: RolloutRulesConf,
    max_metric_drop: float,
    since: datetime | None = None,
    until: datetime | None = None,
    labels: Any = None,
    mode: str | None = None,
) -> dict[str, Any]:
    """The comparison report; ``labels`` is a DataFrame of ``key`` and ``label`` columns (the
    outcomes that arrived later), joined to the log by the row key; ``mode`` the rollout's
    (shadow or canary; by default read from the records)."""
    from shipyard.deploy.service._rollout import ROLE
    from shipyard.predlog import MODEL_VERSION, read_frame

    frame = read_frame(location, since=since, until=until)
    if len(frame) and ROLE in frame:
        frame = frame[frame[ROLE].notna() & frame[MODEL_VERSION].isin([production, candidate])]
    else:
        frame = frame.iloc[0:0]
    prod, cand = _part(frame, "production", production), _part(frame, "candidate", candidate)
    report: dict[str, Any] = {
        "production": production,
        "candidate": candidate,
        "window": {"since": _iso(since), "until": _iso(until)},
        "mode": mode or _mode(prod, cand),
        "rows": {"production": len(prod), "candidate": len(cand)},
        "agreement": _agreement(prod, cand, task),
        "predictions": {"production": _distribution(prod, task), "candidate": _distribution(cand, task)},
        "latency_ms": {"production": _latency(prod), "candidate": _latency(cand)},
        "live": _live(prod, cand, labels, task),
    }
    report["verdict"], report["reasons"] = _verdict(report, rules, max_metric_drop)
    return report


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _part(frame: Any, role: str, version: str) -> Any:
    from shipyard.deploy.service._rollout import ROLE
    from shipyard.predlog import MODEL_VERSION

    return frame[(frame[ROLE] == role) & (frame[MODEL_VERSION] == version)] if len(frame) else frame


def _mode(prod: Any, cand: Any) -> str | None:
    """A canary's candidate records are answers; a shadow's are not."""
    from shipyard.deploy.service._rollout import ANSWERED

    if not len(cand):
        return None
    return "canary" if bool(cand[ANSWERED].astype(bool).any()) else "shadow"


def _same(a: Any, b: Any, task: str) -> Any:
    import numpy as np

    if task != "regression":
        return np.asarray(a.astype(str) == b.astype(str))
    x, y = a.astype(float).to_numpy(), b.astype(float).to_numpy()
    # A value prediction agrees when it lies within a tenth of production's spread of predictions.
    spread = float(np.std(x)) or 1.0
    return np.abs(x - y) <= 0.1 * spread


def _agreement(prod: Any, cand: Any, task: str) -> dict[str, Any]:
    from shipyard.deploy.service._rollout import REQUEST
    from shipyard.predlog import PREDICTION

    if not len(prod) or not len(cand):
        return {"rows": 0, "rate": None, "coverage": 0.0 if len(prod) else None}
    pairs = prod[[REQUEST, PREDICTION]].merge(cand[[REQUEST, PREDICTION]], on=REQUEST, suffixes=("_p", "_c"))
    rate = float(_same(pairs[f"{PREDICTION}_p"], pairs[f"{PREDICTION}_c"], task).mean()) if len(pairs) else None
    return {"rows": len(pairs), "rate": rate, "coverage": len(pairs) / len(prod)}


def _distribution(part: Any, task: str) -> dict[str, Any]:
    from shipyard.predlog import PREDICTION, SCORE

    if not len(part):
        return {}
    out: dict[str, Any] = {}
    if task == "regression":
        values = part[PREDICTION].astype(float)
        out["prediction"] = {f"p{int(q * 100)}": float(values.quantile(q)) for q in _QUANTILES}
        out["prediction"]["mean"] = float(values.mean())
    else:
        shares = part[PREDICTION].astype(str).value_counts(normalize=True).sort_index()
        out["classes"] = {str(k): round(float(v), 6) for k, v in shares.items()}
    scores = part[SCORE].dropna().astype(float) if SCORE in part else None
    if scores is not None and len(scores):
        out["score"] = {f"p{int(q * 100)}": float(scores.quantile(q)) for q in _QUANTILES}
        out["score"]["mean"] = float(scores.mean())
    return out


def _latency(part: Any) -> dict[str, Any]:
    """The model's time per batch, weighted by the rows each batch held."""
    from shipyard.deploy.service._rollout import LATENCY_MS

    if not len(part) or LATENCY_MS not in part:
        return {}
    values = part[LATENCY_MS].dropna().astype(float)
    return {"p50": float(values.quantile(0.5)), "p95": float(values.quantile(0.95)), "mean": float(values.mean())}


def _live(prod: Any, cand: Any, labels: Any, task: str) -> dict[str, Any]:
    """Each model's live metric on the rows whose outcome is known (joined by key)."""
    import numpy as np
    from shipyard.predlog import KEY, PREDICTION

    if labels is None:
        return {}
    metric = "rmse" if task == "regression" else "accuracy"
    truth = labels.assign(key=labels["key"].astype(str)).drop_duplicates("key").set_index("key")["label"]
    out: dict[str, Any] = {"metric": metric}
    for name, part in (("production", prod), ("candidate", cand)):
        joined = part[[KEY, PREDICTION]].dropna(subset=[KEY]).join(truth, on=KEY, how="inner")
        if not len(joined):
            out[name] = {"rows": 0, "value": None}
            continue
        if task == "regression":
            diff = joined[PREDICTION].astype(float).to_numpy() - joined["label"].astype(float).to_numpy()
            value = float(np.sqrt(np.mean(diff**2)))
        else:
            value = float((joined[PREDICTION].astype(str) == joined["label"].astype(str)).mean())
        out[name] = {"rows": len(joined), "value": value}
    p, c = out["production"]["value"], out["candidate"]["value"]
    out["drop"] = None if p is None or c is None else (c - p if task == "regression" else p - c)
    return out


def _verdict(report: Mapping[str, Any], rules: RolloutRulesConf, max_drop: float) -> tuple[str, list[str]]:
    rows, agreement, live = report["rows"], report["agreement"], report["live"]
    reasons: list[str] = []
    if report["mode"] == "shadow" or (report["mode"] is None and rows["production"]):
        if rows["production"] >= rules.min_rows and agreement["rows"] < rules.min_rows:
            reasons.append(
                f"the candidate scored {agreement['rows']} of {rows['production']} production rows "
                "(it failed or its queue was full: see the service's log and /metrics)"
            )
        elif agreement["rows"] < rules.min_rows:
            return "insufficient", [f"{agreement['rows']} rows compared, fewer than min_rows {rules.min_rows}"]
        elif agreement["rate"] < rules.min_agreement:
            reasons.append(f"agreement {agreement['rate']:.4f} is below min_agreement {rules.min_agreement}")
    elif min(rows["production"], rows["candidate"]) < rules.min_rows:
        return "insufficient", [
            f"{rows['candidate']} candidate and {rows['production']} production rows, fewer than min_rows "
            f"{rules.min_rows}"
        ]
    if live.get("drop") is not None and live["drop"] > max_drop:
        reasons.append(
            f"live {live['metric']} of the candidate is {live['drop']:.4f} worse than production's "
            f"(allowed: {max_drop:g})"
        )
    return ("fail" if reasons else "pass"), reasons
