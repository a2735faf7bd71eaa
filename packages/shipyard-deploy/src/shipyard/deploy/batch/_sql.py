"""SQL locations of inputs and outputs: ``<SQLAlchemy URL>?table=<name>``.

``sqlite:///data/in.db?table=customers`` (a path relative to the working folder),
``sqlite:////abs/path.db?table=t``, ``postgresql+psycopg://user@host/db?table=scores``. The
``table`` query parameter is Shipyard's; every other parameter reaches the driver untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError, DataError

__all__ = ["SqlLocation", "engine_for", "is_sql", "parse_sql", "quote", "sql_error"]

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class SqlLocation:
    url: str  # without the table parameter, password included (never printed)
    table: str
    display: str  # password hidden, for messages and summaries

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


def is_sql(uri: str) -> bool:
    return "://" in uri


def parse_sql(uri: str, role: str) -> SqlLocation:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
    except ArgumentError as exc:
        raise ConfigError(
            f"bad SQL {role} URL: {exc}", value=uri, fix="write it as <SQLAlchemy URL>?table=NAME"
        ) from exc
    table = url.query.get("table")
    if not isinstance(table, str) or not _TABLE.match(table):
        raise ConfigError(
            f"a SQL {role} needs one table name: ?table=NAME (letters, digits, underscore)",
            key=role,
            value=url.render_as_string(hide_password=True),
            fix=f"e.g. sqlite:///data/scores.db?table={'predictions' if role == 'output' else 'customers'}",
        )
    url = url.difference_update_query(["table"])
    if url.drivername.startswith("sqlite"):
        if not url.database or url.database == ":memory:":
            raise ConfigError(
                f"a SQL {role} cannot be an in-memory SQLite database (each process would see its own)",
                key=role,
                fix="name a file: sqlite:///path/to/file.db?table=NAME",
            )
        database = Path(url.database).expanduser().resolve()
        if role == "input" and not database.is_file():
            raise DataError(f"SQLite database {database} does not exist", where=uri, fix="check the path")
        url = url.set(database=str(database))
    display = f"{url.render_as_string(hide_password=True)}?table={table}"
    return SqlLocation(url.render_as_string(hide_password=False), table, display)


def quote(name: str) -> str:
    """Quote an identifier for SQL text (names come from the model and config, never from data)."""
    return '"' + name.replace('"', '""') + '"'


@lru_cache(maxsize=8)
def engine_for(url: str) -> Any:
    """One engine per URL and process. SQLite writers take the write lock when a transaction
    starts (BEGIN IMMEDIATE) and wait for it, so parallel Dask workers queue instead of failing."""
    from sqlalchemy import create_engine, event

    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 120})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy, not pysqlite, issues BEGIN

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def sql_error(exc: BaseException, location: SqlLocation, role: str) -> DataError:
    text = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    fix = "check the URL, that the database runs and accepts connections, and the table"
    lowered = text.lower()
    if role == "output" and ("full" in lowered or "readonly" in lowered or "read-only" in lowered):
        # Each part is one transaction: what committed before the failure stays, and a rerun resumes.
        fix = (
            "free space for the database, or make it writable for the user running the job; then run "
            "the same command again: the parts already written are kept and the job resumes"
        )
    return DataError(f"the SQL {role} failed: {text}", where=location.display, fix=fix)
