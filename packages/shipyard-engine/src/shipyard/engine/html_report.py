"""One self-contained HTML page per run: the data report, the split table, the learning curve,
the confusion matrix, the metrics against the baselines, the gate's verdicts, lineage and the
deployment results when there are any.

Everything is inline (CSS, the curve as SVG): the page opens from disk with no network, unlike
DVC's plots page, which loads its charting library from a CDN. The ``report`` stage writes it
from the run's artifacts; ``shipyard report PROJECT [VERSION]`` adds the registered version's
lineage and the project's deployments.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

__all__ = ["collect", "render"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#1d2430;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d8dde6}
table{border-collapse:collapse;margin:.5rem 0;font-size:13px}th,td{border:1px solid #d8dde6;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f1f4f9}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#17703a;font-weight:600}.fail{color:#b3261e;font-weight:600}.warn{color:#8a5a00;font-weight:600}
.muted{color:#5d6778}.verdict{font-size:1.1rem;padding:.5rem .8rem;border-radius:6px;display:inline-block}
.verdict.pass{background:#e3f4e8}.verdict.fail{background:#fbe4e2}code{background:#f1f4f9;padding:0 3px}
svg text{font:11px system-ui,sans-serif;fill:#1d2430}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return _e(value)


def _table(header: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" if any(header) else ""
    body = "".join(
        "<tr>" + "".join(f"<td{' class=n' if i in numeric else ''}>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table>{head}{body}</table>"


def _read(path: Path) -> Any:
    if not path.exists():
        return None
    if path.suffix == ".json":
        return json.loads(path.read_text())
    import pandas as pd

    return pd.read_csv(path)


def collect(paths: Any) -> dict[str, Any]:
    """The run's artifacts a report shows (missing ones are ``None``)."""
    names = ("check_report", "split_manifest", "learning_curve", "train_report", "metrics", "confusion", "gate_report")
    return {name: _read(paths.artifact(name)) for name in names}


def _data_section(check: dict[str, Any] | None) -> str:
    if not check:
        return "<p class=muted>no data report</p>"
    verdict = "pass" if check.get("passed") else "fail"
    ingest = check.get("ingest") or {}
    out = [
        f"<p><span class={verdict}>{'PASSED' if verdict == 'pass' else 'FAILED'}</span> "
        f"{_e(check.get('rows'))} rows, {_e(check.get('columns'))} columns"
        + (
            f"; {_e(ingest.get('rows_read'))} read, {_e(ingest.get('dropped_unlabeled'))} without a label dropped"
            if ingest.get("dropped_unlabeled")
            else ""
        )
        + "</p>"
    ]
    issues = [("fail", e) for e in check.get("failures", [])] + [("warn", e) for e in check.get("warnings", [])]
    if issues:
        out.append(
            _table(
                ["", "check", "column", "observed", "expected"],
                [
                    [
                        f"<span class={k}>{'failed' if k == 'fail' else 'warning'}</span>",
                        _e(e["check"]),
                        _e(e.get("column") or ""),
                        _e(e["observed"]),
                        _e(e["expected"]),
                    ]
                    for k, e in issues
                ],
            )
        )
    profile = check.get("profile") or []
    if profile:
        rows = []
        for c in profile:
            values = (
                f"{_num(c['range'][0])} .. {_num(c['range'][1])}"
                if "range" in c
                else ", ".join(f"{_e(v)} ({n})" for v, n in c.get("top", [])[:5])
            )
            nulls = f"{c['nulls']} ({c['null_fraction']:.1%})" if c["nulls"] else "0"
            rows.append([_e(c["name"]), _e(c["dtype"]), _e(c["role"]), nulls, c["distinct"], values, _e(c["action"])])
        out.append(
            _table(["column", "dtype", "role", "nulls", "distinct", "values", "what Shipyard did"], rows, {3, 4})
        )
    return "".join(out)


