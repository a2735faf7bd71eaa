"""Splits never leak rows or groups, hold their fractions, and preprocessing sees train only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shipyard.core.compose import section
from shipyard.core.errors import DataError
from shipyard.core.features import Preprocessor
from shipyard.core.schema import PreprocessConf, SplitConf, SplitKind
from shipyard.data.preprocess import fit_preprocessor as _fit
from shipyard.data.split import check_split_hygiene, split_frame


def frame(n: int, groups: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return pd.DataFrame(
        {
            "row_id": range(n),
            "x": rng.normal(size=n),
            "colour": rng.choice(["a", "b", "c"], n),
            "y": np.arange(n) % 2,
            "customer": [f"c{i % groups}" for i in range(n)],
            "when": pd.date_range("2024-01-01", periods=n, freq="h").strftime("%Y-%m-%d %H:%M")[rng.permutation(n)],
        }
    )


def fit_preprocessor(train: pd.DataFrame, data: Any, prep: Any, task: str, aux: list[str] | None = None) -> Any:
    return _fit(train, data["target"], data.get("shape"), section(PreprocessConf, prep, "preprocess"), task, aux)


def conf(kind: str, val: float, test: float, **extra: Any) -> SplitConf:
    if kind == "kfold":  # a k-fold split declares k and the test fraction only
        return SplitConf(kind=SplitKind.kfold, train=None, val=None, test=test, **extra)
    return SplitConf(kind=SplitKind(kind), train=1 - val - test, val=val, test=test, **extra)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=60, max_value=300),
    val=st.floats(min_value=0.05, max_value=0.25),
    test=st.floats(min_value=0.05, max_value=0.25),
    kind=st.sampled_from(["random", "stratified", "group", "time", "kfold"]),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_no_split_kind_leaks_a_row_or_group(n: int, val: float, test: float, kind: str, seed: int) -> None:
    data = frame(n)
    extra = {"group_column": "customer", "time_column": "when", "folds": 4, "fold": seed % 4}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train, val_, test_, manifest = split_frame(data, conf(kind, val, test, **extra), "y", "binary", seed)
    parts = {"train": train, "val": val_, "test": test_}
    rows = [set(p["row_id"]) for p in parts.values()]
    assert sum(map(len, rows)) == n and set().union(*rows) == set(range(n))
    if kind == "group":
        groups = [set(p["customer"]) for p in parts.values()]
        assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    elif kind == "time":
        assert train["when"].max() < val_["when"].min() and val_["when"].max() < test_["when"].min()
        assert abs(len(val_) - n * val) <= 1 and abs(len(test_) - n * test) <= 1
    elif kind == "kfold":
        assert abs(len(test_) - n * test) <= 1
    else:
        assert abs(len(val_) - n * val) <= 1 and abs(len(test_) - n * test) <= 1
    assert manifest["counts"] == {k: len(p) for k, p in parts.items()}


def test_hygiene_check_names_the_overlap() -> None:
    a = pd.DataFrame({"k": [1, 2], "g": ["x", "y"]})
    b = pd.DataFrame({"k": [3, 4], "g": ["y", "z"]})
    check_split_hygiene({"train": a, "val": a.assign(k=[5, 6])}, "k", None)
    with pytest.raises(DataError, match="1 group"):
        check_split_hygiene({"train": a, "val": b}, "k", "g")
    with pytest.raises(DataError, match="2 row"):
        check_split_hygiene({"train": a, "test": a}, "k", None)


def test_too_few_groups_is_a_data_error() -> None:
    with pytest.raises(DataError, match="test split is empty|empty split"):
        split_frame(frame(60, groups=2), conf("group", 0.15, 0.15, group_column="customer"), "y", "binary", 0)


@pytest.mark.parametrize("kind", ["random", "stratified", "group", "time", "kfold"])
def test_preprocessing_state_ignores_validation_and_test_rows(kind: str) -> None:
    data = frame(200)
    split = conf(kind, 0.15, 0.15, group_column="customer", time_column="when", folds=4, fold=1)
    aux = ["customer", "when"]
    prep = {"numeric": "standard", "impute": "median", "categorical": "onehot"}
    train, val, test, _ = split_frame(data, split, "y", "binary", 3)
    before = fit_preprocessor(train, {"target": "y"}, prep, "binary", aux)
    held_out = set(val["row_id"]) | set(test["row_id"])
    changed = data.copy()
    mask = changed["row_id"].isin(held_out)
    changed.loc[mask, "x"] = changed.loc[mask, "x"] * 1000 + 7
    changed.loc[mask, "colour"] = "never-seen-in-train"
    train2, *_ = split_frame(changed, split, "y", "binary", 3)
    assert fit_preprocessor(train2, {"target": "y"}, prep, "binary", aux) == before
    assert "never-seen-in-train" not in Preprocessor.from_state(before).categorical["colour"]


@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_categorical_encoding_and_unseen_values(encoding: str) -> None:
    train = pd.DataFrame(
        {"row_id": range(4), "n": [1.0, np.nan, 3.0, 5.0], "c": ["a", "b", None, "a"], "y": [0, 1, 0, 1]}
    )
    state = fit_preprocessor(
        train, {"target": "y"}, {"numeric": "none", "impute": "median", "categorical": encoding}, "binary"
    )
    pre = Preprocessor.from_state(state)
    assert pre.categorical == {"c": ["a", "b"]}
    out = pre.transform({"n": [np.nan, 2.0], "c": ["b", "zzz"]})
    if encoding == "onehot":
        np.testing.assert_array_equal(out, [[3.0, 0.0, 1.0], [2.0, 0.0, 0.0]])  # median 3 fills; unseen -> zeros
    else:
        np.testing.assert_array_equal(out, [[3.0, 1.0], [2.0, -1.0]])
    assert pre.n_features == out.shape[1]


def test_too_many_categories_is_an_error() -> None:
    train = pd.DataFrame({"row_id": range(60), "c": [f"v{i}" for i in range(60)], "y": [0, 1] * 30})
    with pytest.raises(DataError, match="60 categories"):
        fit_preprocessor(train, {"target": "y"}, {"numeric": "standard", "max_categories": 50}, "binary")
