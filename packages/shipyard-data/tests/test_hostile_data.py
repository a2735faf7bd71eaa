"""Hostile data files: each mistake is one DataError (exit code 2) that names the file, the
column and the fix, raised by ingest before anything trains."""

from __future__ import annotations

import sqlite3
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from shipyard.core.compose import section
from shipyard.core.errors import DataError
from shipyard.core.schema import DataConf
from shipyard.data.checks import non_finite_values, non_numeric_values
from shipyard.data.sources import ingest as _ingest


# The layer functions take typed sections; these tests spell configs as plain data.
def ingest(data: Any, root: Path, aux: list[str] | None = None) -> pd.DataFrame:
    return _ingest(section(DataConf, data, "data"), root, aux)


def _frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 500, n), "target": np.arange(n) % 2})


def _csv(tmp_path: Path, text: str | bytes, name: str = "x.csv") -> dict[str, Any]:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return {"source": {"kind": "csv", "path": name}, "target": "target"}


def _error(data: dict[str, Any], root: Path) -> DataError:
    with pytest.raises(DataError) as info:
        ingest(data, root)
    assert info.value.exit_code == 2
    assert info.value.fix, "every data error says how to fix it"
    return info.value


def test_infinite_feature_names_column_count_and_lines(tmp_path: Path) -> None:
    frame = _frame()
    frame["a"] = frame["a"].astype(float)
    frame.loc[[5, 30], "a"] = [np.inf, -np.inf]
    frame.to_csv(tmp_path / "x.csv", index=False)
    err = _error({"source": {"kind": "csv", "path": "x.csv"}, "target": "target"}, tmp_path)
    assert err.message == "column 'a' of x.csv holds 2 infinite value(s): inf (line 7), -inf (line 32)"
    assert err.where == "x.csv" and "leave the cells empty" in (err.fix or "")


def test_infinite_written_as_text_and_in_the_target(tmp_path: Path) -> None:
    data = _csv(tmp_path, "a,target\n1,0\nInfinity,1\n3,0\n4,1\n")
    assert "column 'a' of x.csv holds 1 infinite value(s): inf (line 3)" in _error(data, tmp_path).message
    data = _csv(tmp_path, "a,target\n1,0\n2,1.5\n3,inf\n", name="y.csv")
    err = _error(data, tmp_path)
    assert err.message == "target column 'target' of y.csv holds 1 infinite value(s): inf (line 4)"
    assert err.key == "data.target"


def test_infinite_in_parquet_counts_rows_from_one(tmp_path: Path) -> None:
    frame = _frame()
    frame["a"] = frame["a"].astype(float)
    frame.loc[0, "a"] = np.inf
    frame.to_parquet(tmp_path / "x.parquet")
    err = _error({"source": {"kind": "parquet", "path": "x.parquet"}, "target": "target"}, tmp_path)
    assert err.message == "column 'a' of x.parquet holds 1 infinite value(s): inf (row 1)"
    frame["b"] = frame["b"].astype(float)
    frame.loc[9, "b"] = -np.inf
    frame.to_parquet(tmp_path / "x.parquet")
    err = _error({"source": {"kind": "parquet", "path": "x.parquet"}, "target": "target"}, tmp_path)
    assert err.message == "column 'a' of x.parquet holds 1 infinite value(s): inf (row 1); so do columns 'b'"


def test_missing_values_are_not_infinite() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0], "flag": [True, False, True], "c": ["x", "y", "z"]})
    assert non_finite_values(frame, ["a", "flag", "c"]) == {}


def test_words_in_a_numeric_column_are_named_with_their_lines(tmp_path: Path) -> None:
    frame = _frame(60).astype({"b": object})
    frame.loc[[3, 9, 50, 55], "b"] = ["abc", "?", "12,5", "x"]
    frame.to_csv(tmp_path / "x.csv", index=False)
    err = _error({"source": {"kind": "csv", "path": "x.csv"}, "target": "target"}, tmp_path)
    assert err.message == (
        "column 'b' of x.csv holds numbers (56) and 4 value(s) that are not: "
        "'abc' (line 5), '?' (line 11), '12,5' (line 52) and 1 more"
    )
    assert "data.drop" in (err.fix or "")


def test_a_categorical_column_is_not_mistaken_for_a_numeric_one() -> None:
    # Mostly words with a few numbers: a categorical. Numbers with "n/a" text: missing values.
    words = pd.DataFrame({"c": ["red", "blue", "green"] * 10 + ["7"]})
    assert non_numeric_values(words, ["c"]) == {}
    codes = pd.DataFrame({"c": ["1", "2", "n/a", "NaN", None, "3"] * 5})
    assert non_numeric_values(codes, ["c"]) == {}


