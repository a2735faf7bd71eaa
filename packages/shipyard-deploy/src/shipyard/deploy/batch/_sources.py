"""Inputs of a batch job, read in chunks so that memory is bounded by the chunk size.

An input is cut into *units* (a file, or a SQL table) and each unit into chunks of
``chunk_size`` rows; chunk ``c`` of unit ``u`` becomes output part ``part-<u>-<c>``. The same
input and chunk size always give the same parts, whichever engine scores them, so a killed job
resumes part by part and Dask and the local engine write identical outputs.

- Parquet file or folder: row counts come from the footers, so every chunk is addressable; a
  reader starts at the row group holding its first row (a Dask task decodes at most one row
  group it does not need).
- CSV file or folder: read with pandas in chunks; one unit per file (row counts are unknown
  until read).
- SQL table: ``ORDER BY <key> LIMIT <chunk> OFFSET <c * chunk>``, so chunks are independent.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError, DataError, did_you_mean
from shipyard.deploy.batch._sql import SqlLocation, engine_for, is_sql, parse_sql, quote, sql_error

if TYPE_CHECKING:
    import numpy as np

__all__ = ["Chunk", "Source", "SourceSpec", "Unit", "open_source", "parse_input"]

PARQUET = (".parquet", ".pq")
CSV = (".csv",)
# Read buffer per column while decoding Parquet: without it pyarrow loads whole column chunks,
# and one row group can hold the whole file.
_PARQUET_BUFFER = 1 << 20


@dataclass(frozen=True)
class SourceSpec:
    """Where an input is (picklable, so that Dask workers open the same input)."""

    kind: str  # parquet | csv | sql
    files: tuple[str, ...] = ()
    sql: SqlLocation | None = None
    display: str = ""


@dataclass(frozen=True)
class Unit:
    index: int
    name: str
    rows: int | None  # None: unknown until read (CSV)
    offset: int | None  # global row number of the unit's first row, when known


@dataclass
class Chunk:
    index: int  # chunk number within its unit
    columns: dict[str, np.ndarray]
    rows: int
    last: bool  # no chunk follows in this unit


def parse_input(uri: str) -> SourceSpec:
    """``path.csv``, ``path.parquet``, a folder of either, or ``<SQLAlchemy URL>?table=NAME``."""
    if is_sql(uri):
        location = parse_sql(uri, "input")
        return SourceSpec("sql", sql=location, display=location.display)
    path = Path(uri).expanduser()
    if not path.exists():
        raise DataError(
            f"input {uri} does not exist",
            where=uri,
            fix="give a CSV or Parquet file, a folder of them, or <SQLAlchemy URL>?table=NAME",
        )
    files = _folder_files(path) if path.is_dir() else [path]
    kinds = {_kind(f) for f in files}
    if len(kinds) > 1:
        raise DataError(
            f"input folder {uri} mixes CSV and Parquet files",
            where=uri,
            fix="put one format in the folder, or run one job per format",
        )
    return SourceSpec(kinds.pop(), files=tuple(str(f.resolve()) for f in files), display=str(uri))


def _folder_files(path: Path) -> list[Path]:
    # Names starting with _ or . are metadata (Spark, Dask and our own outputs write them).
    files = [
        p
        for p in sorted(path.rglob("*"))
        if p.is_file()
        and p.suffix.lower() in PARQUET + CSV
        and not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
    ]
    if not files:
        raise DataError(f"input folder {path} holds no .csv or .parquet file", where=str(path), fix="check the path")
    return files


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PARQUET:
        return "parquet"
    if suffix in CSV:
        return "csv"
    raise DataError(
        f"cannot tell the format of {path} from its suffix {suffix!r}",
        where=str(path),
        fix="name CSV files *.csv and Parquet files *.parquet",
    )


def open_source(spec: SourceSpec) -> Source:
    if spec.kind == "parquet":
        return ParquetSource(spec)
    if spec.kind == "csv":
        return CsvSource(spec)
    return SqlSource(spec)


class Source:
    """An input: its columns, its units and their chunks."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self._columns: list[str] | None = None

    def columns(self) -> list[str]:
        """The input's column names (read once)."""
        if self._columns is None:
            self._columns = self._read_columns()
        return self._columns

    def _read_columns(self) -> list[str]:
        raise NotImplementedError

    def units(self) -> list[Unit]:
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What must not change between a killed run and its resume."""
        files = []
        for name in self.spec.files:
            stat = Path(name).stat()
            files.append({"path": name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns})
        return {"kind": self.spec.kind, "files": files}

    def chunks(self, unit: Unit, size: int, first: int, stop: int | None, columns: list[str]) -> Iterator[Chunk]:
        """Chunks ``first`` .. ``stop - 1`` of ``unit`` (to its end when ``stop`` is None)."""
        raise NotImplementedError

    def require(self, columns: list[str], why: str) -> None:
        have = self.columns()
        missing = [c for c in columns if c not in have]
        if missing:
            raise DataError(
                f"input lacks {why} column {missing[0]!r}{did_you_mean(missing[0], have)}",
                where=self.spec.display,
                key=missing[0],
                fix=f"provide every column the model needs: {', '.join(columns[:12])}"
                + (" ..." if len(columns) > 12 else ""),
            )


# -- Parquet -----------------------------------------------------------------------------------


class ParquetSource(Source):
    def _file(self, path: str) -> Any:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path, buffer_size=_PARQUET_BUFFER, pre_buffer=False)
        except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) on bad files
            raise DataError(f"cannot read Parquet file {path}: {exc}", where=path, fix="check the file") from exc

    def _read_columns(self) -> list[str]:
        names: list[str] | None = None
        for path in self.spec.files:
            here = self._file(path).schema_arrow.names
            names = here if names is None else [n for n in names if n in here]
        return names or []

    def units(self) -> list[Unit]:
        units, offset = [], 0
        for i, path in enumerate(self.spec.files):
            rows = self._file(path).metadata.num_rows
            units.append(Unit(i, path, rows, offset))
            offset += rows
        return units

    def chunks(self, unit: Unit, size: int, first: int, stop: int | None, columns: list[str]) -> Iterator[Chunk]:
        pf = self._file(unit.name)
        total = int(unit.rows or 0)
        start, end = first * size, total if stop is None else min(total, stop * size)
        if start >= end:
            return
        groups: list[int] = []
        skip, seen = 0, 0
        for g in range(pf.metadata.num_row_groups):
            rows = pf.metadata.row_group(g).num_rows
            if seen + rows > start and seen < end:
                if not groups:
                    skip = start - seen
                groups.append(g)
            seen += rows
        batches = pf.iter_batches(batch_size=size, row_groups=groups, columns=columns, use_threads=True)
        index = first
        for table in _rechunk(batches, size, skip, end - start):
            yield Chunk(index, _arrow_columns(table), table.num_rows, (index + 1) * size >= total)
            index += 1


def _rechunk(batches: Iterator[Any], size: int, skip: int, limit: int) -> Iterator[Any]:
    """Tables (or batches) of exactly ``size`` rows (the last may be shorter), after
    dropping ``skip`` rows and stopping after ``limit`` rows."""
    import pyarrow as pa

    pending: list[Any] = []
    have = 0
    for batch in batches:
        if skip:
            if batch.num_rows <= skip:
                skip -= batch.num_rows
                continue
            batch, skip = batch.slice(skip), 0
        if not pending and batch.num_rows == size and limit >= size:
            yield batch  # the usual case: pyarrow already cut exactly one chunk
            limit -= size
            if limit <= 0:
                return
            continue
        pending.append(pa.Table.from_batches([batch]))
        have += batch.num_rows
        while have and (have >= size or have >= limit):
            table = pa.concat_tables(pending)
            take = min(size, limit)
            yield table.slice(0, take)
            limit -= take
            rest = table.slice(take)
            pending, have = ([rest] if rest.num_rows else []), rest.num_rows
            if limit <= 0:
                return
    if have and limit > 0:
        yield pa.concat_tables(pending).slice(0, limit)


def _arrow_columns(table: Any) -> dict[str, np.ndarray]:
    """A table's or record batch's columns as numpy arrays (no copy for numbers without nulls)."""
    import pyarrow as pa

    out = {}
    for name, column in zip(table.schema.names, table.columns, strict=True):
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        out[name] = column.to_numpy(zero_copy_only=False)
    return out


# -- CSV ---------------------------------------------------------------------------------------


class CsvSource(Source):
    def _read_columns(self) -> list[str]:
        import pandas as pd

        names: list[str] | None = None
        for path in self.spec.files:
            try:
                here = [str(c) for c in pd.read_csv(path, nrows=0).columns]
            except (OSError, ValueError) as exc:
                raise DataError(f"cannot read CSV file {path}: {exc}", where=path, fix="check the file") from exc
            names = here if names is None else [n for n in names if n in here]
        return names or []

    def units(self) -> list[Unit]:
        single = len(self.spec.files) == 1
        return [Unit(i, path, None, 0 if single else None) for i, path in enumerate(self.spec.files)]

    def chunks(self, unit: Unit, size: int, first: int, stop: int | None, columns: list[str]) -> Iterator[Chunk]:
        import pandas as pd

        wanted = set(columns)
        reader = pd.read_csv(unit.name, chunksize=size, usecols=lambda c: c in wanted)
        ahead = None
        with reader:
            # One chunk of look-ahead tells whether a chunk is the unit's last.
            for index, frame in enumerate(reader):
                if ahead is not None:
                    yield _frame_chunk(*ahead, last=False)
                ahead = None
                if stop is not None and index >= stop:
                    return
                if index >= first:
                    ahead = (index, frame)
            if ahead is not None:
                yield _frame_chunk(*ahead, last=True)


def _frame_chunk(index: int, frame: Any, *, last: bool) -> Chunk:
    return Chunk(index, {str(c): frame[c].to_numpy() for c in frame.columns}, len(frame), last)


# -- SQL ---------------------------------------------------------------------------------------


class SqlSource(Source):
    @property
    def location(self) -> SqlLocation:
        if self.spec.sql is None:
            raise ConfigError("a SQL input needs a URL and a table")
        return self.spec.sql

    def _read_columns(self) -> list[str]:
        from sqlalchemy import inspect
        from sqlalchemy.exc import SQLAlchemyError

        try:
            inspector = inspect(engine_for(self.location.url))
            if not inspector.has_table(self.location.table):
                raise DataError(
                    f"table {self.location.table!r} does not exist"
                    + did_you_mean(self.location.table, inspector.get_table_names()),
                    where=self.location.display,
                    fix="name an existing table in ?table=",
                )
            return [str(c["name"]) for c in inspector.get_columns(self.location.table)]
        except SQLAlchemyError as exc:
            raise sql_error(exc, self.location, "input") from exc

    @cached_property
    def count(self) -> int:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        self.columns()  # a missing table gets its own message

        try:
            with engine_for(self.location.url).connect() as conn:
                return int(conn.execute(text(f"SELECT COUNT(*) FROM {quote(self.location.table)}")).scalar_one())
        except SQLAlchemyError as exc:
            raise sql_error(exc, self.location, "input") from exc

    def identity(self) -> dict[str, Any]:
        return {"kind": "sql", "table": self.location.display, "rows": self.count}

    def units(self) -> list[Unit]:
        return [Unit(0, self.location.table, self.count, 0)]

    def chunks(self, unit: Unit, size: int, first: int, stop: int | None, columns: list[str]) -> Iterator[Chunk]:
        import pandas as pd
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        key = columns[0]  # the planner puts the key first: it orders the table
        total = math.ceil(int(unit.rows or 0) / size)
        stop = total if stop is None else min(stop, total)
        select = ", ".join(quote(c) for c in columns)
        sql = text(f"SELECT {select} FROM {quote(unit.name)} ORDER BY {quote(key)} LIMIT :n OFFSET :o")
        try:
            with engine_for(self.location.url).connect() as conn:
                for index in range(first, stop):
                    frame = pd.read_sql_query(sql, conn, params={"n": size, "o": index * size})
                    yield _frame_chunk(index, frame, last=index == total - 1)
        except SQLAlchemyError as exc:
            raise sql_error(exc, self.location, "input") from exc
