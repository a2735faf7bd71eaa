"""The data report and the split table as lines a person reads (the HTML report shows the same
data as tables)."""

from __future__ import annotations

from typing import Any

__all__ = ["profile_lines", "split_table"]


def _cell(entry: dict[str, Any]) -> str:
    if "range" in entry:
        low, high = entry["range"]
        return f"{low} .. {high}"
    if "top" in entry:
        return ", ".join(f"{v} ({n})" for v, n in entry["top"][:3])
    return ""


def profile_lines(report: dict[str, Any]) -> list[str]:
    """Per column: dtype, nulls, distinct values, range or top values, what Shipyard did."""
    profile = report.get("profile") or []
    ingest = report.get("ingest") or {}
    if not profile:
        return []
    lines = [f"  rows: {ingest.get('rows_read', report['rows'])} read, {report['rows']} kept"]
    if ingest.get("dropped_unlabeled"):
        lines[-1] += f" ({ingest['dropped_unlabeled']} without a label dropped: data.drop_unlabeled)"
    width = max(len(e["name"]) for e in profile)
    lines.append(f"  {'column':<{width}}  {'dtype':<14} {'role':<11} {'nulls':>12} {'distinct':>8}  values")
    for e in profile:
        nulls = f"{e['nulls']} ({e['null_fraction']:.0%})" if e["nulls"] else "0"
        lines.append(
            f"  {e['name']:<{width}}  {e['dtype'][:14]:<14} {e['role']:<11} {nulls:>12} {e['distinct']:>8}  "
            f"{_cell(e)[:60]}"
        )
        lines.append(f"  {'':<{width}}    -> {e['action']}")
    return lines


def split_table(manifest: dict[str, Any]) -> str:
    """Rows per split and, for classification, rows per class per split."""
    counts = manifest["counts"]
    labels = manifest.get("labels") or {}
    lines = [f"split ({manifest['kind']}): " + ", ".join(f"{n} {name}" for name, n in counts.items())]
    train = labels.get("train") or {}
    if train and all(isinstance(v, int) for v in train.values()):
        width = max(len(str(c)) for c in train) if train else 5
        lines.append(f"  {'class':<{width}}  " + "  ".join(f"{name:>7}" for name in counts))
        for cls in train:
            lines.append(f"  {cls:<{width}}  " + "  ".join(f"{labels[name].get(cls, 0):>7}" for name in counts))
    elif train:
        for name in counts:
            stats = labels[name]
            lines.append(
                f"  {name:<5} target mean {stats['mean']:.4g}, std {stats['std']:.4g}, "
                f"range {stats['min']:.4g} .. {stats['max']:.4g}"
            )
    return "\n".join(lines) + "\n"
