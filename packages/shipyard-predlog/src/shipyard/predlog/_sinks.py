"""Where a flushed table goes: one new Parquet file, or one SQL transaction.

A Parquet file is written under a temporary name beginning with ``.`` and renamed into place
(:mod:`shipyard.core.atomic`), so readers (which skip names beginning with ``.`` or ``_``) only
ever see complete files, whatever kills the writer. File names sort by time:
``part-<UTC time>-<pid>-<sequence>.parquet``; several processes write into one folder.
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shipyard.core.atomic import atomic_path
from shipyard.predlog._location import LogLocation

__all__ = ["ParquetFolder", "SqlTable", "sink_for"]


class ParquetFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.display = str(folder)
        self._seq = itertools.count()

    def write(self, table: Any) -> Path:
        import pyarrow.parquet as pq

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.folder / f"part-{stamp}-{os.getpid()}-{next(self._seq):06d}.parquet"
        self.folder.mkdir(parents=True, exist_ok=True)
        import pyarrow as pa

        # Dictionary-encode the text columns only: trying it on every float column (Arrow's
        # default) costs five times the rest of the write and saves nothing on measurements.
        text = [f.name for f in table.schema if pa.types.is_string(f.type)]
        with atomic_path(target) as tmp:
            pq.write_table(table, tmp, use_dictionary=text)
        return target


class SqlTable:
    """Appends rows to a table (created on the first write), one transaction per flush."""

    def __init__(self, url: str, table: str, display: str) -> None:
        self.url, self.table, self.display = url, table, display
        self._engine: Any = None

    def write(self, table: Any) -> None:
        from sqlalchemy import create_engine

        if self._engine is None:
            self._engine = create_engine(self.url)
        from shipyard.predlog._writer import LOGGED_AT

        frame = table.to_pandas()
        # Naive UTC: every database stores and compares it the same way.
        frame[LOGGED_AT] = frame[LOGGED_AT].dt.tz_convert("UTC").dt.tz_localize(None)
        with self._engine.begin() as conn:
            frame.to_sql(self.table, conn, if_exists="append", index=False)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def sink_for(location: LogLocation) -> ParquetFolder | SqlTable:
    if location.path is not None:
        return ParquetFolder(location.path)
    return SqlTable(str(location.url), str(location.table), location.display)
