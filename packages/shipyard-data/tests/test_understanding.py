"""What ingest understands about a table: column roles, dates, free text and identifiers left out
with a named warning, rows without a label, the data report, the split's default and label mix."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shipyard.core.compose import section
from shipyard.core.errors import DataError
from shipyard.core.features import Preprocessor
from shipyard.core.schema import DataConf, PreprocessConf, SplitConf, SplitKind, ThresholdCheckConf
from shipyard.data import fit_preprocessor, split_frame
from shipyard.data.report import profile_lines, split_table
from shipyard.data.roles import infer_role
from shipyard.data.sources import ingest_with_report
from shipyard.data.split import label_mix

N = 120


def _table(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    words = np.array(["great", "slow", "delivery", "broken", "love", "again", "would", "not", "buy", "fine"])
    frame = pd.DataFrame(
        {
            "order_ref": [f"ORD-{i:05d}" for i in range(n)],
            "amount": rng.normal(50, 10, n).round(2),
            "colour": rng.choice(["red", "green", None], n),
            "ordered_at": pd.date_range("2024-01-01", periods=n, freq="19h").strftime("%Y-%m-%dT%H:%M:%S"),
            "review": [" ".join(rng.choice(words, 6)) + f" #{i}" for i in range(n)],
            "y": rng.choice(["no", "yes"], n),
        }
    )
    frame.loc[[3, 7], "amount"] = np.nan
    return frame


def _ingest(tmp_path: Path, frame: pd.DataFrame, **data: object) -> tuple[pd.DataFrame, dict]:
    frame.to_csv(tmp_path / "d.csv", index=False)
    conf = section(DataConf, {"source": {"kind": "csv", "path": "d.csv"}, "target": "y", **data}, "data")
    return ingest_with_report(conf, tmp_path)


def test_roles_are_inferred_with_reasons() -> None:
    frame = _table()
    roles = {c: infer_role(frame[c]).role for c in frame.columns}
    assert roles == {
        "order_ref": "identifier",
        "amount": "numeric",
        "colour": "categorical",
        "ordered_at": "datetime",
        "review": "text",
        "y": "categorical",
    }
    assert infer_role(pd.Series(["a"] * 30)).role == "constant"
    # A few non-dates in a text column: not a date column (it stays categorical or text).
    assert infer_role(pd.Series(["2024-01-01"] * 50 + ["soon"] * 2)).role != "datetime"


def test_text_and_identifier_columns_are_left_out_with_a_named_warning(tmp_path: Path) -> None:
    with pytest.warns(UserWarning) as caught:
        out, report = _ingest(tmp_path, _table())
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("column 'review': left out: free text") and "data.text" in m for m in messages)
    assert any(m.startswith("column 'order_ref': left out: one value per row") for m in messages)
    assert list(out.columns) == ["row_id", "amount", "colour", "ordered_at", "y"]
    assert pd.api.types.is_datetime64_any_dtype(out["ordered_at"])
    # Declared: no warning, and the same columns.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out2, _ = _ingest(tmp_path, _table(), text=["review"], drop=["order_ref"])
    assert list(out2.columns) == list(out.columns)
    profile = {c["name"]: c for c in report["columns"]}
    assert profile["row_id"]["action"].startswith("row key, not a feature (added")
    assert profile["amount"]["nulls"] == 2 and "imputed" in profile["amount"]["action"]
    assert profile["colour"]["role"] == "categorical" and "encoded" in profile["colour"]["action"]
    assert "expanded into year, month, dayofweek" in profile["ordered_at"]["action"]
    assert profile["ordered_at"]["range"][0].startswith("2024-01-01")
    assert profile["review"]["action"].startswith("left out: free text")


def test_features_declared_keep_an_identifier(tmp_path: Path) -> None:
    out, _ = _ingest(tmp_path, _table(), features=["amount", "order_ref"])
    assert list(out.columns) == ["row_id", "amount", "order_ref", "y"]


def test_declared_datetime_must_hold_dates(tmp_path: Path) -> None:
    frame = _table()
    frame.loc[5, "ordered_at"] = "05/03/2024"
    with pytest.raises(DataError, match=r"column 'ordered_at' of .* holds 1 value\(s\) that are not ISO 8601"):
        _ingest(tmp_path, frame, datetime=["ordered_at"], text=["review"], drop=["order_ref"])
    with pytest.raises(DataError, match="data.datetime names 'ordred_at', which is not in the data"):
        _ingest(tmp_path, _table(), datetime=["ordred_at"])


def test_rows_without_a_label_stop_the_run_or_are_dropped_and_counted(tmp_path: Path) -> None:
    frame = _table()
    frame.loc[[0, 9, 10], "y"] = None
    with pytest.raises(DataError, match=r"3 missing value\(s\)") as err:
        _ingest(tmp_path, frame, text=["review"], drop=["order_ref"])
    assert "data.drop_unlabeled" in str(err.value)
    out, report = _ingest(tmp_path, frame, text=["review"], drop=["order_ref"], drop_unlabeled=True)
    assert len(out) == N - 3 and out["y"].notna().all()
    assert (report["rows_read"], report["rows"], report["dropped_unlabeled"]) == (N, N - 3, 3)
    lines = "\n".join(profile_lines({"rows": N - 3, "profile": report["columns"], "ingest": report}))
    assert f"{N} read, {N - 3} kept (3 without a label dropped" in lines


def test_dates_expand_into_numeric_parts_never_one_hot(tmp_path: Path) -> None:
    out, _ = _ingest(tmp_path, _table(), text=["review"], drop=["order_ref"])
    state = fit_preprocessor(out, "y", None, PreprocessConf(), "binary", None, ["year", "dayofweek", "hour_sin"])
    pre = Preprocessor.from_state(state)
    assert pre.datetime == {"ordered_at": ["year", "dayofweek", "hour_sin"]}
    assert "ordered_at" not in pre.categorical
    assert pre.numeric_inputs == ["amount", "ordered_at.year", "ordered_at.dayofweek", "ordered_at.hour_sin"]
    # The raw ISO strings a service receives give the same model input as the parsed column.
    raw = _table().assign(ordered_at=lambda f: f["ordered_at"])
    np.testing.assert_allclose(pre.transform(raw), pre.transform(out), atol=1e-6)


def test_default_split_follows_the_task() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"k": range(200), "x": rng.normal(size=200), "y": rng.normal(size=200)})
    _, _, _, manifest = split_frame(frame, SplitConf(), "y", "regression", 0)
    assert manifest["kind"] == "random" and set(manifest["labels"]["test"]) == {"mean", "std", "min", "max"}
    frame["y"] = rng.choice(["a", "b"], 200, p=[0.8, 0.2])
    _, _, _, manifest = split_frame(frame, SplitConf(), "y", "binary", 0)
    assert manifest["kind"] == "stratified"
    labels = manifest["labels"]
    assert sum(sum(c.values()) for c in labels.values()) == 200
    table = split_table(manifest)
    assert table.startswith("split (stratified)") and "  b  " in table


def test_label_mix_names_a_missing_class_and_a_shift() -> None:
    # Sorted by time, the rare class only occurs early, and "b" grows late: a time split shows both.
    y = ["rare"] * 5 + ["a"] * 115 + ["a"] * 40 + ["b"] * 40
    frame = pd.DataFrame({"k": range(200), "t": range(200), "y": y})
    split = SplitConf(kind=SplitKind.time, time_column="t")
    _, _, _, manifest = split_frame(frame, split, "y", "multiclass", 0)
    problems = label_mix(manifest, "multiclass", ThresholdCheckConf(0.15))
    missing = [p for p in problems if p["check"] == "class missing from a split"]
    assert {p["column"] for p in missing} == {"val", "test"}
    assert "class 'rare': 0 rows in test (5 in train)" in {p["observed"] for p in missing}
    assert any(p["check"] == "label mix shifts between splits" and "'b'" in p["observed"] for p in problems)
    # A stratified split of the same rows has neither problem; regression is never judged.
    _, _, _, manifest = split_frame(frame, SplitConf(), "y", "multiclass", 0)
    assert label_mix(manifest, "multiclass", ThresholdCheckConf(0.15)) == []


def test_a_code_with_more_values_than_max_categories_is_left_out_not_encoded() -> None:
    """Short codes that repeat (an individual's ID seen in two years): too many to encode."""
    codes = pd.Series([f"N{i % 90}A{i % 2}" for i in range(150)])
    role = infer_role(codes, max_categories=50)
    assert role.role == "identifier" and "more than preprocess.max_categories=50" in role.reason
    assert infer_role(pd.Series(["a", "b", "c"] * 50), max_categories=50).role == "categorical"
