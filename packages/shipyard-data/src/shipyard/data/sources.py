"""Data sources: read what a project's ``data.source`` declares into one frame.

The frame that leaves :func:`ingest` has the row key first, the features, then the target, and
nothing else, so later stages never guess at columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.atomic import atomic_path
from shipyard.core.errors import ConfigError, DataError, did_you_mean
from shipyard.core.schema import DataConf, SklearnSet, SourceConf, SourceKind

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_KEY", "fetch_raw", "ingest", "ingest_with_report", "read_source"]

DEFAULT_KEY = "row_id"


def _sklearn_frame(name: str) -> pd.DataFrame:
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.copy()
    if name == "digits":
        # sklearn names pixels pixel_<row>_<col>; keep that, it documents the 8x8 layout.
        frame["target"] = frame["target"].astype("int64")
    return frame


def read_source(source: SourceConf, root: Path, shape: list[int] | None = None) -> pd.DataFrame:
    """Read a source as declared (the schema checked its settings), with one clear error per
    way the data itself can fail. ``shape`` is ``data.shape`` (image folders)."""
    import pandas as pd

    kind = source.kind
    if kind == SourceKind.sklearn:
        return _sklearn_frame(str(source.name))
    if kind == SourceKind.sql:
        from shipyard.data.sql import read_sql

        return read_sql(source, root)
    if kind == SourceKind.images:
        from shipyard.data.images import read_image_folder

        return read_image_folder(source, list(shape or []), root)
    name = str(source.path)
    path = root / name
    if not path.is_file():
        raise DataError(
            f"data file {name} does not exist",
            where=name,
            fix="create the file, `dvc pull` it, or fix data.source.path",
        )
    if kind == SourceKind.csv:
        return _read_csv(path, name)
    _refuse_duplicate_parquet_columns(path, name)
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types; each means an unreadable file
        raise DataError(
            f"cannot read parquet file {name}: {exc}", where=name, fix="check that the file is valid parquet"
        ) from exc


def _read_csv(path: Path, name: str) -> pd.DataFrame:
    """Read a CSV file, refusing what pandas would read wrongly or report obscurely."""
    import pandas as pd

    try:
        # The header as written: pandas renames a repeated header (`age`, `age.1`) silently.
        header = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0].tolist()
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise DataError(
            f"data file {name} is empty", where=name, fix="write a header line and rows, or `dvc pull` the real file"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"data file {name} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}): "
            "a binary, compressed or spreadsheet file?",
            where=name,
            fix="export the data as a UTF-8 CSV file, or set data.source.kind to the file's format",
        ) from exc
    except Exception as exc:  # pandas' parser errors name the line; pass them on
        raise DataError(
            f"cannot read csv file {name}: {exc}", where=name, fix="check that the file is valid csv"
        ) from exc
    repeated = sorted({str(h) for h in header if header.count(h) > 1})
    if repeated:
        positions = [i + 1 for i, h in enumerate(header) if h == repeated[0]]
        others = f"; also repeated: {', '.join(map(repr, repeated[1:]))}" if len(repeated) > 1 else ""
        raise DataError(
            f"data file {name} has the column header {repeated[0]!r} {len(positions)} times "
            f"(columns {', '.join(map(str, positions[:-1]))} and {positions[-1]}){others}",
            where=name,
            fix="rename or remove the repeated column(s) in the file's header line",
        )
    if len(frame.columns) == 1:
        separator = next((sep for sep in (";", "\t", "|") if sep in str(frame.columns[0])), None)
        if separator:
            shown = "tab" if separator == "\t" else repr(separator)
            raise DataError(
                f"data file {name} reads as one column {str(frame.columns[0])[:60]!r}: "
                f"its values are separated by {shown}, not commas",
                where=name,
                fix="save the file with commas between values (or as Parquet)",
            )
    return frame


def _refuse_duplicate_parquet_columns(path: Path, name: str) -> None:
    import pyarrow.parquet as pq

    try:
        columns = pq.read_schema(path).names
    except Exception:  # noqa: BLE001 - an unreadable file is reported by the read that follows
        return
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise DataError(
            f"parquet file {name} has the column {repeated[0]!r} {columns.count(repeated[0])} times",
            where=name,
            fix="write the file with unique column names",
        )


def _source_name(source: SourceConf) -> str:
    """How an error names the source: its file, or its redacted database URL."""
    if source.kind == SourceKind.sql:
        from shipyard.data.sql import redact

        return redact(str(source.url or ""))
    return str(source.path or source.name or source.kind)


def _rows_of(source: SourceConf, values: pd.Series, limit: int = 3) -> str:
    """``'abc' (line 5), '?' (line 11)``: the first values with where they are in the source.

    A CSV row is named by its line in the file (the header is line 1); other sources by row
    number, counting from 1. Ingest keeps the source's row order, so the index says where.
    """
    csv = source.kind == SourceKind.csv
    unit, offset = ("line", 2) if csv else ("row", 1)
    shown = [f"{_show(v)} ({unit} {int(i) + offset})" for i, v in values.head(limit).items()]
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return ", ".join(shown) + more


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _refuse_bad_values(frame: pd.DataFrame, features: list[str], target: str, source: SourceConf) -> None:
    """Infinite numbers anywhere, and numeric columns with a few words among the numbers."""
    from shipyard.data.checks import non_finite_values, non_numeric_values

    name = _source_name(source)
    infinite = non_finite_values(frame, [*features, target])
    if infinite:
        column, values = next(iter(infinite.items()))
        role = "target column" if column == target else "column"
        raise DataError(
            f"{role} {column!r} of {name} holds {len(values)} infinite value(s): {_rows_of(source, values)}"
            + _also(list(infinite)[1:]),
            where=name,
            key="data.target" if column == target else None,
            fix="remove those rows or fix their labels"
            if column == target
            else "replace them with finite numbers, or leave the cells empty (a missing value, imputed from the "
            "training split)",
        )
    stray = non_numeric_values(frame, features)
    if stray:
        column, (values, numbers) = next(iter(stray.items()))
        raise DataError(
            f"column {column!r} of {name} holds numbers ({numbers}) and {len(values)} value(s) that are not: "
            f"{_rows_of(source, values)}" + _also(list(stray)[1:]),
            where=name,
            fix=f"make every value of {column!r} a number (with . for decimals) or leave the cell empty (a missing "
            "value, imputed from the training split), or drop the column with data.drop",
        )


def _also(columns: list[str]) -> str:
    return f"; so do columns {', '.join(map(repr, columns))}" if columns else ""


def fetch_raw(source: SourceConf, root: Path) -> Path | None:
    """Materialise a missing raw file from its declared ``fetch`` (example data sets).

    Writes deterministically (same bytes every time), so the file matches its DVC pointer.
    Returns the written path, or ``None`` when nothing had to be written.
    """
    fetch = source.fetch
    if not fetch or not source.path or (root / source.path).exists():
        return None
    path = root / source.path
    scheme, _, name = str(fetch).partition(":")
    if scheme == "sklearn" and name in SklearnSet.__members__:
        frame = _sklearn_frame(name)
    elif scheme == "synthetic":
        from shipyard.data.synthetic import generate

        frame = generate(name)
    else:
        raise ConfigError(
            f"cannot fetch {fetch!r}",
            key="data.source.fetch",
            value=fetch,
            fix="use sklearn:<data set> (" + ", ".join(SklearnSet.__members__) + ") or synthetic:<generator>, "
            "or remove fetch and provide the file",
        )
    with atomic_path(path) as tmp:
        if source.kind == SourceKind.parquet:
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
    return path


def ingest(data: DataConf, root: Path, aux: list[str] | None = None) -> pd.DataFrame:
    """Read the source and keep the key, the features, the target and the ``aux`` columns
    (a split's group or time column: kept, but not features), in that order."""
    return ingest_with_report(data, root, aux)[0]


def ingest_with_report(
    data: DataConf, root: Path, aux: list[str] | None = None, max_categories: int = 50, keep: list[str] | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """:func:`ingest`, and what it did: rows read and dropped, the key, and per source column its
    profile, role and what happens to it (the data report's first half)."""
    import warnings

    from shipyard.data.roles import column_profile

    source = data.source
    frame = read_source(source, root, data.shape)
    _refuse_empty_or_repeated(frame, source)
    rows_read = len(frame)
    aux = [c for c in (aux or []) if c]
    for column in aux:
        if column not in frame.columns:
            raise DataError(
                f"split column {column!r} is not in the data{did_you_mean(column, list(frame.columns))}",
                key="split",
                value=column,
                fix="name an existing column in split.group_column / split.time_column",
            )
    target, key = data.target, data.key
    columns = list(frame.columns)
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} is not in the data{did_you_mean(target, columns)}",
            key="data.target",
            value=target,
            fix="set data.target to one of: " + ", ".join(map(str, columns[:20])),
        )
    generated = key is None
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
    for name, listed in (("data.datetime", data.datetime), ("data.text", data.text)):
        unknown = [c for c in listed if c not in frame.columns]
        if unknown:
            raise DataError(
                f"{name} names {unknown[0]!r}, which is not in the data{did_you_mean(unknown[0], columns)}",
                key=name,
                value=unknown[0],
                fix=f"list only existing columns in {name}",
            )
    declared = data.features is not None
    # ``keep``: columns a later stage needs (the shared features' join keys and event time), kept
    # as they are when present, never features.
    keep = [c for c in (keep or []) if c in frame.columns and c not in {target, key, *aux}]
    candidates = data.features or [c for c in columns if c not in {target, key, *aux, *keep, *data.drop, *data.text}]
    unknown = [c for c in candidates if c not in frame.columns]
    if unknown:
        raise DataError(
            f"feature column {unknown[0]!r} is not in the data{did_you_mean(unknown[0], columns)}",
            key="data.features",
            value=unknown[0],
            fix="list only existing columns in data.features",
        )
    unlabeled = frame[target].isna()
    dropped = int(unlabeled.sum())
    if dropped and not data.drop_unlabeled:
        raise DataError(
            f"target column {target!r} has {dropped} missing value(s) (rows without a label)",
            key="data.target",
            fix="set data.drop_unlabeled: true to drop those rows (the data report counts them), or label them",
        )
    if dropped:
        frame = frame[~unlabeled]
    # Before roles are inferred: numbers with a few stray words are a numeric column with typos
    # (named, with their lines), not an identifier or free text left out with a warning.
    _refuse_bad_values(frame, candidates, target, source)
    features, actions, roles = _feature_roles(frame, data, candidates, declared, max_categories)
    shape = data.shape
    if shape and _prod(shape) != len(features):
        raise ConfigError(
            f"data.shape {list(shape)} holds {_prod(shape)} values but there are {len(features)} features",
            key="data.shape",
            value=list(shape),
            fix="make the product of data.shape equal the number of feature columns",
        )
    for column in features:
        if roles[column] == "datetime":
            frame[column] = _parse_dates(frame, column, source, strict=column in data.datetime)
    left_out = [c for c in candidates if c not in features]
    for column in left_out:
        warnings.warn(f"column {column!r}: {actions[column]}", UserWarning, stacklevel=2)
    profile = []
    for column in frame.columns:
        if column == key:
            added = " (added: row numbers; data.key is not set)" if generated else ""
            role, action = "key", f"row key, not a feature{added}"
        elif column == target:
            role, action = "target", "the label" + (f"; {dropped} row(s) without a label dropped" if dropped else "")
        elif column in aux:
            role, action = "split", "orders or groups the split; not a feature"
        elif column in keep:
            role, action = "join", "joins the shared features; not a feature"
        elif column in features:
            role, action = roles[column], actions[column]
        elif column in data.text:
            role, action = "text", "left out: free text (data.text)"
        elif column in data.drop:
            role, action = "dropped", "left out (data.drop)"
        elif column in left_out:
            role, action = roles[column], actions[column]
        else:
            role, action = "unused", "left out (not in data.features)"
        profile.append(column_profile(frame[column], role, action))
    report = {
        "rows_read": rows_read,
        "rows": len(frame),
        "dropped_unlabeled": dropped,
        "key": {"column": key, "generated": generated},
        "columns": profile,
    }
    return frame[[key, *features, target, *aux, *keep]].reset_index(drop=True), report


