"""Data mistakes that used to cost minutes or go unnoticed, through the real CLI and DVC.

Each drill crafts one hostile source in a throwaway repository and trains on it: the run must
stop in ingest with exit code 2 and one message naming the file (and column) and the fix, before
any later stage runs, and must leave every file it did not create as it was.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from .conftest import Repo, make_repo

pytestmark = [pytest.mark.drill, pytest.mark.slow]

BC = "tabular/breast_cancer"
CSV = ("data.source.kind=csv", "data.source.fetch=null", "data.target=target")


def _bomb_png(path: Path, side: int) -> None:
    """A PNG that declares side x side pixels in a few bytes, as a decompression bomb does."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    repo = make_repo(tmp_path_factory.mktemp("drills") / "repo")
    raw = repo.path / "data" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.integers(0, 500, n)})
    frame["target"] = (frame["a"] + rng.normal(size=n) > 0).astype(int)
    bad = frame.copy()
    bad.loc[[5, 77], "b"] = [np.inf, -np.inf]
    bad.to_csv(raw / "inf.csv", index=False)
    bad = frame.astype({"c": object})
    bad.loc[[3, 9, 200], "c"] = ["abc", "?", "12,5"]
    bad.to_csv(raw / "words.csv", index=False)
    text = frame.to_csv(index=False)
    (raw / "dup.csv").write_text(text.replace("a,b,c,target", "a,b,a,target", 1))
    (raw / "semicolon.csv").write_text(text.replace(",", ";"))
    (raw / "empty.csv").write_text("")
    (raw / "header.csv").write_text("a,b,c,target\n")
    (raw / "binary.csv").write_bytes(zlib.compress(text.encode()))
    with sqlite3.connect(raw / "shop.db") as con:
        frame.to_sql("rows", con, index=False)
    for label in ("a", "b"):
        (raw / "img" / label).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(raw / "img" / label / "ok.png")
    _bomb_png(raw / "img" / "b" / "bomb.png", 20_000)
    return repo


SQL = ("data.source.kind=sql", "data.source.path=null", "data.source.fetch=null", "data.target=target")
IMAGES = (
    "data.source.kind=images",
    "data.source.path=data/raw/img",
    "data.source.fetch=null",
    "data.target=label",
    "data.key=path",
    "data.shape=[1,8,8]",
)

# name: (overrides, the file the message names, what it says, what the fix says)
DRILLS: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "infinite values": (
        (*CSV, "data.source.path=data/raw/inf.csv"),
        "data/raw/inf.csv",
        "column 'b' of data/raw/inf.csv holds 2 infinite value(s): inf (line 7), -inf (line 79)",
        "replace them with finite numbers",
    ),
    "words in a numeric column": (
        (*CSV, "data.source.path=data/raw/words.csv"),
        "data/raw/words.csv",
        "column 'c' of data/raw/words.csv holds numbers (397) and 3 value(s) that are not: "
        "'abc' (line 5), '?' (line 11), '12,5' (line 202)",
        "make every value of 'c' a number",
    ),
    "repeated header": (
        (*CSV, "data.source.path=data/raw/dup.csv"),
        "data/raw/dup.csv",
        "data file data/raw/dup.csv has the column header 'a' 2 times (columns 1 and 3)",
        "rename or remove the repeated column",
    ),
    "semicolon-separated": (
        (*CSV, "data.source.path=data/raw/semicolon.csv"),
        "data/raw/semicolon.csv",
        "data file data/raw/semicolon.csv reads as one column 'a;b;c;target': its values are separated by ';'",
        "save the file with commas",
    ),
    "empty file": (
        (*CSV, "data.source.path=data/raw/empty.csv"),
        "data/raw/empty.csv",
        "data file data/raw/empty.csv is empty",
        "write a header line and rows",
    ),
    "header only": (
        (*CSV, "data.source.path=data/raw/header.csv"),
        "data/raw/header.csv",
        "data file data/raw/header.csv has column headers but no rows",
        "add the data rows",
    ),
    "binary file": (
        (*CSV, "data.source.path=data/raw/binary.csv"),
        "data/raw/binary.csv",
        "data file data/raw/binary.csv is not UTF-8 text",
        "export the data as a UTF-8 CSV file",
    ),
    "zero-row query": (
        (*SQL, "data.source.url=sqlite:///data/raw/shop.db", "data.source.query='SELECT * FROM rows WHERE a > 99'"),
        "sqlite:///data/raw/shop.db",
        "the SQL query on sqlite:///data/raw/shop.db returned no rows",
        "check the query's table and WHERE clause",
    ),
    "decompression bomb": (
        IMAGES,
        "data/raw/img/b/bomb.png",
        "image data/raw/img/b/bomb.png is too large to decode safely (a decompression bomb?)",
        "replace it with a smaller image",
    ),
}


def _snapshot(root: Path) -> dict[str, str]:
    """Every file Shipyard did not create for this run (its compiled pipeline, its run lock and
    DVC's scratch space are its own), with a hash of its content."""
    own = ("pipelines/", ".dvc/tmp/", ".git/")
    return {
        rel: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file() and not (rel := p.relative_to(root).as_posix()).startswith(own) and p.name != ".shipyard.lock"
    }


@pytest.mark.parametrize("drill", list(DRILLS))
def test_hostile_source_stops_ingest_with_one_named_error(repo: Repo, drill: str) -> None:
    """Fault: a hostile data source (see DRILLS). Must: exit 2 in ingest, one message naming
    the file and the fix, no traceback, no stage after ingest, nothing else touched."""
    overrides, where, message, fix = DRILLS[drill]
    before = _snapshot(repo.path)
    ran, proc = repo.train(BC, *overrides, check=False)
    err = proc.stderr
    assert proc.returncode == 2, err
    assert ran == ["ingest"], err
    assert f"data error: {message}" in err, err
    assert f"\n  in: {where}\n" in err and f"\n  fix: {fix}" in err, err
    assert err.count("data error:") == 1 and "Traceback" not in err and "internal error" not in err, err
    assert _snapshot(repo.path) == before, "the run wrote or changed files it does not own"
    assert not (repo.data(BC) / "02_intermediate" / "dataset.parquet").exists()
