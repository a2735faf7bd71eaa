"""Reading a window of the log back: Arrow record batches, in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from shipyard.core.errors import DataError
from shipyard.predlog._location import LogLocation
from shipyard.predlog._writer import LOGGED_AT

__all__ = ["read_batches", "read_frame"]


def read_batches(
    location: LogLocation,
    columns: Sequence[str] | None = None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    batch_rows: int = 65536,
) -> Iterator[Any]:
    """Record batches of the rows logged in ``[since, until)`` (both optional, UTC), holding
    ``columns`` (a column a file lacks reads as empty). Memory is bounded by ``batch_rows``."""
    if location.path is not None:
        yield from _parquet(location, columns, since, until, batch_rows)
    else:
        yield from _sql(location, columns, since, until, batch_rows)


def _parquet(
    location: LogLocation, columns: Sequence[str] | None, since: Any, until: Any, batch_rows: int
) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    folder = location.path
    files = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith((".", "_"))) if folder else []
    if not files:
        return
    # Files written by different model versions may hold different features: read them as one
    # schema, a column missing from a file being empty there.
    schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    dataset = ds.dataset([str(f) for f in files], format="parquet", schema=schema)
    wanted = list(columns) if columns is not None else schema.names
    for name in wanted:
        if name not in schema.names:
            raise DataError(
                f"the prediction log at {location.display} has no column {name!r}",
                where=location.display,
                fix="the log holds the columns of the model that wrote it: check the version it was logged by",
            )
    field = ds.field(LOGGED_AT)
    condition = None
    if since is not None:
        condition = field >= pa.scalar(since, pa.timestamp("us", tz="UTC"))
    if until is not None:
        before = field < pa.scalar(until, pa.timestamp("us", tz="UTC"))
        condition = before if condition is None else condition & before
    # One batch and one file ahead at most: memory is bounded by a batch, not by the window.
    yield from dataset.to_batches(
        columns=wanted, filter=condition, batch_size=batch_rows, batch_readahead=1, fragment_readahead=1
    )


def _sql(
    location: LogLocation, columns: Sequence[str] | None, since: Any, until: Any, batch_rows: int
) -> Iterator[Any]:
    import pandas as pd
    import pyarrow as pa
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(str(location.url))
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(str(location.table)):
                return
            names = ", ".join(f'"{c}"' for c in columns) if columns is not None else "*"
            where, args = [], {}
            if since is not None:
                where.append(f'"{LOGGED_AT}" >= :since')
                args["since"] = _naive_utc(since)
            if until is not None:
                where.append(f'"{LOGGED_AT}" < :until')
                args["until"] = _naive_utc(until)
            sql = f'SELECT {names} FROM "{location.table}"' + (" WHERE " + " AND ".join(where) if where else "")
            for chunk in pd.read_sql(text(sql), conn, params=args, chunksize=batch_rows):
                if LOGGED_AT in chunk:
                    chunk[LOGGED_AT] = pd.to_datetime(chunk[LOGGED_AT]).dt.tz_localize("UTC")
                yield from pa.Table.from_pandas(chunk, preserve_index=False).to_batches()
    finally:
        engine.dispose()


def _naive_utc(moment: datetime) -> datetime:
    from datetime import UTC

    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def read_frame(location: LogLocation, **window: Any) -> Any:
    """The whole window as one pandas DataFrame (for small windows, tests and notebooks)."""
    import pyarrow as pa

    batches = list(read_batches(location, **window))
    if not batches:
        import pandas as pd

        return pd.DataFrame()
    return pa.Table.from_batches(batches).to_pandas()
