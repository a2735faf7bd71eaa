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

A sink replaces or deletes only what a batch job of the same deployment wrote
(:mod:`shipyard.deploy.batch._owner` keeps that record, in the manifest). A write the system
refuses (a full disk, no permission) is one message naming the output (:func:`writing`): the
parts committed before it stay, and the next run resumes from them.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.atomic import atomic_path, write_json, write_text
from shipyard.core.errors import DataError
from shipyard.deploy.batch._owner import Ledger
from shipyard.deploy.batch._sql import SqlLocation, engine_for, is_sql, parse_sql, quote, sql_error

if TYPE_CHECKING:
    from shipyard.deploy.batch._score import Scored

__all__ = ["Sink", "SinkSpec", "open_sink", "parse_output", "part_name", "writing"]

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
    owner: str = ""  # the deployment whose job writes here (its project): see _owner

    def ledger(self, manifest: dict[str, Any] | None) -> Ledger:
        return Ledger.of(manifest, self.owner, self.display)


def parse_output(uri: str, owner: str = "") -> SinkSpec:
    """``<SQLAlchemy URL>?table=NAME``, ``path.csv``, or a folder (of Parquet parts), written
    by the batch job of ``owner`` (a project)."""
    if is_sql(uri):
        location = parse_sql(uri, "output")
        return SinkSpec("sql", sql=location, display=location.display, owner=owner)
    path = Path(uri).expanduser().resolve()
    if uri.lower().endswith(".csv"):
        return SinkSpec("csv", path=str(path), display=uri, owner=owner)
    if path.is_file():
        raise DataError(
            f"output {uri} is a file; a Parquet output is a folder of parts",
            where=uri,
            fix="name a folder (it is created), a .csv file, or <SQLAlchemy URL>?table=NAME",
        )
    return SinkSpec("parquet", path=str(path), display=uri, owner=owner)


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_DENIED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


@contextmanager
def writing(spec: SinkSpec) -> Iterator[None]:
    """Turn an output the system will not let us write (a full disk, no permission) into one
    message naming the output and the fix. Every part is committed on its own, so the parts
    written before the failure stay, and the next run resumes from them."""
    try:
        yield
    except OSError as exc:
        raise write_error(exc, spec) from exc


