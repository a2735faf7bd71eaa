"""Outputs of a batch job: a folder of Parquet parts, a CSV file, or a SQL table.

Every part is committed atomically and on its own (a renamed file, or one SQL transaction that
also records the part), so a killed job leaves finished parts and nothing half-written, and the
next run skips the finished parts. A manifest pins what the parts were scored from (model
version, input, chunk size, row checks): a run that does not match it refuses to mix its parts
in, unless told not to resume.

Folder layout (``pandas.read_parquet(folder)`` reads the predictions and skips the ``_`` files)::

    part-<unit>-<chunk>.parquet   predictions; row counts in the file's key-value metadata
    _manifest.json                fingerprint of the job, scoring time
    _rejects/part-*.parquet       rejected rows per part (key, reason, raw values as text)
    _rejects.csv                  all rejected rows, written when the job finishes
    _summary.json, _SUCCESS       written last, when the job finishes

A CSV output ``out.csv`` is staged as such a folder (``out.csv.parts/``) and assembled at the
end; its rejects go to ``out.rejects.csv``. A SQL output ``...?table=T`` writes ``T``,
``T__rejects`` and a bookkeeping table ``T__batch`` (manifest, summary and one row per part).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.atomic import atomic_path, write_json
from shipyard.core.errors import DataError
from shipyard.deploy.batch._sql import SqlLocation, engine_for, is_sql, parse_sql, quote, sql_error

if TYPE_CHECKING:
    from shipyard.deploy.batch._score import Scored

__all__ = ["Sink", "SinkSpec", "open_sink", "parse_output", "part_name"]

OUTPUT_FORMAT = "shipyard-batch-output/1"
META_KEY = b"shipyard.batch"
MANIFEST, SUMMARY, SUCCESS, LOCK = "_manifest.json", "_summary.json", "_SUCCESS", ".lock"
REJECTS_DIR, REJECTS_CSV = "_rejects", "_rejects.csv"


def part_name(unit: int, chunk: int) -> str:
    return f"part-{unit:05d}-{chunk:05d}"


@dataclass(frozen=True)
class SinkSpec:
    """Where an output goes (picklable, so that Dask workers write to the same place)."""

    kind: str  # parquet | csv | sql
    path: str | None = None
    sql: SqlLocation | None = None
    display: str = ""


def parse_output(uri: str) -> SinkSpec:
    """``<SQLAlchemy URL>?table=NAME``, ``path.csv``, or a folder (of Parquet parts)."""
    if is_sql(uri):
        location = parse_sql(uri, "output")
        return SinkSpec("sql", sql=location, display=location.display)
    path = Path(uri).expanduser().resolve()
    if uri.lower().endswith(".csv"):
        return SinkSpec("csv", path=str(path), display=uri)
    if path.is_file():
        raise DataError(
            f"output {uri} is a file; a Parquet output is a folder of parts",
            where=uri,
            fix="name a folder (it is created), a .csv file, or <SQLAlchemy URL>?table=NAME",
        )
    return SinkSpec("parquet", path=str(path), display=uri)


def open_sink(spec: SinkSpec) -> Sink:
    if spec.kind == "sql":
        return SqlSink(spec)
    if spec.kind == "csv":
        return CsvSink(spec)
    return PartsSink(spec)


def mismatch(stored: dict[str, Any], wanted: dict[str, Any], where: str) -> DataError:
    keys = sorted(k for k in {*stored, *wanted} if stored.get(k) != wanted.get(k))
    return DataError(
        f"the output holds parts of a different run (differs in: {', '.join(keys)})",
        where=where,
        key=keys[0] if keys else None,
        fix="pick a new output, or pass --no-resume (resume=False) to rescore everything into this one",
    )


class Sink:
    """Driver side: :meth:`begin`, :meth:`done`, :meth:`finish`; anywhere: :meth:`write`."""

    def __init__(self, spec: SinkSpec) -> None:
        self.spec = spec

    def begin(self, fingerprint: dict[str, Any], resume: bool, scored_at: str) -> dict[str, Any]:
        raise NotImplementedError

    def finished(self) -> dict[str, Any] | None:
        raise NotImplementedError

    def done(self) -> dict[str, dict[str, Any]]:
        raise NotImplementedError

    def write(self, part: str, scored: Scored, last: bool) -> None:
        raise NotImplementedError

    def finish(self, summary: dict[str, Any], ok: bool) -> dict[str, Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what :meth:`begin` holds (a lock)."""


