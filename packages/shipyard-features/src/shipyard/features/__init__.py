"""Shared feature definitions: entities, sources and versioned feature views declared in git
under ``conf/features/<team>/``, joined point in time onto a project's label rows (DuckDB's ASOF
join) and served from an online store by the same definitions.

Public surface:

- :func:`load_catalog`, :func:`resolve`: read and check every definition; resolve a project's
  ``features.views`` into plain data with the hash of each feature used.
- :func:`build_training_frame`: the point-in-time join of a project's label rows.
- :func:`materialize`, :class:`FeatureLookup`: the online store and its request-time lookup.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.features._catalog import Catalog, column_names, load_catalog, read_definition_files, resolve
from shipyard.features._online import FeatureLookup, lookup_spec, materialize, table_name, to_micros
from shipyard.features._schema import parse_duration

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Catalog",
    "FeatureLookup",
    "build_training_frame",
    "column_names",
    "load_catalog",
    "lookup_spec",
    "materialize",
    "parse_duration",
    "read_definition_files",
    "resolve",
    "table_name",
    "to_micros",
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