def test_repeated_csv_header_is_refused_not_renamed(tmp_path: Path) -> None:
    data = _csv(tmp_path, "age,b,age,target\n1,2,3,0\n4,5,6,1\n")
    err = _error(data, tmp_path)
    assert err.message == "data file x.csv has the column header 'age' 2 times (columns 1 and 3)"
    assert err.where == "x.csv" and "rename or remove" in (err.fix or "")


def test_repeated_parquet_and_sql_columns_are_refused(tmp_path: Path) -> None:
    table = pa.table([pa.array([1, 2]), pa.array([3, 4]), pa.array([0, 1])], names=["a", "a", "target"])
    pq.write_table(table, tmp_path / "x.parquet")
    err = _error({"source": {"kind": "parquet", "path": "x.parquet"}, "target": "target"}, tmp_path)
    assert err.message == "parquet file x.parquet has the column 'a' 2 times"
    with sqlite3.connect(tmp_path / "db.sqlite") as con:
        pd.DataFrame({"a": [1.0, 2.0], "target": [0, 1]}).to_sql("t", con, index=False)
    source = {"kind": "sql", "url": "sqlite:///db.sqlite", "query": "SELECT a, a, target FROM t"}
    err = _error({"source": source, "target": "target"}, tmp_path)
    assert err.message == "sqlite:///db.sqlite gives the column 'a' more than once"
    assert "AS" in (err.fix or "")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "data file x.csv is empty"),
        (b"\n\n\n", "data file x.csv is empty"),
        (b"a,b,target\n", "data file x.csv has column headers but no rows"),
        (
            b"a;b;target\n1;2;0\n3;4;1\n",
            "data file x.csv reads as one column 'a;b;target': its values are separated by ';'",
        ),
        (b"a\tb\ttarget\n1\t2\t0\n", "its values are separated by tab, not commas"),
        (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xf6\xa4", "data file x.csv is not UTF-8 text (byte 0xf6"),
        (b"a,b,target\n1,2,0\n1,2,3,4,5\n", "cannot read csv file x.csv: Error tokenizing data"),
    ],
    ids=["empty", "blank lines", "header only", "semicolons", "tabs", "binary", "ragged"],
)
def test_hostile_csv_files(tmp_path: Path, content: bytes, message: str) -> None:
    err = _error(_csv(tmp_path, content), tmp_path)
    assert err.message.startswith(message) or message in err.message, err.message
    assert err.where == "x.csv"


def test_zero_rows_from_parquet_and_sql(tmp_path: Path) -> None:
    _frame().head(0).to_parquet(tmp_path / "x.parquet")
    err = _error({"source": {"kind": "parquet", "path": "x.parquet"}, "target": "target"}, tmp_path)
    assert err.message == "data file x.parquet has column headers but no rows"
    with sqlite3.connect(tmp_path / "db.sqlite") as con:
        _frame().to_sql("t", con, index=False)
    source = {"kind": "sql", "url": "sqlite:///db.sqlite", "query": "SELECT * FROM t WHERE a > 100"}
    err = _error({"source": source, "target": "target"}, tmp_path)
    assert err.message == "the SQL query on sqlite:///db.sqlite returned no rows"
    assert err.key == "data.source.query" and err.value == "SELECT * FROM t WHERE a > 100"
    with sqlite3.connect(tmp_path / "db.sqlite") as con:
        _frame().head(0).to_sql("empty", con, index=False)
    source = {"kind": "sql", "url": "sqlite:///db.sqlite", "table": "empty"}
    err = _error({"source": source, "target": "target"}, tmp_path)
    assert err.message == "the SQL table on sqlite:///db.sqlite returned no rows" and err.key == "data.source.table"
    (tmp_path / "garbage.parquet").write_bytes(b"\x00\x01 not parquet")
    err = _error({"source": {"kind": "parquet", "path": "garbage.parquet"}, "target": "target"}, tmp_path)
    assert err.message.startswith("cannot read parquet file garbage.parquet")


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG that declares width x height pixels in a few bytes, as a decompression bomb does."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [20_000, 10_000], ids=["bomb error", "bomb warning"])
def test_decompression_bomb_names_the_image(tmp_path: Path, side: int) -> None:
    for label in ("a", "b"):
        (tmp_path / "img" / label).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "img" / label / "ok.png")
    _png_header(tmp_path / "img" / "b" / "huge.png", side, side)
    data = {"source": {"kind": "images", "path": "img"}, "target": "label", "key": "path", "shape": [1, 8, 8]}
    err = _error(data, tmp_path)
    assert err.message.startswith("image img/b/huge.png is too large to decode safely (a decompression bomb?)")
    assert err.where == "img/b/huge.png" and "smaller image" in (err.fix or "")
