"""Shared feature definitions: entities, sources and versioned feature views declared in git
under ``conf/features/<team>/``, joined point in time onto a project's label rows (DuckDB's ASOF
join) and served from an online store by the same definitions.

Public surface:

- :func:`load_catalog`, :func:`resolve`: read and check every definition; resolve a project's
  ``features.views`` into plain data with the hash of each feature used.
- :func:`build_training_frame`: the point-in-time join of a project's label rows.
- :func:`materialize`, :class:`FeatureLookup`: the online store and its request-time lookup;
  :func:`write_store`, :func:`open_lookup`: a deployed target's store (``features.json``,
  ``features.db``), written at deploy and opened once per process by the service and batch job.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.features._catalog import Catalog, column_names, load_catalog, read_definition_files, resolve
from shipyard.features._online import FeatureLookup, lookup_spec, materialize, table_name, to_micros
from shipyard.features._schema import parse_duration
from shipyard.features._serving import (
    SPEC_FILE,
    STORE_FILE,
    check_hashes,
    lookup_columns,
    open_lookup,
    store_columns,
    write_store,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SPEC_FILE",
    "STORE_FILE",
    "Catalog",
    "FeatureLookup",
    "build_training_frame",
    "check_hashes",
    "column_names",
    "load_catalog",
    "lookup_columns",
    "lookup_spec",
    "materialize",
    "open_lookup",
    "parse_duration",
    "read_definition_files",
    "resolve",
    "store_columns",
    "table_name",
    "to_micros",
    "write_store",
]


def build_training_frame(
    labels: pd.DataFrame, views: list[dict[str, Any]], event_time: str, root: Path
) -> pd.DataFrame:
    """``labels`` with the features of ``views`` (resolved) joined point in time, row order kept."""
    from shipyard.features._offline import connect, feature_tables, point_in_time_join

    con = connect()
    try:
        tables = feature_tables(con, views, root)
        return point_in_time_join(con, labels, views, tables, event_time)
    finally:
        con.close()
