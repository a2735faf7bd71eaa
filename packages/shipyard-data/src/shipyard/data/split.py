"""Train/validation/test splits, seeded, with a manifest of row keys per split.

Kinds: ``random``; ``stratified`` (class proportions kept); ``group`` (no value of
``group_column`` in two splits); ``time`` (train before validation before test by
``time_column``); ``kfold`` (test held out first, then fold ``fold`` of ``folds`` of the rest is
validation: run ``split.fold=0..k-1`` to cross-validate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataError
from shipyard.core.rules import split_kind
from shipyard.core.schema import SplitConf, SplitKind, ThresholdCheckConf

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["check_split_hygiene", "label_mix", "split_frame"]


def _sizes(n: int, split: SplitConf) -> tuple[int, int, int]:
    n_test, n_val = round(n * split.test), round(n * float(split.val or 0))
    if min(n_test, n_val, n - n_test - n_val) < 1:
        raise DataError(
            f"{n} rows give an empty split with fractions train={split.train}, val={split.val}, test={split.test}",
            key="split",
            fix="use more data or larger validation/test fractions",
        )
    return n - n_test - n_val, n_val, n_test


def _random(frame: pd.DataFrame, n_val: int, n_test: int, seed: int, stratify: str | None) -> tuple[Any, Any, Any]:
    from sklearn.model_selection import train_test_split

    rest, test = train_test_split(
        frame, test_size=n_test, random_state=seed, stratify=frame[stratify] if stratify else None
    )
    train, val = train_test_split(
        rest, test_size=n_val, random_state=seed, stratify=rest[stratify] if stratify else None
    )
    return train, val, test


def _group(frame: pd.DataFrame, column: str, split: SplitConf, seed: int) -> tuple[Any, Any, Any]:
    """Whole groups go to one split; group fractions follow the row fractions."""
    import numpy as np

    groups = frame[column].astype(str)
    unique = np.array(sorted(groups.unique()))
    rng = np.random.default_rng(seed)
    rng.shuffle(unique)
    _, n_val, n_test = _sizes(len(unique), split)
    test_g, val_g = set(unique[:n_test]), set(unique[n_test : n_test + n_val])
    in_test, in_val = groups.isin(test_g), groups.isin(val_g)
    return frame[~in_test & ~in_val], frame[in_val], frame[in_test]


def _time(frame: pd.DataFrame, column: str, n_train: int, n_val: int) -> tuple[Any, Any, Any]:
    import pandas as pd

    try:
        order = pd.to_datetime(frame[column], utc=True).argsort(kind="stable")
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"time column {column!r} does not parse as dates/times", key="split.time_column", fix="use ISO dates"
        ) from exc
    ordered = frame.iloc[order.to_numpy()]
    return ordered.iloc[:n_train], ordered.iloc[n_train : n_train + n_val], ordered.iloc[n_train + n_val :]


def _kfold(frame: pd.DataFrame, split: SplitConf, target: str, task: str, seed: int) -> tuple[Any, Any, Any]:
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    folds, fold = split.folds, split.fold
    stratify = frame[target] if task != "regression" else None
    rest, test = train_test_split(frame, test_size=split.test, random_state=seed, stratify=stratify)
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed)
        if task != "regression"
        else KFold(folds, shuffle=True, random_state=seed)
    )
    labels = rest[target] if task != "regression" else None
    train_idx, val_idx = list(splitter.split(rest, labels))[fold]
    return rest.iloc[train_idx], rest.iloc[val_idx], test


def check_split_hygiene(parts: dict[str, pd.DataFrame], key: str, group: str | None) -> None:
    """No row (by key) and no group in two splits; raises naming the overlap."""
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for column, what in ((key, "row"), (group, "group")):
                if column is None:
                    continue
                shared = set(parts[a][column].astype(str)) & set(parts[b][column].astype(str))
                if shared:
                    raise DataError(
                        f"split hygiene: {len(shared)} {what}(s) appear in both {a} and {b}, e.g. {sorted(shared)[:3]}",
                        key=column,
                        fix="deduplicate the key column" if what == "row" else "use split=group with this group column",
                    )


def split_frame(
    frame: pd.DataFrame, split: SplitConf, target: str, task: str, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Split ``frame`` into train, validation and test frames plus a manifest (with the label
    mix of each split: :func:`label_mix`)."""
    kind = split_kind(split, task)
    key = str(frame.columns[0])
    try:
        if kind == SplitKind.kfold:
            parts = _kfold(frame, split, target, task, seed)
        elif kind == SplitKind.group:
            parts = _group(frame, str(split.group_column), split, seed)
        else:
            n_train, n_val, n_test = _sizes(len(frame), split)
            if kind == SplitKind.time:
                parts = _time(frame, str(split.time_column), n_train, n_val)
            else:
                parts = _random(frame, n_val, n_test, seed, target if kind == SplitKind.stratified else None)
    except ValueError as exc:
        raise DataError(
            f"cannot split the data: {exc}",
            key="split",
            fix="use split=random, or larger fractions so every class fits in every split",
        ) from exc
    named = {
        name: p.sort_values(key).reset_index(drop=True) for name, p in zip(("train", "val", "test"), parts, strict=True)
    }
    if any(len(p) == 0 for p in named.values()):
        empty = [n for n, p in named.items() if len(p) == 0]
        raise DataError(
            f"the {empty[0]} split is empty", key="split", fix="use more data, more groups or larger fractions"
        )
    group = split.group_column if kind == SplitKind.group else None
    check_split_hygiene(named, key, group)
    manifest = {
        "kind": str(kind),
        "seed": seed,
        "key": key,
        "group_column": group,
        "time_column": split.time_column if kind == SplitKind.time else None,
        "counts": {name: len(p) for name, p in named.items()},
        "keys": {name: p[key].tolist() for name, p in named.items()},
    }
    if kind == SplitKind.time:
        column = str(split.time_column)
        manifest["time_ranges"] = {n: [str(p[column].min()), str(p[column].max())] for n, p in named.items()}
    manifest["labels"] = _labels(named, target, task)
    return named["train"], named["val"], named["test"], manifest