# -- a folder of Parquet parts -----------------------------------------------------------------


def _ours(name: str) -> bool:
    return (
        (name.startswith("part-") and name.endswith(".parquet"))
        or name in {MANIFEST, SUMMARY, SUCCESS, LOCK, REJECTS_DIR, REJECTS_CSV}
        or name.startswith(".tmp-")
    )


class PartsSink(Sink):
    def __init__(self, spec: SinkSpec) -> None:
        super().__init__(spec)
        self.dir = Path(str(spec.path))
        self._lock_fd: int | None = None

    def begin(self, fingerprint: dict[str, Any], resume: bool, scored_at: str) -> dict[str, Any]:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        manifest = self._manifest()
        if manifest is None:
            foreign = sorted(p.name for p in self.dir.iterdir() if p.name != LOCK)
            if foreign:
                raise DataError(
                    f"output folder {self.spec.display} is not empty and was not written by a batch job "
                    f"(it holds {foreign[0]!r})",
                    where=self.spec.display,
                    fix="pick a new or empty output folder",
                )
        elif resume and manifest.get("fingerprint") != fingerprint:
            raise mismatch(manifest.get("fingerprint", {}), fingerprint, self.spec.display)
        if manifest is not None and resume:
            self._sweep()
            return manifest
        self._clear()
        manifest = {"format": OUTPUT_FORMAT, "fingerprint": fingerprint, "scored_at": scored_at}
        write_json(self.dir / MANIFEST, manifest)
        return manifest

    def _manifest(self) -> dict[str, Any] | None:
        path = self.dir / MANIFEST
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) and data.get("format") == OUTPUT_FORMAT else None

    def _lock(self) -> None:
        import fcntl

        fd = os.open(self.dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise DataError(
                f"another batch run is writing to {self.spec.display}",
                where=self.spec.display,
                fix="wait for it to finish, or pick another output",
            ) from exc
        self._lock_fd = fd

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _sweep(self) -> None:
        """Temporary files of a killed run: never a finished part, so they can go."""
        for folder in (self.dir, self.dir / REJECTS_DIR):
            for path in folder.glob(".tmp-*") if folder.is_dir() else ():
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

    def _clear(self) -> None:
        for path in self.dir.iterdir():
            if path.name != LOCK and _ours(path.name):
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

    def finished(self) -> dict[str, Any] | None:
        if not (self.dir / SUCCESS).is_file() or not (self.dir / SUMMARY).is_file():
            return None
        return dict(json.loads((self.dir / SUMMARY).read_text(encoding="utf-8")))

    def done(self) -> dict[str, dict[str, Any]]:
        import pyarrow.parquet as pq

        out = {}
        for path in sorted(self.dir.glob("part-*.parquet")):
            meta = pq.read_schema(path).metadata or {}
            if META_KEY in meta:
                out[path.stem] = json.loads(meta[META_KEY])
        return out

    def write(self, part: str, scored: Scored, last: bool) -> None:
        import pyarrow.parquet as pq

        if scored.rejects is not None:
            with atomic_path(self.dir / REJECTS_DIR / f"{part}.parquet") as tmp:
                pq.write_table(scored.rejects, tmp)
        counts = {"rows": scored.rows, "rejected": scored.rejected, "last": last}
        table = scored.predictions.replace_schema_metadata({META_KEY: json.dumps(counts, sort_keys=True)})
        # The part file is the commit: its rejects are on disk before it appears.
        with atomic_path(self.dir / f"{part}.parquet") as tmp:
            pq.write_table(table, tmp)

    def parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.parquet"))

    def merge_rejects(self, target: Path) -> bool:
        """Write every rejected row to one CSV file; False (and no file) when there are none."""
        files = sorted((self.dir / REJECTS_DIR).glob("part-*.parquet"))
        live = {p.name for p in self.parts()}
        files = [f for f in files if f.name in live]
        if not files:
            target.unlink(missing_ok=True)
            return False
        _concat_csv(files, target)
        return True

    def finish(self, summary: dict[str, Any], ok: bool) -> dict[str, Any]:
        rejects = self.dir / REJECTS_CSV
        summary = dict(summary, rejects_file=str(rejects) if self.merge_rejects(rejects) else None)
        write_json(self.dir / SUMMARY, summary)
        if ok:
            (self.dir / SUCCESS).touch()
        return summary


def _concat_csv(files: list[Path], target: Path) -> None:
    """Stream Parquet files into one CSV file, one file in memory at a time."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    schema = pq.read_schema(files[0]).remove_metadata()
    with atomic_path(target) as tmp, pcsv.CSVWriter(str(tmp), schema) as writer:
        for path in files:
            table = pq.read_table(path).replace_schema_metadata(None)
            try:
                writer.write_table(table.cast(schema))
            except (ValueError, TypeError) as exc:
                raise DataError(
                    f"part {path.name} has other column types than the first part: {exc}",
                    where=str(path),
                    fix="give the input one type per column (e.g. no text in a numeric passthrough column)",
                ) from exc


# -- a CSV file --------------------------------------------------------------------------------


class CsvSink(Sink):
    """Parts staged in ``<file>.parts/``, assembled into the CSV file when the job finishes."""

    def __init__(self, spec: SinkSpec) -> None:
        super().__init__(spec)
        self.file = Path(str(spec.path))
        staging = self.file.with_name(self.file.name + ".parts")
        self.stage = PartsSink(SinkSpec("parquet", path=str(staging), display=str(staging)))

    @property
    def rejects_file(self) -> Path:
        return self.file.with_name(self.file.stem + ".rejects.csv")

    def begin(self, fingerprint: dict[str, Any], resume: bool, scored_at: str) -> dict[str, Any]:
        if self.file.exists() and self.stage._manifest() is None:
            raise DataError(
                f"output file {self.spec.display} exists and was not written by a batch job",
                where=self.spec.display,
                fix="remove it or pick another output file",
            )
        return self.stage.begin(fingerprint, resume, scored_at)

    def finished(self) -> dict[str, Any] | None:
        return self.stage.finished() if self.file.is_file() else None

    def done(self) -> dict[str, dict[str, Any]]:
        return self.stage.done()

    def write(self, part: str, scored: Scored, last: bool) -> None:
        self.stage.write(part, scored, last)

    def finish(self, summary: dict[str, Any], ok: bool) -> dict[str, Any]:
        parts = self.stage.parts()
        if ok and parts:
            _concat_csv(parts, self.file)
        elif ok:
            self.file.write_text("")  # no rows at all: an empty file, so that the output exists
        has_rejects = self.stage.merge_rejects(self.rejects_file)
        summary = dict(summary, rejects_file=str(self.rejects_file) if has_rejects else None)
        write_json(self.stage.dir / SUMMARY, summary)
        if ok:
            (self.stage.dir / SUCCESS).touch()
            # The CSV file now holds the parts; keep the manifest and summary (a rerun is a no-op).
            for path in parts:
                path.unlink()
            shutil.rmtree(self.stage.dir / REJECTS_DIR, ignore_errors=True)
        return summary

    def close(self) -> None:
        self.stage.close()


# -- a SQL table -------------------------------------------------------------------------------


class SqlSink(Sink):
    def __init__(self, spec: SinkSpec) -> None:
        super().__init__(spec)
        if spec.sql is None:
            raise DataError("a SQL output needs a URL and a table")
        self.location = spec.sql
        self.table = spec.sql.table
        self.book = f"{self.table}__batch"
        self.rejects = f"{self.table}__rejects"

    def _engine(self) -> Any:
        return engine_for(self.location.url)

    def _get(self, conn: Any, name: str) -> dict[str, Any] | None:
        from sqlalchemy import text

        row = conn.execute(text(f"SELECT value FROM {quote(self.book)} WHERE name = :n"), {"n": name}).first()
        return None if row is None else dict(json.loads(row[0]))

    def _put(self, conn: Any, name: str, value: dict[str, Any]) -> None:
        from sqlalchemy import text

        conn.execute(text(f"DELETE FROM {quote(self.book)} WHERE name = :n"), {"n": name})
        conn.execute(
            text(f"INSERT INTO {quote(self.book)} (name, value) VALUES (:n, :v)"),
            {"n": name, "v": json.dumps(value, sort_keys=True)},
        )

    def begin(self, fingerprint: dict[str, Any], resume: bool, scored_at: str) -> dict[str, Any]:
        from sqlalchemy import inspect, text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._engine().begin() as conn:
                tables = set(inspect(conn).get_table_names())
                manifest = self._get(conn, "manifest") if self.book in tables else None
                if manifest is None and self.table in tables:
                    raise DataError(
                        f"table {self.table!r} exists and was not written by a batch job",
                        where=self.location.display,
                        fix="pick another ?table= or drop the table",
                    )
                if manifest is not None and resume:
                    if manifest.get("fingerprint") != fingerprint:
                        raise mismatch(manifest.get("fingerprint", {}), fingerprint, self.location.display)
                    return manifest
                for name in (self.table, self.rejects, self.book):
                    conn.execute(text(f"DROP TABLE IF EXISTS {quote(name)}"))
                conn.execute(text(f"CREATE TABLE {quote(self.book)} (name VARCHAR(200) PRIMARY KEY, value TEXT)"))
                manifest = {"format": OUTPUT_FORMAT, "fingerprint": fingerprint, "scored_at": scored_at}
                self._put(conn, "manifest", manifest)
                return manifest
        except SQLAlchemyError as exc:
            raise sql_error(exc, self.location, "output") from exc

    def finished(self) -> dict[str, Any] | None:
        with self._engine().connect() as conn:
            summary = self._get(conn, "summary")
        return summary if summary and summary.get("status") == "succeeded" else None

    def done(self) -> dict[str, dict[str, Any]]:
        from sqlalchemy import text

        sql = text(f"SELECT name, value FROM {quote(self.book)} WHERE name LIKE 'part-%'")
        with self._engine().connect() as conn:
            return {str(name): json.loads(value) for name, value in conn.execute(sql)}

    def write(self, part: str, scored: Scored, last: bool) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        try:
            self._write(part, scored, last)
        except SQLAlchemyError:
            # Two workers may race to create the table on a server database; the loser retries
            # once and finds it. (SQLite serialises writers with BEGIN IMMEDIATE.)
            try:
                self._write(part, scored, last)
            except SQLAlchemyError as exc:
                raise sql_error(exc, self.location, "output") from exc

    def _write(self, part: str, scored: Scored, last: bool) -> None:
        # One transaction per part: its rows, its rejects and its bookkeeping row commit together,
        # and a part already recorded (a Dask task run twice) is not inserted again.
        with self._engine().begin() as conn:
            if self._get(conn, part) is not None:
                return
            if scored.predictions.num_rows:
                scored.predictions.to_pandas().to_sql(self.table, conn, if_exists="append", index=False)
            if scored.rejects is not None:
                scored.rejects.to_pandas().to_sql(self.rejects, conn, if_exists="append", index=False)
            self._put(conn, part, {"rows": scored.rows, "rejected": scored.rejected, "last": last})

    def finish(self, summary: dict[str, Any], ok: bool) -> dict[str, Any]:
        rejected = int(summary.get("rows_rejected", 0))
        summary = dict(
            summary, rejects_file=f"{self.location.display.rsplit('=', 1)[0]}={self.rejects}" if rejected else None
        )
        with self._engine().begin() as conn:
            self._put(conn, "summary", summary)
        return summary
