"""Feature tables and point-in-time joins, in DuckDB.

A view's *feature table* has one row per entity and event time of its source: the value of every
feature as of that moment (windowed aggregations over ``[t - window, t]``, the latest value of a
column, ratios and one-hot encodings of those). :func:`point_in_time_join` joins the feature
tables onto a project's label rows with DuckDB's ``ASOF LEFT JOIN``: for each label row, the
feature row of the same entity with the latest time at or before the label's time; a row older
than the view's time-to-live counts as missing. Then every joined row is checked against that
rule (no feature time after the label time, none older than the TTL); a violation stops the
join naming the row. The same feature table fills the online store (:mod:`._online`), so
training, the service and the batch job read values computed by the same SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.errors import DataError, StageError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

__all__ = ["connect", "feature_table", "feature_tables", "point_in_time_join", "read_events"]

KEY, TS = "__key", "__ts"
_NUMERIC = {"count", "sum", "mean", "min", "max"}
_SQL_AGG = {"count": "count", "sum": "sum", "mean": "avg", "min": "min", "max": "max"}


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with UTC as its time zone (naive times are UTC)."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def read_events(view: Mapping[str, Any], root: Path) -> pd.DataFrame:
    """The rows of a view's source (any Shipyard data source), read as a project's data is."""
    from shipyard.core.compose import section
    from shipyard.core.schema import SourceConf
    from shipyard.data.sources import read_source

    source = section(SourceConf, dict(view["source"]), "source")
    frame = read_source(source, root)
    for column in (view["join_key"], view["event_time"]):
        if column not in frame.columns:
            raise DataError(
                f"feature source of {view['view']}@{view['version']} has no column {column!r}",
                where=str(source.path or source.url),
                fix="fix the source's entity join key or event_time under conf/features/, or the data",
            )
    return frame


def _agg_sql(name: str, spec: Mapping[str, Any]) -> tuple[str, str | None]:
    """(expression, window clause) of one aggregation feature."""
    func = _SQL_AGG[spec["agg"]]
    arg = "*" if spec["agg"] == "count" and not spec.get("column") else _q(spec["column"])
    seconds = spec.get("window_seconds")
    frame = (
        f"RANGE BETWEEN INTERVAL {int(seconds)} SECONDS PRECEDING AND CURRENT ROW"
        if seconds
        else ("RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW")
    )
    window = f"w_{name} AS (PARTITION BY {KEY} ORDER BY {TS} {frame})"
    return f"CAST({func}({arg}) OVER w_{name} AS DOUBLE) AS {_q(name)}", window


def feature_table(con: duckdb.DuckDBPyConnection, view: Mapping[str, Any], events: str, name: str) -> None:
    """Create the temporary table ``name``: the view's feature table from the relation ``events``
    (columns ``__key``, ``__ts`` and the features, one row per entity and event time)."""
    features: dict[str, dict[str, Any]] = view["features"]
    key, ts = _q(view["join_key"]), _q(view["event_time"])
    aggs = {n: s for n, s in features.items() if s.get("agg") in _NUMERIC}
    lasts = sorted({s["column"] for s in features.values() if s.get("agg") == "last" or s.get("onehot")})
    parts = [_agg_sql(n, s) for n, s in aggs.items()]
    agg_cols = ", ".join(f"first({_q(n)}) AS {_q(n)}" for n in aggs)
    last_cols = ", ".join(
        f"last_value(__l{i} IGNORE NULLS) OVER (PARTITION BY {KEY} ORDER BY {TS} "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS __last{i}"
        for i in range(len(lasts))
    )
    outputs = []
    for feature, spec in features.items():
        if spec.get("agg") in _NUMERIC:
            outputs.append(f"a.{_q(feature)}")
        elif spec.get("agg") == "last":
            outputs.append(f"l.__last{lasts.index(spec['column'])} AS {_q(feature)}")
        elif spec.get("onehot"):
            latest = f"l.__last{lasts.index(spec['column'])}"
            for category in spec["onehot"]:
                outputs.append(
                    f"CASE WHEN {latest} IS NULL THEN NULL ELSE CAST(CAST({latest} AS VARCHAR) = {_lit(category)} "
                    f"AS DOUBLE) END AS {_q(f'{feature}_{category}')}"
                )
    for feature, spec in features.items():
        if spec.get("ratio"):
            top, bottom = (
                f"a.{_q(p)}" if p in aggs else f"l.__last{lasts.index(features[p]['column'])}" for p in spec["ratio"]
            )
            outputs.append(f"CAST({top} AS DOUBLE) / NULLIF(CAST({bottom} AS DOUBLE), 0) AS {_q(feature)}")
    base = (
        f"SELECT {key} AS {KEY}, CAST({ts} AS TIMESTAMPTZ) AS {TS}, * FROM {events} "
        f"WHERE {key} IS NOT NULL AND {ts} IS NOT NULL"
    )
    agg_sql = (
        f"SELECT {KEY}, {TS}, {agg_cols} FROM (SELECT {KEY}, {TS}, {', '.join(p[0] for p in parts)} FROM ev "
        f"WINDOW {', '.join(p[1] for p in parts if p[1])}) GROUP BY {KEY}, {TS}"
        if parts
        else f"SELECT DISTINCT {KEY}, {TS} FROM ev"
    )
    rep = ", ".join(f"max({_q(c)}) AS __l{i}" for i, c in enumerate(lasts))
    last_sql = (
        f"SELECT {KEY}, {TS}, {last_cols} FROM (SELECT {KEY}, {TS}, {rep} FROM ev GROUP BY {KEY}, {TS})"
        if lasts
        else f"SELECT DISTINCT {KEY}, {TS} FROM ev"
    )
    # Both halves have one row per (key, time); a view with one kind of feature needs no join.
    if parts and lasts:
        joined, side = f"agg a JOIN lst l ON a.{KEY} = l.{KEY} AND a.{TS} = l.{TS}", "a"
    elif parts:
        joined, side = "agg a", "a"
    else:
        joined, side = "lst l", "l"
    select_keys = f"{side}.{KEY}, {side}.{TS}"
    sql = (
        f"CREATE OR REPLACE TEMP TABLE {_q(name)} AS WITH ev AS ({base}), agg AS ({agg_sql}), lst AS ({last_sql}) "
        f"SELECT {select_keys}, {', '.join(outputs)} FROM {joined}"
    )
    _run(con, sql, view)


def _run(con: duckdb.DuckDBPyConnection, sql: str, view: Mapping[str, Any]) -> Any:
    import duckdb

    try:
        return con.execute(sql)
    except duckdb.Error as exc:
        raise DataError(
            f"cannot compute feature view {view['view']}@{view['version']}: {str(exc).splitlines()[0]}",
            where=str(view["source"].get("path") or view["source"].get("url") or view["view"]),
            fix="check the view's columns against its source (a sum or mean needs a numeric column; times must "
            "read as timestamps, e.g. 2024-03-05 10:00:00)",
        ) from exc


def feature_tables(con: duckdb.DuckDBPyConnection, views: list[Mapping[str, Any]], root: Path) -> list[str]:
    """The feature table of each view (from its source), as temp tables ``fv_0``, ``fv_1``, …"""
    names = []
    for i, view in enumerate(views):
        con.register(f"events_{i}", read_events(view, root))
        feature_table(con, view, f"events_{i}", f"fv_{i}")
        con.unregister(f"events_{i}")
        names.append(f"fv_{i}")
    return names


def point_in_time_join(
    con: duckdb.DuckDBPyConnection,
    labels: pd.DataFrame,
    views: list[Mapping[str, Any]],
    tables: list[str],
    event_time: str,
) -> pd.DataFrame:
    """``labels`` with every view's selected feature columns joined point in time (see the module
    docstring); label rows keep their order. Each joined row is checked against the rule."""
    import numpy as np

    for column in {event_time, *(v["join_key"] for v in views)}:
        if column not in labels.columns:
            raise DataError(
                f"the label rows have no column {column!r}, which the feature join needs",
                key="features.event_time" if column == event_time else "features.views",
                fix="keep the column in the project's data (not in data.drop), or fix features.event_time",
            )
    con.register("labels_in", labels.assign(__row=np.arange(len(labels), dtype=np.int64)))
    _run(
        con,
        f"CREATE OR REPLACE TEMP TABLE labels AS SELECT *, CAST({_q(event_time)} AS TIMESTAMPTZ) AS __label_ts "
        "FROM labels_in",
        {"view": "labels", "version": "", "source": {"path": event_time}},
    )
    con.unregister("labels_in")
    missing = con.execute("SELECT count(*), min(__row) FROM labels WHERE __label_ts IS NULL").fetchone()
    if missing and missing[0]:
        raise DataError(
            f"{missing[0]} label row(s) have no time in {event_time!r} (first: row {missing[1]}), so no feature "
            "value can be placed before them",
            key="features.event_time",
            fix="fill the time of every row, or drop the rows without one",
        )
    joins, selects, checks = [], [], []
    for i, (view, table) in enumerate(zip(views, tables, strict=True)):
        key_type = con.execute(f"SELECT typeof({KEY}) FROM {table} LIMIT 1").fetchone()
        label_key = f"CAST(l.{_q(view['join_key'])} AS {key_type[0]})" if key_type else f"l.{_q(view['join_key'])}"
        joins.append(f"ASOF LEFT JOIN {table} f{i} ON {label_key} = f{i}.{KEY} AND l.__label_ts >= f{i}.{TS}")
        ttl = view.get("ttl_seconds")
        fresh = f"f{i}.{TS} IS NOT NULL" + (
            f" AND l.__label_ts - f{i}.{TS} <= INTERVAL {int(ttl)} SECONDS" if ttl else ""
        )
        for feature in view["selected"]:
            spec = view["features"][feature]
            suffixes = [f"_{c}" for c in spec["onehot"]] if spec.get("onehot") else [""]
            for suffix in suffixes:
                out = f"{view['view']}__{feature}{suffix}"
                selects.append(f"CASE WHEN {fresh} THEN f{i}.{_q(feature + suffix)} END AS {_q(out)}")
        selects.append(f"CASE WHEN {fresh} THEN f{i}.{TS} END AS __ft{i}")
        rule = f"__ft{i} > __label_ts" + (f" OR __label_ts - __ft{i} > INTERVAL {int(ttl)} SECONDS" if ttl else "")
        checks.append((view, rule, i))
    sql = f"CREATE OR REPLACE TEMP TABLE joined AS SELECT l.*, {', '.join(selects)} FROM labels l {' '.join(joins)}"
    con.execute(sql)
    for view, rule, i in checks:
        bad = con.execute(
            f"SELECT count(*), min(__row), any_value(__ft{i}), any_value(__label_ts) FROM joined WHERE {rule}"
        ).fetchone()
        if bad and bad[0]:
            raise StageError(
                f"the point-in-time join of {view['view']}@{view['version']} broke the no-future rule on "
                f"{bad[0]} row(s) (first: label row {bad[1]}, feature time {bad[2]} for label time {bad[3]})",
                fix="report this as a bug in shipyard.features: no row may see a value from after its time",
            )
    helpers = ["__row", "__label_ts", *(f"__ft{i}" for i in range(len(views)))]
    frame = con.execute(f"SELECT * EXCLUDE ({', '.join(helpers)}) FROM joined ORDER BY __row").df()
    return frame
