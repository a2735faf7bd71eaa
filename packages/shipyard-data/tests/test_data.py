from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shipyard.core.compose import section
from shipyard.core.errors import ConfigError, DataError
from shipyard.core.features import Preprocessor
from shipyard.core.schema import DataConf, PreprocessConf, SourceConf, SplitConf, SplitKind
from shipyard.data import fetch_raw as _fetch_raw
from shipyard.data import fit_preprocessor as _fit
from shipyard.data import ingest as _ingest
from shipyard.data import split_frame


# The layer functions take typed sections; these tests spell configs as plain data.
def ingest(data: Any, root: Path, aux: list[str] | None = None) -> pd.DataFrame:
    return _ingest(section(DataConf, data, "data"), root, aux)


def fetch_raw(source: Any, root: Path) -> Path | None:
    return _fetch_raw(section(SourceConf, source, "data.source"), root)


def fit_preprocessor(train: pd.DataFrame, data: Any, prep: Any, task: str, aux: list[str] | None = None) -> Any:
    return _fit(train, data["target"], data.get("shape"), section(PreprocessConf, prep, "preprocess"), task, aux)


def _csv(tmp_path: Path, frame: pd.DataFrame) -> dict[str, object]:
    frame.to_csv(tmp_path / "d.csv", index=False)
    return {"source": {"kind": "csv", "path": "d.csv"}, "target": "y", "key": None, "features": None, "drop": []}


def _frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "y": np.arange(n) % 2})


def test_ingest_orders_key_features_target(tmp_path: Path) -> None:
    out = ingest(_csv(tmp_path, _frame()), tmp_path)
    assert list(out.columns) == ["row_id", "a", "b", "y"]
    assert out["row_id"].tolist() == list(range(40))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": "label"}, "target column 'label' is not in the data"),
        ({"key": "id"}, "key column 'id' is not in the data"),
        ({"features": ["a", "c"]}, "feature column 'c' is not in the data"),
        ({"source": {"kind": "csv", "path": "missing.csv"}}, "data file missing.csv does not exist"),
        ({"source": {"kind": "xlsx", "path": "d.csv"}}, "data.source.kind: 'xlsx' is not allowed"),
        ({"source": {"kind": "sklearn", "name": "iriss"}}, 'did you mean "iris"'),
    ],
)
def test_ingest_errors_name_the_problem(tmp_path: Path, change: dict[str, object], message: str) -> None:
    data = {**_csv(tmp_path, _frame()), **change}
    with pytest.raises((ConfigError, DataError), match=message.replace("(", r"\(")):
        ingest(data, tmp_path)


def test_unreadable_and_non_numeric_files(tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"cannot read parquet file bad\.parquet"):
        ingest({"source": {"kind": "parquet", "path": "bad.parquet"}, "target": "y"}, tmp_path)
    # A date/time column is a feature the preprocessing expands into numeric parts.
    frame = _frame().assign(c=pd.Timestamp("2024-01-01"))
    frame.to_parquet(tmp_path / "t.parquet")
    out = ingest({"source": {"kind": "parquet", "path": "t.parquet"}, "target": "y"}, tmp_path)
    assert pd.api.types.is_datetime64_any_dtype(out["c"])
    frame = _frame().assign(id=1)
    with pytest.raises(DataError, match="key column 'id' is not unique"):
        ingest({**_csv(tmp_path, frame), "key": "id"}, tmp_path)


def test_fetch_writes_the_same_bytes_every_time(tmp_path: Path) -> None:
    source = {"kind": "csv", "path": "raw/bc.csv", "fetch": "sklearn:breast_cancer"}
    first = fetch_raw(source, tmp_path)
    assert first is not None
    content = first.read_bytes()
    first.unlink()
    fetch_raw(source, tmp_path)
    assert first.read_bytes() == content
    assert fetch_raw(source, tmp_path) is None, "an existing file is left alone"


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(min_value=30, max_value=400),
    val=st.floats(min_value=0.05, max_value=0.3),
    test=st.floats(min_value=0.05, max_value=0.3),
    kind=st.sampled_from(["random", "stratified"]),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_splits_never_share_a_row_and_hold_their_fractions(
    n: int, val: float, test: float, kind: str, seed: int
) -> None:
    frame = pd.DataFrame({"row_id": range(n), "a": np.arange(n, dtype=float), "y": np.arange(n) % 2})
    split = SplitConf(kind=SplitKind(kind), train=1 - val - test, val=val, test=test)
    train_, val_, test_, manifest = split_frame(frame, split, "y", "binary", seed)
    keys = [set(p["row_id"]) for p in (train_, val_, test_)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert set().union(*keys) == set(range(n))
    assert abs(len(val_) - n * val) <= 1 and abs(len(test_) - n * test) <= 1
    assert manifest["keys"]["test"] == sorted(keys[2])


def test_split_is_seeded() -> None:
    frame = pd.DataFrame({"row_id": range(100), "y": np.arange(100) % 2})
    conf = SplitConf(kind=SplitKind.stratified)
    a = split_frame(frame, conf, "y", "binary", 1)[3]
    b = split_frame(frame, conf, "y", "binary", 1)[3]
    c = split_frame(frame, conf, "y", "binary", 2)[3]
    assert a == b and a != c


def test_too_few_rows_for_a_split_is_a_data_error() -> None:
    frame = pd.DataFrame({"row_id": range(5), "y": [0.1, 0.2, 0.3, 0.4, 0.5]})
    with pytest.raises(DataError, match="empty split"):
        split_frame(frame, SplitConf(kind=SplitKind.random, train=0.9, val=0.05, test=0.05), "y", "regression", 0)


def test_preprocessing_is_fitted_on_the_training_rows_only() -> None:
    train = pd.DataFrame({"row_id": [0, 1, 2, 3], "a": [0.0, 2.0, np.nan, 4.0], "y": ["n", "y", "n", "y"]})
    state = fit_preprocessor(train, {"target": "y"}, {"numeric": "standard"}, "binary")
    pre = Preprocessor.from_state(state)
    assert pre.features == ["a"] and pre.classes == ["n", "y"]
    assert pre.fill == [2.0]  # the training median fills holes
    np.testing.assert_allclose(pre.mean, [2.0])
    with pytest.raises(DataError, match="binary task needs 2 classes"):
        fit_preprocessor(train.assign(y=["a", "b", "c", "a"]), {"target": "y"}, {"numeric": "standard"}, "binary")