def _labels(parts: dict[str, pd.DataFrame], target: str, task: str) -> dict[str, Any]:
    """Class counts per split (classification) or the target's mean, spread and range per split."""
    if task == "regression":
        return {
            name: {
                "mean": float(p[target].mean()),
                "std": float(p[target].std(ddof=0)),
                "min": float(p[target].min()),
                "max": float(p[target].max()),
            }
            for name, p in parts.items()
        }
    classes = sorted({str(v) for p in parts.values() for v in p[target].unique()})
    return {name: {c: int((p[target].astype(str) == c).sum()) for c in classes} for name, p in parts.items()}


def label_mix(manifest: dict[str, Any], task: str, rule: ThresholdCheckConf) -> list[dict[str, Any]]:
    """Problems with the label mix of a split: a class with no row in validation or test (its
    metrics there are undefined), or a class whose share differs from its training share by more
    than ``rule.threshold`` (a time split across a shift in labels)."""
    if task == "regression" or rule.threshold is None:
        return []
    labels = manifest["labels"]
    problems: list[dict[str, Any]] = []
    train = labels["train"]
    train_total = max(sum(train.values()), 1)
    for name in ("val", "test"):
        counts = labels[name]
        total = max(sum(counts.values()), 1)
        for cls, n in counts.items():
            in_train = train.get(cls, 0) / train_total
            if n == 0:
                problems.append(
                    {
                        "check": "class missing from a split",
                        "column": name,
                        "observed": f"class {cls!r}: 0 rows in {name} ({train.get(cls, 0)} in train)",
                        "expected": "every class in every split",
                    }
                )
            elif abs(n / total - in_train) > rule.threshold:
                problems.append(
                    {
                        "check": "label mix shifts between splits",
                        "column": name,
                        "observed": f"class {cls!r}: {n / total:.1%} of {name}, {in_train:.1%} of train",
                        "expected": f"within {rule.threshold:.0%} of the training share",
                    }
                )
    return problems