def _split_section(manifest: dict[str, Any] | None) -> str:
    if not manifest:
        return "<p class=muted>no split</p>"
    # JSON artifacts are written with sorted keys: put the splits back in their own order.
    order = {"train": 0, "val": 1, "test": 2}
    counts = dict(sorted(manifest["counts"].items(), key=lambda kv: order.get(kv[0], 3)))
    labels = manifest.get("labels") or {}
    out = [f"<p>kind: <code>{_e(manifest['kind'])}</code></p>"]
    train = labels.get("train") or {}
    if train and all(isinstance(v, int) for v in train.values()):
        rows = [["<b>rows</b>", *counts.values()]]
        for cls in train:
            rows.append(
                [
                    _e(cls),
                    *(f"{labels[s].get(cls, 0)} ({labels[s].get(cls, 0) / max(counts[s], 1):.0%})" for s in counts),
                ]
            )
        out.append(_table(["class", *counts], rows, set(range(1, len(counts) + 1))))
    elif train:
        rows = [
            [
                _e(s),
                counts[s],
                _num(labels[s]["mean"]),
                _num(labels[s]["std"]),
                f"{_num(labels[s]['min'])} .. {_num(labels[s]['max'])}",
            ]
            for s in counts
        ]
        out.append(_table(["split", "rows", "target mean", "std", "range"], rows, {1, 2, 3}))
    for w in manifest.get("warnings") or []:
        out.append(f"<p class=warn>{_e(w['check'])} [{_e(w['column'])}]: {_e(w['observed'])}</p>")
    return "".join(out)


