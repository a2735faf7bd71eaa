"""The window's reports: ``monitor.json`` (everything), a self-contained HTML page (inline CSS and
SVG: it opens with no network), and the short table the CLI prints."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["render_html", "table"]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def table(result: dict[str, Any]) -> str:
    """Drifted features (or the verdict alone) as a few aligned lines."""
    lines = [
        f"{result['project']} {result.get('version') or ''}: {result['status'].upper()} — {result['rows']} rows "
        f"[{result['window']['since'] or '…'} → {result['window']['until'] or '…'}]"
    ]
    if not result.get("judged", True):
        lines.append(f"  {result.get('note', '')}")
    drifted = [f for f in result.get("features", []) if f["drifted"]]
    if drifted:
        lines.append(f"  {'feature':<28} {'test':<9} {'p (BH)':>10} {'effect':>9} {'floor':>7}  measure")
        for f in drifted:
            lines.append(
                f"  {f['feature'][:28]:<28} {f['kind']:<9} {f['p_adjusted']:>10.3g} {f['effect']:>9.4f} "
                f"{f['floor']:>7.3f}  {f['measure']}"
            )
    if result.get("judged", True):
        share = result.get("drift_share", 0.0)
        lines.append(f"  drifted features: {len(result.get('drifted', []))} ({share:.0%} of features)")
    labels = result.get("labels")
    if labels:
        shown = ", ".join(
            f"{k} {v:.4f} (reference {labels['reference'].get(k, float('nan')):.4f})"
            for k, v in labels["metrics"].items()
        )
        lines.append(f"  live metrics on {labels['joined']} labelled rows: {shown or 'none'}")
    for reason in result.get("reasons", []):
        lines.append(f"  reason: {reason}")
    trigger = result.get("trigger")
    if trigger:
        lines.append(f"  trigger: {trigger['summary']}")
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1d2330}
h1{font-size:20px;margin:0 0 4px} .muted{color:#667} table{border-collapse:collapse;margin:12px 0}
td,th{padding:4px 10px;border-bottom:1px solid #e3e6ec;text-align:left;font-size:13px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff;font-weight:600}
.healthy{background:#2e8b57}.drift{background:#c0392b}.stale{background:#d68910}.unjudged{background:#7f8c8d}
tr.drifted td{background:#fdecea} svg{vertical-align:middle}
"""


def _bars(reference: list[float], current: list[float], width: int = 220, height: int = 40) -> str:
    """Reference (grey) and current (blue) shares side by side, as inline SVG."""
    n = max(len(reference), len(current), 1)
    top = max([*reference, *current, 1e-9])
    step = width / n
    parts = [f'<svg width="{width}" height="{height}" role="img">']
    for i in range(n):
        for j, (values, colour) in enumerate(((reference, "#b8bfcc"), (current, "#2e6fd8"))):
            v = values[i] if i < len(values) else 0.0
            h = height * v / top
            x = i * step + j * step / 2
            parts.append(
                f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{max(step / 2 - 0.5, 0.5):.1f}" height="{h:.1f}" '
                f'fill="{colour}"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _shares(feature: dict[str, Any], reference: dict[str, Any]) -> tuple[list[float], list[float]]:
    if feature["kind"] == "numeric":
        counts = reference.get("counts", [])
        total = sum(counts) or 1
        return [c / total for c in counts], list(feature.get("current_bins", []))
    if feature["kind"] == "categorical":
        ref_counts = reference.get("counts", {})
        total = sum(ref_counts.values()) or 1
        labels = sorted(set(ref_counts) | set(feature.get("current_shares", {})))[:40]
        current = feature.get("current_shares", {})
        return [ref_counts.get(k, 0) / total for k in labels], [current.get(k, 0.0) for k in labels]
    return [float(feature.get("reference_null_rate", 0.0))], [float(feature.get("null_rate", 0.0))]


def render_html(result: dict[str, Any], profile: dict[str, Any]) -> str:
    """The window's report as one HTML page with nothing to fetch."""
    esc = html.escape
    status = result["status"]
    badge = status if status in ("healthy", "drift", "stale") else "unjudged"
    refs = dict(profile.get("features", {}))
    refs["(prediction)"] = profile.get("prediction", {})
    rows = []
    for f in result.get("features", []):
        ref_shares, cur_shares = _shares(f, refs.get(f["feature"], {}))
        rows.append(
            f'<tr class="{"drifted" if f["drifted"] else ""}"><td>{esc(f["feature"])}</td><td>{esc(f["kind"])}</td>'
            f"<td>{_fmt(f['p_adjusted'])}</td><td>{f['effect']:.4f}</td><td>{f['floor']:.3f}</td>"
            f"<td>{esc(f['measure'])}</td><td>{'yes' if f['drifted'] else ''}</td>"
            f"<td>{_bars(ref_shares, cur_shares)}</td></tr>"
        )
    labels = result.get("labels")
    label_rows = ""
    if labels:
        label_rows = "".join(
            f"<tr><td>{esc(k)}</td><td>{v:.4f}</td><td>{_fmt(labels['reference'].get(k, ''))}</td>"
            f"<td>{_fmt(labels['drops'].get(k, ''))}</td></tr>"
            for k, v in labels["metrics"].items()
        )
        label_rows = (
            f"<h2>Live metrics ({labels['joined']} labelled rows)</h2><table><tr><th>metric</th><th>live</th>"
            f"<th>validation</th><th>drop</th></tr>{label_rows}</table>"
        )
    reasons = "".join(f"<li>{esc(r)}</li>" for r in result.get("reasons", []))
    trigger = result.get("trigger")
    trigger_html = f"<p><b>Trigger:</b> {esc(trigger['summary'])}</p>" if trigger else ""
    note = f"<p class='muted'>{esc(result['note'])}</p>" if result.get("note") else ""
    window = result["window"]
    title = f"{esc(result['project'])} {esc(str(result.get('version') or ''))}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(result["project"])} monitoring</title>
<style>{_CSS}</style></head><body>
<h1>{title} <span class="badge {badge}">{esc(status)}</span></h1>
<p class="muted">window {esc(str(window["since"]))} → {esc(str(window["until"]))} · {result["rows"]} rows ·
source {esc(str(result.get("source", "")))} · drifted features {len(result.get("drifted", []))}
({result.get("drift_share", 0.0):.0%}) · BH false-discovery rate {result["drift_conf"]["alpha"]}</p>
{note}<ul>{reasons}</ul>{trigger_html}
<h2>Features and prediction</h2>
<p class="muted">A row drifts when its Benjamini-Hochberg adjusted p-value is below {result["drift_conf"]["alpha"]}
and its effect reaches the floor. Bars: training reference (grey) and this window (blue), per bin or category.</p>
<table><tr><th>feature</th><th>test</th><th>p (BH)</th><th>effect</th><th>floor</th><th>measure</th><th>drifted</th>
<th>distribution</th></tr>{"".join(rows)}</table>
{label_rows}
</body></html>
"""
