"""Data sources: read what a project's ``data.source`` declares into one frame.

The frame that leaves :func:`ingest` has the row key first, the features, then the target, and
nothing else, so later stages never guess at columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.atomic import atomic_path
from shipyard.core.errors import ConfigError, DataError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_KEY", "SKLEARN_SETS", "fetch_raw", "ingest", "read_source"]

DEFAULT_KEY = "row_id"
SKLEARN_SETS = ("breast_cancer", "digits", "iris", "wine", "diabetes")
KINDS = ("csv", "parquet", "sql", "images", "sklearn")


def _sklearn_frame(name: str) -> pd.DataFrame:
    if name not in SKLEARN_SETS:
        raise ConfigError(
            f"unknown scikit-learn data set {name!r}{did_you_mean(name, SKLEARN_SETS)}",
            key="data.source.name",
            value=name,
            fix="use one of: " + ", ".join(SKLEARN_SETS),
        )
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    if name == "digits":
        # sklearn names pixels pixel_<row>_<col>; keep that, it documents the 8x8 layout.
        frame["target"] = frame["target"].astype("int64")
    return frame


def read_source(source: dict[str, Any], root: Path) -> pd.DataFrame:
    """Read a source as declared, with one clear error per way it can fail."""
    import pandas as pd

    kind = source.get("kind")
    if kind not in KINDS:
        raise ConfigError(
            f"unknown data source kind {kind!r}{did_you_mean(str(kind), KINDS)}",
            key="data.source.kind",
            value=kind,
            fix="use one of: " + ", ".join(KINDS),
        )
    if kind == "sklearn":
        return _sklearn_frame(str(source.get("name")))
    if kind == "sql":
        from shipyard.data.sql import read_sql

        return read_sql(source, root)
    if kind == "images":
        from shipyard.data.images import read_image_folder

        return read_image_folder(source, root)
    if not source.get("path"):
        raise ConfigError(f"a {kind} source needs a path", key="data.source.path", fix="set data.source.path")
    path = root / str(source["path"])
    if not path.is_file():
        raise DataError(
            f"data file {source['path']} does not exist",
            where=str(source["path"]),
            fix="create the file, `dvc pull` it, or fix data.source.path",
        )
    try:
        return pd.read_csv(path) if kind == "csv" else pd.read_parquet(path)
    except Exception as exc:
        raise DataError(
            f"cannot read {kind} file {source['path']}: {exc}",
            where=str(source["path"]),
            fix=f"check that the file is valid {kind}",
        ) from exc


def fetch_raw(source: dict[str, Any], root: Path) -> Path | None:
    """Materialise a missing raw file from its declared ``fetch`` (example data sets).

    Writes deterministically (same bytes every time), so the file matches its DVC pointer.
    Returns the written path, or ``None`` when nothing had to be written.
    """
    path = root / str(source.get("path") or "")
    fetch = source.get("fetch")
    if not fetch or not source.get("path") or path.exists():
        return None
    scheme, _, name = str(fetch).partition(":")
    if scheme == "sklearn":
        frame = _sklearn_frame(name)
    elif scheme == "synthetic":
        from shipyard.data.synthetic import generate

        frame = generate(name)
    else:
        raise ConfigError(
            f"unknown fetch scheme {scheme!r}",
            key="data.source.fetch",
            value=fetch,
            fix="use sklearn:<data set> or synthetic:<generator>, or remove fetch and provide the file",
        )
    with atomic_path(path) as tmp:
        if source.get("kind") == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return path


def ingest(data: dict[str, Any], root: Path, aux: list[str] | None = None) -> pd.DataFrame:
    """Read the source and keep the key, the features, the target and the ``aux`` columns
    (a split's group or time column: kept, but not features), in that order."""
    frame = read_source(dict(data["source"], shape=data.get("shape")), root)
    aux = [c for c in (aux or []) if c]
    for column in aux:
        if column not in frame.columns:
            raise DataError(
                f"split column {column!r} is not in the data{did_you_mean(column, list(frame.columns))}",
                key="split",
                value=column,
                fix="name an existing column in split.group_column / split.time_column",
            )
    target, key = data["target"], data.get("key")
    columns = list(frame.columns)
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} is not in the data{did_you_mean(target, columns)}",
            key="data.target",
            value=target,
            fix="set data.target to one of: " + ", ".join(map(str, columns[:20])),
        )
    if key is None:
        key = DEFAULT_KEY
        frame.insert(0, key, range(len(frame)))
    elif key not in frame.columns:
        raise DataError(
            f"key column {key!r} is not in the data{did_you_mean(key, columns)}",
            key="data.key",
            value=key,
            fix="set data.key to a column that identifies rows, or remove it to number rows",
        )
    if frame[key].duplicated().any():
        dup = frame.loc[frame[key].duplicated(), key].iloc[0]
        raise DataError(
            f"key column {key!r} is not unique (e.g. {dup!r} repeats)",
            key="data.key",
            fix="pick a unique key column, or remove data.key to number rows",
        )
    features = data.get("features") or [c for c in columns if c not in {target, key, *aux, *data.get("drop", [])}]
    unknown = [c for c in features if c not in frame.columns]
    if unknown:
        raise DataError(
            f"feature column {unknown[0]!r} is not in the data{did_you_mean(unknown[0], columns)}",
            key="data.features",
            value=unknown[0],
            fix="list only existing columns in data.features",
        )
    import pandas as pd

    for column in features:
        dtype = frame[column].dtype
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            raise DataError(
                f"feature column {column!r} holds dates/times (dtype {dtype})",
                key="data.features",
                value=column,
                fix="use it as split.time_column, derive numeric features from it, or drop it with data.drop",
            )
    if frame[target].isna().any():
        raise DataError(
            f"target column {target!r} has {int(frame[target].isna().sum())} missing value(s)",
            key="data.target",
            fix="remove rows without a label before training",
        )
    shape = data.get("shape")
    if shape and _prod(shape) != len(features):
        raise ConfigError(
            f"data.shape {list(shape)} holds {_prod(shape)} values but there are {len(features)} features",
            key="data.shape",
            value=list(shape),
            fix="make the product of data.shape equal the number of feature columns",
        )
    return frame[[key, *features, target, *aux]].reset_index(drop=True)


def _prod(values: list[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out