def _curve_svg(curve: Any) -> str:
    """The training curves as an inline SVG line chart, one line per logged loss column."""
    if curve is None or not len(curve):
        return "<p class=muted>no learning curve</p>"
    series = [c for c in curve.columns if c != "epoch" and "loss" in c]
    if not series:
        return "<p class=muted>no loss in the learning curve</p>"
    w, h, pad = 640, 260, 44
    epochs = [float(e) for e in curve["epoch"]]
    columns = {name: [float(v) for v in curve[name]] for name in series}
    finite = [v for values in columns.values() for v in values if math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    e0, e1 = min(epochs), max(max(epochs), min(epochs) + 1)

    def xy(e: float, v: float) -> str:
        return f"{pad + (e - e0) / (e1 - e0) * (w - 2 * pad):.1f},{h - pad - (v - lo) / (hi - lo) * (h - 2 * pad):.1f}"

    colours = ["#1f6feb", "#d1242f", "#1a7f37", "#8250df"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 100}" height="{h}" role="img">',
        f'<rect x="{pad}" y="{pad}" width="{w - 2 * pad}" height="{h - 2 * pad}" fill="none" stroke="#d8dde6"/>',
    ]
    for i, name in enumerate(series):
        points = " ".join(xy(e, v) for e, v in zip(epochs, columns[name], strict=True) if math.isfinite(v))
        colour = colours[i % len(colours)]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        parts.append(f'<text x="{w - pad + 4}" y="{pad + 14 * i + 10}" style="fill:{colour}">{_e(name)}</text>')
    parts.append(f'<text x="{pad}" y="{h - pad + 16}">epoch {e0:g}</text>')
    parts.append(f'<text x="{w - pad - 50}" y="{h - pad + 16}">epoch {e1:g}</text>')
    parts.append(f'<text x="4" y="{pad + 4}">{hi:.3g}</text><text x="4" y="{h - pad}">{lo:.3g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _confusion(confusion: Any) -> str:
    if confusion is None or not len(confusion):
        return "<p class=muted>no confusion matrix (regression)</p>"
    import pandas as pd

    table = pd.crosstab(confusion["actual"].astype(str), confusion["predicted"].astype(str))
    classes = sorted(set(table.index) | set(table.columns))
    table = table.reindex(index=classes, columns=classes, fill_value=0)
    rows = [[f"<b>{_e(a)}</b>", *(int(table.loc[a, p]) for p in classes)] for a in classes]
    return "<p class=muted>rows: actual class; columns: predicted class (test split)</p>" + _table(
        ["actual \\ predicted", *classes], rows, set(range(1, len(classes) + 1))
    )


def _metrics(metrics: dict[str, Any] | None, gate: dict[str, Any] | None) -> str:
    if not metrics:
        return "<p class=muted>no metrics</p>"
    names = sorted({k.split("/", 1)[1] for k in metrics if k.startswith(("val/", "test/"))})
    rows = [[_e(n), _num(metrics.get(f"val/{n}", "")), _num(metrics.get(f"test/{n}", ""))] for n in names]
    out = [_table(["metric", "validation", "test"], rows, {1, 2})]
    if "roc_auc_classes" in names:
        out.append(
            "<p class=muted>multiclass ROC-AUC: the one-vs-rest average over the classes present in each "
            "split (roc_auc_classes).</p>"
        )
    return "".join(out)


def _gate(gate: dict[str, Any] | None) -> str:
    if not gate:
        return "<p class=muted>no gate report</p>"
    if gate.get("skipped"):
        return "<p class=warn>gate skipped (gate.enabled: false): this run cannot be promoted</p>"
    passed = gate.get("passed")
    out = [
        f"<p class='verdict {'pass' if passed else 'fail'}'>gate {'passed' if passed else 'FAILED'} "
        f"on <code>{_e(gate.get('metric'))}</code></p>"
    ]
    if gate.get("metric_reason"):
        out.append(f"<p class=muted>{_e(gate['metric_reason'])}</p>")
    rows = [
        [
            f"<span class={'pass' if c['passed'] else 'fail'}>{'pass' if c['passed'] else 'FAIL'}</span>",
            _e(c["name"]),
            _e(c.get("observed")),
            _e(c.get("expected")),
            _e(c.get("detail", "")),
        ]
        for c in gate.get("checks", [])
    ]
    out.append(_table(["", "check", "observed", "expected", "against"], rows))
    return "".join(out)


def _lineage(card: dict[str, Any] | None, run: dict[str, Any]) -> str:
    if not card:
        rows = [[_e(k), _e(v)] for k, v in run.items()]
        return (
            _table(["", ""], rows)
            + "<p class=muted>not registered yet: <code>shipyard report PROJECT VERSION</code> adds the version's "
            "commit, data and code hashes</p>"
        )
    git = card.get("git", {})
    rows = [
        ["version", _e(f"{card.get('version')} ({card.get('stage') or 'no stage'})")],
        ["created", _e(card.get("created_at"))],
        ["commit", _e(f"{git.get('commit')}{' (tree was dirty)' if git.get('dirty') else ''}")],
        ["model", _e(f"{card.get('model', {}).get('target')} sha256 {card.get('model', {}).get('weights_sha256')}")],
        ["params", _e(f"sha256 {card.get('params_sha256')} seed {card.get('seed')}")],
    ]
    rows += [["data", _e(f"{p} md5 {d}")] for p, d in card.get("data", {}).items()]
    env = card.get("environment", {})
    rows.append(
        ["environment", _e(f"{env.get('lock_file')} sha256 {env.get('lock_sha256')} python {env.get('python')}")]
    )
    return _table(["", ""], rows)


def _deployments(deployments: dict[str, Any] | None) -> str:
    if not deployments:
        return "<p class=muted>not deployed</p>"
    out = []
    for target, info in deployments.items():
        out.append(
            f"<p><b>{_e(target)}</b>: {_e(info.get('path'))} ({_e(info.get('version') or 'unknown version')})</p>"
        )
        parity = info.get("parity")
        if parity:
            rows = [
                [
                    _e(name),
                    f"<span class={'pass' if v.get('passed') else 'fail'}>{'pass' if v.get('passed') else 'FAIL'}"
                    "</span>",
                    _num(v.get("max_abs_diff")),
                    _num(v.get("metric", "")),
                    _num(v.get("size_bytes", "")),
                    _num(v.get("latency_p50_ms", "")),
                ]
                for name, v in parity.get("variants", {}).items()
            ]
            metric = f"test {parity.get('metric', 'metric')}"
            header = ["edge variant", "parity", "max |diff| vs torch", metric, "bytes", "p50 ms (batch 1)"]
            out.append(_table(header, rows, {2, 3, 4, 5}))
    return "".join(out)


def render(
    project: str,
    task: str,
    artifacts: dict[str, Any],
    *,
    run: dict[str, Any] | None = None,
    card: dict[str, Any] | None = None,
    deployments: dict[str, Any] | None = None,
    note: str | None = None,
) -> str:
    """The page as one string of HTML."""
    title = f"{project} ({task})"
    sections = [
        ("Data", _data_section(artifacts.get("check_report"))),
        ("Split", _split_section(artifacts.get("split_manifest"))),
        ("Learning curve", _curve_svg(artifacts.get("learning_curve"))),
        ("Metrics", _metrics(artifacts.get("metrics"), artifacts.get("gate_report"))),
        ("Confusion matrix", _confusion(artifacts.get("confusion"))),
        ("Gate", _gate(artifacts.get("gate_report"))),
        ("Lineage", _lineage(card, run or {})),
        ("Deployments", _deployments(deployments)),
    ]
    body = "".join(f"<h2>{_e(name)}</h2>{content}" for name, content in sections)
    extra = f"<p class=warn>{_e(note)}</p>" if note else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width,initial-scale=1'><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>{extra}{body}</body></html>\n"
    )
