"""A data contract per version: what the training data looked like, and new data against it.

:func:`infer_contract` reads the training split (columns, their kind, nullability, numeric
ranges, categorical vocabularies, the key, the image shape). The next training's check stage
runs :func:`compare_contract` on its new data against the contract of the production (else the
latest registered) version, before anything trains: each break names the column, what changed
and the fix. :func:`schema_changes` is the feature-schema difference between two versions (a
service built from the newer one takes a different request).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.core.schema import ChecksConf, ContractAction

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CONTRACT_FORMAT", "compare_contract", "infer_contract", "kind_of", "schema_changes"]

CONTRACT_FORMAT = 1
# A vocabulary is recorded up to this many values; a column with more is free text (no vocabulary).
MAX_VOCABULARY = 1000


def kind_of(series: pd.Series) -> str:
    """The contract's kind of a column: bool, integer, number, datetime or text."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "bool"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_numeric_dtype(series):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    return "text"


_NUMERIC = {"integer", "number"}


def _same_kind(old: str, new: str) -> bool:
    # An integer column that gains an empty cell is read as floats: still the same number.
    return old == new or (old in _NUMERIC and new in _NUMERIC)


def _column(series: pd.Series, role: str) -> dict[str, Any]:
    kind = kind_of(series)
    entry: dict[str, Any] = {"role": role, "kind": kind, "nullable": bool(series.isna().any())}
    values = series.dropna()
    if kind in _NUMERIC and len(values):
        entry["min"], entry["max"] = float(values.min()), float(values.max())
    elif kind in ("text", "bool"):
        vocabulary = sorted({str(v) for v in values.unique()})
        if len(vocabulary) <= MAX_VOCABULARY:
            entry["categories"] = vocabulary
    return entry


def infer_contract(
    train: pd.DataFrame, target: str, task: str, aux: list[str], shape: list[int] | None
) -> dict[str, Any]:
    """The contract of an ingested training split (the key is its first column)."""
    key = str(train.columns[0])
    columns: dict[str, Any] = {}
    for name in train.columns:
        role = "key" if name == key else "target" if name == target else "aux" if name in aux else "feature"
        columns[str(name)] = _column(train[name], role)
    return {
        "format": CONTRACT_FORMAT,
        "rows": len(train),
        "task": task,
        "key": key,
        "target": target,
        "shape": list(shape) if shape else None,
        "columns": columns,
    }


def _break(column: str | None, check: str, observed: Any, expected: Any, fix: str) -> dict[str, Any]:
    return {"check": f"contract: {check}", "column": column, "observed": observed, "expected": expected, "fix": fix}


def _renamed_hint(missing: str, added: list[str], old: dict[str, Any], frame: pd.DataFrame) -> str:
    same = [c for c in added if _same_kind(old["kind"], kind_of(frame[c]))]
    return f" (renamed to {same[0]!r}?)" if len(same) == 1 else ""


def _range_break(name: str, old: dict[str, Any], values: pd.Series, margin: float) -> dict[str, Any] | None:
    if "min" not in old or not len(values):
        return None
    low, high = old["min"], old["max"]
    width = (high - low) or max(abs(high), 1.0)
    lo_ok, hi_ok = low - margin * width, high + margin * width
    seen_lo, seen_hi = float(values.min()), float(values.max())
    if lo_ok <= seen_lo and seen_hi <= hi_ok:
        return None
    return _break(
        name,
        "range",
        f"values in [{seen_lo:.6g}, {seen_hi:.6g}]",
        f"within [{lo_ok:.6g}, {hi_ok:.6g}] (training's [{low:.6g}, {high:.6g}] widened by "
        f"checks.contract_limits.range_margin={margin})",
        "check the column's unit or source; if the new range is right, raise checks.contract_limits.range_margin "
        f"or set checks.contract_columns: {{{name}: warn}}",
    )


def _vocabulary_break(name: str, old: dict[str, Any], values: pd.Series, limit: float) -> dict[str, Any] | None:
    if "categories" not in old:
        return None
    known = set(old["categories"])
    new = sorted({str(v) for v in values.unique()} - known)
    allowed = limit * max(len(known), 1)
    if len(new) <= allowed:
        return None
    shown = ", ".join(repr(v) for v in new[:5]) + (" ..." if len(new) > 5 else "")
    return _break(
        name,
        "new categories",
        f"{len(new)} values unseen in training ({shown})",
        f"at most {int(allowed)} ({limit:.0%} of training's {len(known)} values; "
        "checks.contract_limits.new_categories)",
        "map the new values to known ones at the source; if they are real, raise "
        f"checks.contract_limits.new_categories or set checks.contract_columns: {{{name}: warn}}",
    )


