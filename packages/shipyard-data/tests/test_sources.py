"""SQL (a real SQLite file), image folders and generated example data."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from shipyard.core.compose import section
from shipyard.core.errors import DataError
from shipyard.core.schema import DataConf, SourceConf
from shipyard.data.sources import fetch_raw as _fetch_raw
from shipyard.data.sources import ingest as _ingest


# The layer functions take typed sections; these tests spell configs as plain data.
def ingest(data: Any, root: Path, aux: list[str] | None = None) -> pd.DataFrame:
    return _ingest(section(DataConf, data, "data"), root, aux)


def fetch_raw(source: Any, root: Path) -> Path | None:
    return _fetch_raw(section(SourceConf, source, "data.source"), root)


def _db(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "shop.db") as con:
        pd.DataFrame({"id": [1, 2, 3, 4], "amount": [1.0, 2.5, 3.0, 4.5], "label": [0, 1, 0, 1]}).to_sql("orders", con)


def test_sql_query_and_table(tmp_path: Path) -> None:
    _db(tmp_path)
    query = {
        "kind": "sql",
        "url": "sqlite:///shop.db",
        "query": "SELECT id, amount, label FROM orders WHERE amount > 1",
    }
    out = ingest({"source": query, "target": "label", "key": "id"}, tmp_path)
    assert list(out.columns) == ["id", "amount", "label"] and len(out) == 3
    table = ingest(
        {
            "source": {"kind": "sql", "url": "sqlite:///shop.db", "table": "orders"},
            "target": "label",
            "key": "id",
            "drop": ["index"],
        },
        tmp_path,
    )
    assert len(table) == 4


def test_bad_sql_and_unreachable_database(tmp_path: Path) -> None:
    _db(tmp_path)
    with pytest.raises(DataError, match="the SQL query failed: .*no such table: nope"):
        ingest(
            {"source": {"kind": "sql", "url": "sqlite:///shop.db", "query": "SELECT * FROM nope"}, "target": "label"},
            tmp_path,
        )
    with pytest.raises(DataError, match="cannot reach the database"):
        ingest(
            {
                "source": {"kind": "sql", "url": f"sqlite:///{tmp_path}/no/such/dir/x.db", "table": "t"},
                "target": "label",
            },
            tmp_path,
        )
    with pytest.raises(DataError, match="SQLite database missing.db does not exist"):
        ingest({"source": {"kind": "sql", "url": "sqlite:///missing.db", "table": "t"}, "target": "label"}, tmp_path)


def test_image_folder(tmp_path: Path) -> None:
    for label, value in (("cat", 0), ("dog", 255)):
        (tmp_path / "img" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((10, 12), value, dtype=np.uint8)).save(tmp_path / "img" / label / f"{i}.png")
    out = ingest(
        {"source": {"kind": "images", "path": "img"}, "target": "label", "key": "path", "shape": [1, 4, 4]}, tmp_path
    )
    assert out.shape == (6, 1 + 16 + 1)
    assert out["path"].iloc[0] == "cat/0.png"
    assert out.loc[out["label"] == "dog", "pixel_0"].eq(1.0).all()
    (tmp_path / "img" / "dog" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"image img/dog/broken\.png cannot be decoded"):
        ingest(
            {"source": {"kind": "images", "path": "img"}, "target": "label", "key": "path", "shape": [1, 4, 4]},
            tmp_path,
        )


@pytest.mark.parametrize("name", ["churn", "demand"])
def test_synthetic_examples_are_reproducible(tmp_path: Path, name: str) -> None:
    source = {"kind": "csv", "path": f"{name}.csv", "fetch": f"synthetic:{name}"}
    first = fetch_raw(source, tmp_path)
    assert first is not None
    content = first.read_bytes()
    first.unlink()
    fetch_raw(source, tmp_path)
    assert first.read_bytes() == content
    frame = pd.read_csv(first)
    assert frame.isna().any().any() == (name == "churn")