def _feature_roles(
    frame: pd.DataFrame, data: DataConf, candidates: list[str], declared: bool, max_categories: int
) -> tuple[list[str], dict[str, str], dict[str, str]]:
    """The features, and per candidate column its role and what happens to it. Free text and
    identifiers are left out unless ``data.features`` lists them; dates are parsed and expanded."""
    from shipyard.data.roles import infer_role

    parts = ", ".join(str(p) for p in data.datetime_parts) or "timestamp"
    features: list[str] = []
    actions: dict[str, str] = {}
    roles: dict[str, str] = {}
    for column in candidates:
        series = frame[column]
        role = infer_role(series, max_categories)
        kind = "datetime" if column in data.datetime else role.role
        nulls = int(series.isna().sum())
        roles[column] = kind
        if kind in ("text", "identifier") and not declared:
            fix = "list it in data.text (free text) or data.drop to leave it out quietly, or in data.features to use it"
            actions[column] = f"left out: {role.reason}; {fix}"
            continue
        features.append(column)
        if kind == "datetime":
            found = "" if column in data.datetime else " (found: not in data.datetime)"
            actions[column] = f"parsed as dates/times{found}; expanded into {parts}"
        elif kind in ("categorical", "text", "identifier", "constant") and _categorical(series):
            actions[column] = "encoded (preprocess.categorical)" + (f"; {nulls} missing: no category" if nulls else "")
        else:
            actions[column] = "scaled (preprocess.numeric)" + (
                f"; {nulls} missing: imputed (preprocess.impute, from the training split)" if nulls else ""
            )
    return features, actions, roles


