"""Where a project's prediction log lives: a folder of Parquet files or a SQL table."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard.core.errors import ConfigError

__all__ = ["ENV_VAR", "LogLocation", "resolve_location"]

# Where a deployment runs, this names the log instead of the config (a mounted volume in a
# container, a database): a folder, or <SQLAlchemy URL>?table=NAME.
ENV_VAR = "SHIPYARD_PREDICTION_LOG"


@dataclass(frozen=True)
class LogLocation:
    """A folder of Parquet files (``path``) or a table in a database (``url`` and ``table``)."""

    path: Path | None = None
    url: str | None = None
    table: str | None = None

    @property
    def display(self) -> str:
        if self.path is not None:
            return str(self.path)
        from sqlalchemy.engine import make_url

        return f"{make_url(str(self.url)).render_as_string(hide_password=True)}?table={self.table}"


def _parse(text: str, base: Path | None) -> LogLocation:
    if "://" in text:
        url, sep, table = text.rpartition("?table=")
        if not sep or not table or not url:
            raise ConfigError(
                f"prediction log {text!r} names no table",
                key="monitor.log.url",
                value=text,
                fix="write <SQLAlchemy URL>?table=NAME",
            )
        return LogLocation(url=_sqlite_relative(url, base), table=table)
    path = Path(text).expanduser()
    return LogLocation(path=path if path.is_absolute() or base is None else base / path)


def _sqlite_relative(url: str, base: Path | None) -> str:
    """``sqlite:///relative.db`` is relative to the repository, as everywhere in Shipyard."""
    prefix = "sqlite:///"
    if base is None or not url.startswith(prefix) or url.startswith(prefix + "/"):
        return url
    return prefix + str(base / url[len(prefix) :])


def resolve_location(
    path: str | None, url: str | None, base: Path | None, env: Mapping[str, str] | None = None
) -> LogLocation:
    """The log's location: ``$SHIPYARD_PREDICTION_LOG`` when set, else ``url``, else ``path``
    (relative paths and SQLite files against ``base``, the repository root)."""
    environ = os.environ if env is None else env
    override = environ.get(ENV_VAR, "").strip()
    if override:
        return _parse(override, base)
    if url:
        return _parse(url, base)
    if not path:
        raise ConfigError(
            "no prediction log location", key="monitor.log.path", fix="set monitor.log.path or monitor.log.url"
        )
    return _parse(path, base)
