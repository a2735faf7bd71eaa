"""Train/validation/test splits, seeded, with a manifest of row keys per split."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError, DataError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SPLIT_KINDS", "split_frame"]

SPLIT_KINDS = ("random", "stratified")


def split_frame(
    frame: pd.DataFrame, split: dict[str, Any], data: dict[str, Any], task: str, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Split ``frame`` into train, validation and test frames plus a manifest."""
    from sklearn.model_selection import train_test_split

    kind = split["kind"]
    if kind not in SPLIT_KINDS:
        raise ConfigError(
            f"unknown split kind {kind!r}{did_you_mean(kind, SPLIT_KINDS)}",
            key="split.kind",
            value=kind,
            fix="use one of: " + ", ".join(SPLIT_KINDS),
        )
    if kind == "stratified" and task == "regression":
        raise ConfigError(
            "a stratified split needs class labels, but the task is regression",
            key="split.kind",
            value=kind,
            fix="use split=random for regression",
        )
    target = data["target"]
    key = frame.columns[0]
    n = len(frame)
    n_test = round(n * split["test"])
    n_val = round(n * split["val"])
    if min(n_test, n_val, n - n_test - n_val) < 1:
        raise DataError(
            f"{n} rows give an empty split with fractions "
            f"train={split['train']}, val={split['val']}, test={split['test']}",
            key="split",
            fix="use more data or larger validation/test fractions",
        )
    stratify = frame[target] if kind == "stratified" else None
    try:
        rest, test = train_test_split(frame, test_size=n_test, random_state=seed, stratify=stratify)
        stratify = rest[target] if kind == "stratified" else None
        train, val = train_test_split(rest, test_size=n_val, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(
            f"cannot split the data: {exc}",
            key="split",
            fix="use split=random, or larger fractions so every class fits in every split",
        ) from exc
    parts = [p.sort_values(key).reset_index(drop=True) for p in (train, val, test)]
    manifest = {
        "kind": kind,
        "seed": seed,
        "key": str(key),
        "counts": {name: len(p) for name, p in zip(("train", "val", "test"), parts, strict=True)},
        "keys": {name: p[key].tolist() for name, p in zip(("train", "val", "test"), parts, strict=True)},
    }
    return parts[0], parts[1], parts[2], manifest
