"""The online store: feature tables materialised into a database, looked up at request time.

:func:`materialize` computes each view's feature table with the same SQL as training
(:mod:`._offline`) and writes it, whole, into a database table through SQLAlchemy: an embedded
SQLite file by default (written beside, then renamed over, the old one), or any database a
SQLAlchemy URL names. A bookkeeping table (``shipyard_feature_tables``) records the tables
Shipyard wrote; a table of the same name that it does not list is never replaced.

:class:`FeatureLookup` is what the service and the batch job run: for each row, the entity's
feature row with the latest time at or before the row's own time (the same rule as the training
join, time-to-live included), by one indexed query per row and view. It imports neither pandas
nor DuckDB, so the service image needs neither.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError, DataError
from shipyard.core.hashing import json_sha256

__all__ = ["BOOKKEEPING", "FeatureLookup", "lookup_spec", "materialize", "table_name", "to_micros"]

BOOKKEEPING = "shipyard_feature_tables"
KEY, TS = "__key", "__ts"


def table_name(view: Mapping[str, Any]) -> str:
    """The store table of a resolved view: its name, version and the hash of its features."""
    digest = json_sha256(sorted(spec["hash"] for spec in view["features"].values()))[:10]
    return f"fv_{view['view']}_v{view['version']}_{digest}"


def lookup_spec(views: list[Mapping[str, Any]], event_time: str, url: str | None) -> dict[str, Any]:
    """What a deployed target needs to look features up (``features.json`` in its folder)."""
    return {
        "event_time": event_time,
        "url": url,
        "views": [
            {
                "view": v["view"],
                "version": v["version"],
                "join_key": v["join_key"],
                "ttl_seconds": v.get("ttl_seconds"),
                "table": table_name(v),
                "columns": list(v["columns"]),
                "hashes": {f: s["hash"] for f, s in v["features"].items()},
            }
            for v in views
        ],
    }


def _engine(url: str) -> Any:
    import sqlalchemy

    try:
        if url.startswith("sqlite"):
            return sqlalchemy.create_engine(url, connect_args={"check_same_thread": False})
        return sqlalchemy.create_engine(url, pool_pre_ping=True)
    except (sqlalchemy.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(
            f"cannot open the online store {_redact(url)}: {exc}",
            key="features.online_store",
            fix="give a SQLAlchemy URL (sqlite:///path.db, postgresql+psycopg://user@host/db) or null",
        ) from exc


def _redact(url: str) -> str:
    from shipyard.data.sql import redact

    return redact(url)


def _owned(conn: Any, table: str) -> bool:
    import sqlalchemy

    inspector = sqlalchemy.inspect(conn)
    if not inspector.has_table(table):
        return True
    if not inspector.has_table(BOOKKEEPING):
        return False
    row = conn.execute(sqlalchemy.text(f"SELECT 1 FROM {BOOKKEEPING} WHERE table_name = :t"), {"t": table}).first()
    return row is not None


def _write(conn: Any, view: Mapping[str, Any], frame: Any) -> None:
    import sqlalchemy

    table = table_name(view)
    if not _owned(conn, table):
        raise DataError(
            f"the online store already holds a table {table} that Shipyard did not write",
            where=table,
            fix="point features.online_store at another database, or rename that table",
        )
    frame.to_sql(table, conn, if_exists="replace", index=False, chunksize=5000)
    conn.execute(sqlalchemy.text(f'CREATE INDEX IF NOT EXISTS "ix_{table}" ON "{table}" ("{KEY}", "{TS}")'))
    meta = sqlalchemy.MetaData()
    book = sqlalchemy.Table(
        BOOKKEEPING,
        meta,
        sqlalchemy.Column("table_name", sqlalchemy.String(200), primary_key=True),
        sqlalchemy.Column("view", sqlalchemy.String(200)),
        sqlalchemy.Column("version", sqlalchemy.Integer),
        sqlalchemy.Column("rows", sqlalchemy.BigInteger),
        sqlalchemy.Column("written_at", sqlalchemy.String(40)),
    )
    meta.create_all(conn)
    conn.execute(book.delete().where(book.c.table_name == table))
    conn.execute(
        book.insert().values(
            table_name=table,
            view=view["view"],
            version=int(view["version"]),
            rows=len(frame),
            written_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
    )


def _frames(views: list[Mapping[str, Any]], root: Path) -> list[Any]:
    from shipyard.features._offline import connect, feature_tables

    con = connect()
    try:
        tables = feature_tables(con, views, root)
        frames = []
        for table in tables:
            frame = con.execute(
                f"SELECT CAST({KEY} AS VARCHAR) AS {KEY}, epoch_us({TS}) AS {TS}, * EXCLUDE ({KEY}, {TS}) FROM {table}"
            ).df()
            frames.append(frame)
        return frames
    finally:
        con.close()


def materialize(views: list[Mapping[str, Any]], root: Path, *, url: str | None = None, file: Path | None = None) -> int:
    """Write the feature tables of ``views`` into the store at ``url``, or into the SQLite
    ``file`` (replaced atomically); returns the rows written."""
    frames = _frames(views, root)
    if file is not None:
        from shipyard.core.atomic import atomic_path

        _check_own_file(file)
        with atomic_path(file) as tmp:
            tmp.unlink()
            engine = _engine(f"sqlite:///{tmp}")
            with engine.begin() as conn:
                for view, frame in zip(views, frames, strict=True):
                    _write(conn, view, frame)
            engine.dispose()
    else:
        engine = _engine(str(url))
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with engine.begin() as conn:
                for view, frame in zip(views, frames, strict=True):
                    _write(conn, view, frame)
        except SQLAlchemyError as exc:
            raise DataError(
                f"cannot write the online store {_redact(str(url))}: {str(exc).splitlines()[0]}",
                key="features.online_store",
                fix="check that the database is reachable and writable",
            ) from exc
        finally:
            engine.dispose()
    return sum(len(f) for f in frames)


def _check_own_file(file: Path) -> None:
    """Refuse to replace a file that is not a store Shipyard wrote (its bookkeeping table)."""
    if not file.exists():
        return
    import sqlite3

    try:
        with sqlite3.connect(f"file:{file}?mode=ro", uri=True) as con:
            ours = con.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (BOOKKEEPING,)).fetchone() is not None
        con.close()
    except sqlite3.Error:
        ours = False
    if not ours:
        raise DataError(
            f"{file} exists and is not an online store Shipyard wrote, so it is left as it is",
            where=str(file),
            fix="move that file away, or materialise into another folder",
        )


def to_micros(values: Sequence[Any], column: str = "time") -> list[int | None]:
    """Times as microseconds since the epoch, UTC (a time without a zone is UTC): ISO 8601
    text, ``datetime`` objects or numpy ``datetime64`` values; None for a missing one."""
    out: list[int | None] = []
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out.append(None)
            continue
        if hasattr(value, "dtype") and str(getattr(value, "dtype", "")).startswith("datetime64"):
            out.append(None if str(value) == "NaT" else int(value.astype("datetime64[us]").astype("int64")))
            continue
        when = value if isinstance(value, datetime) else None
        if when is None:
            try:
                when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
            except ValueError:
                raise DataError(
                    f"{column}: {value!r} is not a time",
                    key=column,
                    value=value,
                    fix="send ISO 8601 times, e.g. 2024-03-05 10:00:00 or 2024-03-05T10:00:00+00:00",
                ) from None
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        delta = when - epoch
        out.append((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    return out


class FeatureLookup:
    """Point-in-time feature values for rows, from the online store of a deployed target."""

    def __init__(self, spec: Mapping[str, Any], folder: Path, store_file: str) -> None:
        self.spec = spec
        url = spec.get("url") or f"sqlite:///{(Path(folder) / store_file).resolve()}"
        if not spec.get("url") and not (Path(folder) / store_file).is_file():
            raise DataError(
                f"{folder} has no online store ({store_file})",
                where=str(folder),
                fix="rebuild the target: make deploy PROJECT=<team>/<name>",
            )
        self.engine = _engine(url)
        self.event_time = str(spec["event_time"])

    @property
    def inputs(self) -> list[str]:
        """The columns a row must carry for the lookup: entity keys, then its time."""
        keys = list(dict.fromkeys(v["join_key"] for v in self.spec["views"]))
        return [*keys, self.event_time] if self.event_time not in keys else keys

    @property
    def columns(self) -> list[str]:
        return [c for v in self.spec["views"] for c in v["columns"]]

    def fill(self, rows: Mapping[str, Sequence[Any]]) -> dict[str, list[Any]]:
        """The feature columns for ``rows`` (``{column: values}`` holding :attr:`inputs`); a row
        whose entity has no fresh value gets None (as the training join leaves it missing)."""
        return self.lookup(rows)[0]

    def lookup(self, rows: Mapping[str, Sequence[Any]]) -> tuple[dict[str, list[Any]], list[str | None]]:
        """:meth:`fill`, and for each row None or why it has no value: its entity is unknown to
        the store, has no value at or before the row's time, or only one older than the TTL."""
        import sqlalchemy

        times = to_micros(list(rows[self.event_time]), self.event_time)
        out: dict[str, list[Any]] = {}
        reasons: list[str | None] = [None] * len(times)
        with self.engine.connect() as conn:
            for view in self.spec["views"]:
                prefix = f"{view['view']}__"
                stored = [c.removeprefix(prefix) for c in view["columns"]]
                table = view["table"]
                sql = sqlalchemy.text(
                    f'SELECT "{TS}", {", ".join(chr(34) + c + chr(34) for c in stored)} FROM "{table}" '
                    f'WHERE "{KEY}" = :k AND "{TS}" <= :t ORDER BY "{TS}" DESC LIMIT 1'
                )
                known = sqlalchemy.text(f'SELECT 1 FROM "{table}" WHERE "{KEY}" = :k LIMIT 1')
                ttl = view.get("ttl_seconds")
                name, key_column = f"{view['view']}@{view['version']}", view["join_key"]
                values: list[list[Any]] = [[] for _ in stored]
                for i, (key, when) in enumerate(zip(rows[key_column], times, strict=True)):
                    found, why = None, None
                    if key is None or when is None:
                        why = f"{key_column if key is None else self.event_time} is missing"
                    else:
                        found = conn.execute(sql, {"k": str(key), "t": when}).first()
                        if found is None:
                            unknown = conn.execute(known, {"k": str(key)}).first() is None
                            why = (
                                f"{key_column} {key!r} is unknown to feature view {name}"
                                if unknown
                                else f"{key_column} {key!r} has no {name} values at or before its {self.event_time}"
                            )
                        elif ttl and when - found[0] > int(ttl) * 1_000_000:
                            found = None
                            why = f"{key_column} {key!r}: its {name} values are older than the view's ttl ({ttl} s)"
                    if why is not None and reasons[i] is None:
                        reasons[i] = why
                    for j in range(len(stored)):
                        values[j].append(None if found is None else found[j + 1])
                out.update(zip(view["columns"], values, strict=True))
        return out, reasons

    def close(self) -> None:
        self.engine.dispose()