def _categorical(series: pd.Series) -> bool:
    import pandas as pd

    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _parse_dates(frame: pd.DataFrame, column: str, source: SourceConf, *, strict: bool) -> pd.Series:
    """The column as naive UTC datetime64. A declared column (data.datetime) must hold ISO 8601
    dates/times only; a found one had at most 1 % other values, which become missing."""
    from shipyard.data.roles import parse_datetime_column

    parsed, bad = parse_datetime_column(frame[column])
    if len(bad) and strict:
        raise DataError(
            f"column {column!r} of {_source_name(source)} is in data.datetime but holds {len(bad)} value(s) that are "
            f"not ISO 8601 dates/times: {_rows_of(source, bad)}",
            where=_source_name(source),
            key="data.datetime",
            fix="write them as YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, leave the cells empty, or remove the column from "
            "data.datetime",
        )
    return parsed


def _refuse_empty_or_repeated(frame: pd.DataFrame, source: SourceConf) -> None:
    """No rows (a header-only file, a query that matches nothing), or repeated column names
    (``SELECT a, a``): both would fail later, far from the cause."""
    name = _source_name(source)
    sql = source.kind == SourceKind.sql
    if len(frame) == 0 and sql:
        query = bool(source.query)
        raise DataError(
            f"the SQL {'query' if query else 'table'} on {name} returned no rows",
            where=name,
            key="data.source.query" if query else "data.source.table",
            value=source.query or source.table,
            fix="check the query's table and WHERE clause" if query else "fill the table, or name another one",
        )
    if len(frame) == 0:
        raise DataError(
            f"data file {name} has column headers but no rows",
            where=name,
            fix="add the data rows, or `dvc pull` the real file",
        )
    repeated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if repeated:
        raise DataError(
            f"{name} gives the column {repeated[0]!r} more than once",
            where=name,
            fix="alias the repeated column in the query (SELECT a, a AS a_copy ...)" if sql else "rename the column",
        )


def _prod(values: list[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out