def write_error(exc: OSError, spec: SinkSpec) -> DataError:
    again = "then run the same command again: the parts already written are kept and the job resumes"
    detail = exc.strerror or str(exc)
    place = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in _FULL:
        message = f"no space left to write the output {spec.display}: {detail}{place}"
        fix = f"free space on the disk that holds it, or pick another output; {again}"
    elif exc.errno in _DENIED:
        message = f"not allowed to write the output {spec.display}: {detail}{place}"
        fix = f"make it writable for the user running the job, or pick another output; {again}"
    else:
        message = f"cannot write the output {spec.display}: {detail}{place}"
        fix = f"check the output location; {again}"
    return DataError(message, where=spec.display, fix=fix)


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
    def __init__(self, spec: SinkSpec, label: str | None = None) -> None:
        super().__init__(spec)
        self.dir = Path(str(spec.path))
        self.label = label or f"output folder {spec.display}"  # the folder, in messages
        self._lock_fd: int | None = None
        self.ledger = spec.ledger(None)

    def begin(self, fingerprint: dict[str, Any], resume: bool, scored_at: str) -> dict[str, Any]:
        # A folder that is not this deployment's is refused before anything (a lock file
        # included) is created in it; checked again under the lock, which a rival run may hold.
        self._owned_manifest()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        manifest = self._owned_manifest()
        if manifest is not None and resume and manifest.get("fingerprint") != fingerprint:
            raise mismatch(manifest.get("fingerprint", {}), fingerprint, self.spec.display)
        if manifest is not None and resume:
            self._sweep()
            return manifest
        self._clear()
        self.ledger.take(".", self.label, False)
        manifest = {"format": OUTPUT_FORMAT, "fingerprint": fingerprint, "scored_at": scored_at}
        self._save(manifest)
        return manifest

    def peek_ledger(self) -> Ledger:
        """What this folder's manifest records, read without creating or locking anything."""
        return self.spec.ledger(self._manifest() if self.dir.is_dir() else None)

    def _owned_manifest(self) -> dict[str, Any] | None:
        manifest = self._manifest() if self.dir.is_dir() else None
        self.ledger = self.spec.ledger(manifest)
        # Names other than "." are files beside the folder (a CSV output and its rejects).
        self.ledger.prune(lambda name: (self.dir if name == "." else self.dir.parent / name).exists())
        holds = self.dir.is_dir() and any(p.name != LOCK for p in self.dir.iterdir())
        self.ledger.check(".", self.label, holds)
        return manifest

    def _save(self, manifest: dict[str, Any]) -> None:
        write_json(self.dir / MANIFEST, {**manifest, "written": self.ledger.record()})

    def save_ledger(self) -> None:
        """Record the ledger in the manifest (before writing what it newly names)."""
        manifest = self._manifest()
        if manifest is None:
            raise DataError(f"the manifest of {self.spec.display} is gone", where=self.spec.display)
        self._save(manifest)

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

    def rejects_parts(self) -> list[Path]:
        """The rejects of the parts in the output (none of a part that is not there)."""
        live = {p.name for p in self.parts()}
        return [f for f in sorted((self.dir / REJECTS_DIR).glob("part-*.parquet")) if f.name in live]

    def finish(self, summary: dict[str, Any], ok: bool) -> dict[str, Any]:
        rejects, files = self.dir / REJECTS_CSV, self.rejects_parts()
        if files:
            _concat_csv(files, rejects)
        else:
            rejects.unlink(missing_ok=True)  # inside this deployment's own folder: an earlier run's
        summary = dict(summary, rejects_file=str(rejects) if files else None)
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
        # Messages name the user's output; the staging folder only where it is the problem.
        self.stage = PartsSink(
            SinkSpec("parquet", path=str(staging), display=spec.display, owner=spec.owner), label=f"folder {staging}"
        )

    @property
    def rejects_file(self) -> Path:
        return self.file.with_name(self.file.stem + ".rejects.csv")

    def begin(self, fingerprint: dict[str, Any], resume: bool, scored_at: str) -> dict[str, Any]:
        # Both files are checked before the staging folder is created: a refusal leaves nothing.
        ledger = self.stage.peek_ledger()
        for path in (self.file, self.rejects_file):
            ledger.check(path.name, f"file {path}", path.exists())
        return self.stage.begin(fingerprint, resume, scored_at)

    def _take(self, path: Path) -> None:
        """Before writing ``path``: refuse it unless absent or ours, and record it as ours."""
        if self.stage.ledger.take(path.name, f"file {path}", path.exists()):
            self.stage.save_ledger()

    def finished(self) -> dict[str, Any] | None:
        return self.stage.finished() if self.file.is_file() else None

    def done(self) -> dict[str, dict[str, Any]]:
        return self.stage.done()

    def write(self, part: str, scored: Scored, last: bool) -> None:
        self.stage.write(part, scored, last)

    def finish(self, summary: dict[str, Any], ok: bool) -> dict[str, Any]:
        parts, rejects = self.stage.parts(), self.stage.rejects_parts()
        if ok:
            self._take(self.file)
            if parts:
                _concat_csv(parts, self.file)
            else:
                write_text(self.file, "")  # no rows at all: an empty file, so that the output exists
        if rejects:
            self._take(self.rejects_file)
            _concat_csv(rejects, self.rejects_file)
        elif self.rejects_file.exists():
            # An earlier run's rejects file, which this run has none to replace with; only ever
            # one this deployment wrote (a user's file of that name is refused above).
            self._take(self.rejects_file)
            self.rejects_file.unlink()
            if self.stage.ledger.release(self.rejects_file.name):
                self.stage.save_ledger()
        summary = dict(summary, rejects_file=str(self.rejects_file) if rejects else None)
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

    def _what(self, name: str) -> str:
        return f"table {name!r} in {self.location.display.rsplit('?', 1)[0]}"

    def _manifest(self, conn: Any) -> dict[str, Any] | None:
        """The manifest in ``T__batch``; None when there is no such table, or it is not a batch
        job's bookkeeping table (then it is somebody else's, and is never read further)."""
        from sqlalchemy import inspect

        inspector = inspect(conn)
        if not inspector.has_table(self.book):
            return None
        if not {"name", "value"} <= {c["name"] for c in inspector.get_columns(self.book)}:
            return None
        try:
            manifest = self._get(conn, "manifest")
        except (ValueError, TypeError):  # a "manifest" row that is not a JSON object: not ours
            return None
        return manifest if manifest and manifest.get("format") == OUTPUT_FORMAT else None

    def begin(self, fingerprint: dict[str, Any], resume: bool, scored_at: str) -> dict[str, Any]:
        from sqlalchemy import inspect, text
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self._engine().begin() as conn:
                tables = set(inspect(conn).get_table_names())
                manifest = self._manifest(conn)
                ledger = self.spec.ledger(manifest)
                ledger.prune(lambda name: name in tables)
                for name in (self.table, self.rejects, self.book):
                    ledger.check(name, self._what(name), name in tables)
                if manifest is not None and resume:
                    if manifest.get("fingerprint") != fingerprint:
                        raise mismatch(manifest.get("fingerprint", {}), fingerprint, self.location.display)
                    return manifest
                # Each of these is absent or this deployment's (checked above).
                for name in (self.table, self.rejects, self.book):
                    conn.execute(text(f"DROP TABLE IF EXISTS {quote(name)}"))
                    ledger.release(name)
                ledger.take(self.book, self._what(self.book), False)
                conn.execute(text(f"CREATE TABLE {quote(self.book)} (name VARCHAR(200) PRIMARY KEY, value TEXT)"))
                manifest = {"format": OUTPUT_FORMAT, "fingerprint": fingerprint, "scored_at": scored_at}
                self._put(conn, "manifest", {**manifest, "written": ledger.record()})
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
        from sqlalchemy import inspect

        with self._engine().begin() as conn:
            if self._get(conn, part) is not None:
                return
            manifest = self._get(conn, "manifest") or {}
            ledger = self.spec.ledger(manifest)
            tables = [(self.table, scored.predictions if scored.predictions.num_rows else None)]
            tables.append((self.rejects, scored.rejects))
            for name, table in tables:
                # The first part to write a table creates it: only if nobody made one meanwhile.
                if table is not None and not ledger.owns(name):
                    ledger.take(name, self._what(name), inspect(conn).has_table(name))
                    self._put(conn, "manifest", {**manifest, "written": ledger.record()})
                if table is not None:
                    table.to_pandas().to_sql(name, conn, if_exists="append", index=False)
            self._put(conn, part, {"rows": scored.rows, "rejected": scored.rejected, "last": last})

    def finish(self, summary: dict[str, Any], ok: bool) -> dict[str, Any]:
        rejected = int(summary.get("rows_rejected", 0))
        summary = dict(
            summary, rejects_file=f"{self.location.display.rsplit('=', 1)[0]}={self.rejects}" if rejected else None
        )
        with self._engine().begin() as conn:
            self._put(conn, "summary", summary)
        return summary
