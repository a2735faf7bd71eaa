"""SQL sources through SQLAlchemy (kedro-datasets' SQL datasets): a SQLite file by default,
any SQLAlchemy URL (PostgreSQL, ...) in production."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.core.errors import DataError
from shipyard.core.schema import SourceConf

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["read_sql", "redact", "resolve_url", "sqlite_file"]


def resolve_url(url: str, root: Path) -> str:
    """Make a relative SQLite path (``sqlite:///data/x.db``) relative to the repository root."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str((root / url[len(prefix) :]).resolve())
    return url


def sqlite_file(url: str | None) -> str | None:
    """The repository-relative file behind a relative SQLite URL (a DVC dependency), if any."""
    url = str(url or "")
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return url[len(prefix) :]
    return None


def redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is reported as given
        return url


def read_sql(source: SourceConf, root: Path) -> pd.DataFrame:
    """The rows of ``source.query`` or ``source.table`` (the schema checked that exactly one is set)."""
    url, query, table = source.url, source.query, source.table
    file = sqlite_file(url)
    if file and not (root / file).is_file():
        raise DataError(
            f"SQLite database {file} does not exist", where=file, fix="create it, `dvc pull` it, or fix data.source.url"
        )
    from kedro.io.core import DatasetError
    from kedro_datasets.pandas import SQLQueryDataset

    sql = query or f'SELECT * FROM "{table}"'
    dataset = SQLQueryDataset(sql=sql, credentials={"con": resolve_url(str(url), root)})
    try:
        return dataset.load()
    except (DatasetError, Exception) as exc:
        text = str(exc.__cause__ or exc).splitlines()[0]
        unreachable = any(
            w in text.lower() for w in ("could not connect", "connection refused", "unable to open", "timeout")
        )
        raise DataError(
            f"{'cannot reach the database' if unreachable else 'the SQL query failed'}: {text}",
            where=redact(str(url)),
            key="data.source.url" if unreachable else "data.source.query",
            value=None if unreachable else sql,
            fix="check the URL, that the server runs and accepts connections"
            if unreachable
            else "fix the SQL (table and column names) and try it in a SQL shell",
        ) from exc