def _column_breaks(name: str, old: dict[str, Any], frame: pd.DataFrame, checks: ChecksConf) -> list[dict[str, Any]]:
    series = frame[name]
    kind = kind_of(series)
    if not _same_kind(old["kind"], kind):
        return [
            _break(
                name,
                "retyped column",
                f"{kind}",
                f"{old['kind']} (as in training)",
                f"convert {name!r} back to {old['kind']} at the source, or rename it if it is a different column",
            )
        ]
    out = []
    values = series.dropna()
    if not old["nullable"] and len(values) < len(series):
        out.append(
            _break(
                name,
                "nulls",
                f"{len(series) - len(values)} empty cells",
                "none (training had none)",
                f"fill {name!r} at the source, or set checks.contract_columns: {{{name}: warn}} "
                "if empty cells are expected",
            )
        )
    limits = checks.contract_limits
    for found in (
        _range_break(name, old, values, limits.range_margin),
        _vocabulary_break(name, old, values, limits.new_categories),
    ):
        if found:
            out.append(found)
    return out


def compare_contract(
    frame: pd.DataFrame, contract: dict[str, Any], checks: ChecksConf
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(failures, warnings) of an ingested frame against a version's contract, by
    ``checks.contract`` and its per-column overrides. A new empty cell in a column that had
    none, or a new column, is a warning at most (neither breaks a model); the rest fail under
    ``fail``."""
    default = ContractAction(checks.contract)
    if default == ContractAction.off and not checks.contract_columns:
        return [], []
    old_columns: dict[str, Any] = contract["columns"]
    present = [str(c) for c in frame.columns]
    added = [c for c in present if c not in old_columns]
    found: list[dict[str, Any]] = []
    for name, old in old_columns.items():
        if old["role"] == "key" and name == contract.get("key") and name not in present:
            continue  # a generated key; the ingest names the key it numbers
        if name not in present:
            found.append(
                _break(
                    name,
                    "missing column",
                    f"absent{_renamed_hint(name, added, old, frame)}",
                    f"a {old['kind']} column ({old['role']}) as in training",
                    f"restore {name!r} in the source (or rename it back); if the model is to go without it, "
                    f"set checks.contract_columns: {{{name}: warn}} for this training (its request schema changes)",
                )
            )
            continue
        found += _column_breaks(name, old, frame, checks)
    key = str(frame.columns[0]) if present else None
    if key and frame[key].duplicated().any():
        found.append(_break(key, "key not unique", "repeated values", "unique", "deduplicate the source by its key"))
    for name in added:
        found.append(
            _break(
                name,
                "new column",
                f"a {kind_of(frame[name])} column unknown to the contract",
                "the training columns",
                "nothing if intended: the model's features (and its service's request schema) will change; "
                "else drop it with data.drop",
            )
        )
    failures, warnings = [], []
    for entry in found:
        action = ContractAction(checks.contract_columns.get(entry["column"] or "", default))
        if action == ContractAction.off:
            continue
        soft = entry["check"] in ("contract: nulls", "contract: new column")
        (failures if action == ContractAction.fail and not soft else warnings).append(entry)
    return failures, warnings


def _features(contract: dict[str, Any] | None) -> dict[str, str]:
    if not contract:
        return {}
    return {n: c["kind"] for n, c in contract.get("columns", {}).items() if c.get("role") == "feature"}


def schema_changes(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    """The feature-schema differences from ``old`` to ``new`` as short lines ("removed x",
    "added y (number)", "z: integer -> text"); empty when either is unknown or they agree."""
    before, after = _features(old), _features(new)
    if not before or not after:
        return []
    lines = [f"removed {n!r}" for n in before if n not in after]
    lines += [f"added {n!r} ({k})" for n, k in after.items() if n not in before]
    lines += [f"{n!r}: {before[n]} -> {k}" for n, k in after.items() if n in before and not _same_kind(before[n], k)]
    if (old or {}).get("shape") != (new or {}).get("shape"):
        lines.append(f"image shape {(old or {}).get('shape')} -> {(new or {}).get('shape')}")
    return lines
