"""The point-in-time join: a feature value comes from at or before the label's time, never after,
and not from longer ago than the view's time-to-live; definitions are checked at load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shipyard.core.errors import ConfigError
from shipyard.core.schema import FeatureRefConf
from shipyard.features import build_training_frame, load_catalog, resolve

DEFS = """
entities:
  customer: {join_key: customer_id}
sources:
  events:
    entity: customer
    event_time: ts
    source: {kind: csv, path: events.csv}
views:
  - name: spend
    version: 1
    source: events
    owner: "@team"
    description: spend
    ttl: 10d
    features:
      total_3d: {agg: sum, column: amount, window: 3d}
      n_all: {agg: count}
      last_amount: {agg: last, column: amount}
      share: {ratio: [total_3d, n_all]}
      channel: {onehot: [web, app], column: channel}
"""


def _views(root: Path, text: str = DEFS, ttl: str | None = "10d") -> list[dict[str, object]]:
    text = text if ttl == "10d" else text.replace("ttl: 10d", f"ttl: {ttl}" if ttl else "ttl: null")
    catalog = load_catalog(root, {"conf/features/team/defs.yaml": text})
    return resolve(catalog, [FeatureRefConf(view="spend", version=1)])


def _events(root: Path, rows: list[tuple[str, str, float, str]]) -> None:
    pd.DataFrame(rows, columns=["customer_id", "ts", "amount", "channel"]).to_csv(root / "events.csv", index=False)


def test_a_value_from_after_the_label_time_never_leaks(tmp_path: Path) -> None:
    """The crafted row: an event one second after the label's time, with a huge amount."""
    _events(
        tmp_path,
        [
            ("a", "2024-01-01 10:00:00", 5.0, "web"),
            ("a", "2024-01-03 12:00:00", 7.0, "app"),  # exactly at the label time: counts
            ("a", "2024-01-03 12:00:01", 1000.0, "web"),  # one second later: must not count
            ("b", "2024-01-02 00:00:00", 3.0, "web"),
        ],
    )
    labels = pd.DataFrame({"customer_id": ["a", "b", "c"], "t": ["2024-01-03 12:00:00"] * 3, "y": [1, 0, 1]})
    out = build_training_frame(labels, _views(tmp_path), "t", tmp_path)
    a, b, c = (out.iloc[i] for i in range(3))
    assert a["spend__total_3d"] == 12.0 and a["spend__n_all"] == 2 and a["spend__last_amount"] == 7.0
    assert a["spend__share"] == 6.0
    assert (a["spend__channel_web"], a["spend__channel_app"]) == (0.0, 1.0)
    assert b["spend__total_3d"] == 3.0 and b["spend__channel_web"] == 1.0
    assert np.isnan(c["spend__total_3d"]), "an entity with no history gets missing values"
    assert list(out["y"]) == [1, 0, 1], "label rows keep their order and columns"


def test_time_to_live(tmp_path: Path) -> None:
    _events(tmp_path, [("a", "2024-01-01 00:00:00", 5.0, "web")])
    labels = pd.DataFrame({"customer_id": ["a", "a"], "t": ["2024-01-10 00:00:00", "2024-01-12 00:00:00"]})
    out = build_training_frame(labels, _views(tmp_path), "t", tmp_path)
    assert out["spend__n_all"].iloc[0] == 1, "9 days old: within the 10-day TTL"
    assert np.isnan(out["spend__n_all"].iloc[1]), "11 days old: past the TTL, missing"
    out = build_training_frame(labels, _views(tmp_path, ttl=None), "t", tmp_path)
    assert list(out["spend__n_all"]) == [1, 1], "no TTL: any age"


def test_join_matches_a_brute_force_reference(tmp_path: Path) -> None:
    """Random events and label times: each row's values equal a direct computation from the
    events at or before its time (the 3-day window ending at the latest such event)."""
    rng = np.random.default_rng(3)
    base = pd.Timestamp("2024-01-01")
    times = base + pd.to_timedelta(rng.integers(0, 30 * 86400, 400), unit="s")
    events = pd.DataFrame(
        {
            "customer_id": rng.choice(["a", "b", "c", "d"], 400),
            "ts": times.strftime("%Y-%m-%d %H:%M:%S"),
            "amount": rng.integers(1, 100, 400).astype(float),
            "channel": rng.choice(["web", "app"], 400),
        }
    )
    events.to_csv(tmp_path / "events.csv", index=False)
    label_times = base + pd.to_timedelta(rng.integers(0, 32 * 86400, 200), unit="s")
    labels = pd.DataFrame({"customer_id": rng.choice(["a", "b", "c", "d", "e"], 200), "t": label_times})
    out = build_training_frame(labels, _views(tmp_path, ttl=None), "t", tmp_path)
    ev = events.assign(ts=pd.to_datetime(events["ts"]))
    for row, got in zip(labels.itertuples(), out.itertuples(), strict=True):
        seen = ev[(ev.customer_id == row.customer_id) & (ev.ts <= row.t)]
        if seen.empty:
            assert np.isnan(got.spend__total_3d)
            continue
        last = seen.ts.max()
        in_window = seen[seen.ts >= last - pd.Timedelta(days=3)]
        assert got.spend__n_all == len(seen)
        assert got.spend__total_3d == pytest.approx(in_window.amount.sum())


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (("source: events\n    owner", "source: evnts\n    owner"), ["unknown feature source 'evnts'", "events"]),
        (("{agg: count}", "{agg: count, ratio: [a, b]}"), ["exactly one of agg, ratio and onehot"]),
        (("ratio: [total_3d, n_all]", "ratio: [total_3d, nope]"), ["a ratio divides two aggregation features"]),
        (("window: 3d", "window: 3days"), ["'3days' is not a duration"]),
        (("agg: sum", "agg: median"), ["median"]),
        (("ttl: 10d", "ttl: 10d\n    colour: red"), ["colour"]),
    ],
)
def test_a_bad_definition_is_one_message(tmp_path: Path, edit: tuple[str, str], words: list[str]) -> None:
    text = DEFS.replace(*edit)
    assert text != DEFS
    with pytest.raises(ConfigError) as info:
        load_catalog(tmp_path, {"conf/features/team/defs.yaml": text})
    assert info.value.where and "conf/features/team/defs.yaml" in info.value.where
    for word in words:
        assert word in str(info.value), str(info.value)


def test_hash_changes_with_the_definition_not_the_description(tmp_path: Path) -> None:
    before = load_catalog(tmp_path, {"f.yaml": DEFS}).hashes()["spend@1"]
    described = load_catalog(tmp_path, {"f.yaml": DEFS.replace("description: spend", "description: money")})
    assert described.hashes()["spend@1"] == before
    changed = load_catalog(tmp_path, {"f.yaml": DEFS.replace("window: 3d", "window: 4d")}).hashes()["spend@1"]
    assert {f for f in before if before[f] != changed[f]} == {"total_3d", "share"}, "the ratio built on it too"


def test_online_store_lookup_equals_the_training_join(tmp_path: Path) -> None:
    """The same rows through the training join (DuckDB, offline) and through the online store
    (materialised into a real SQLite file, looked up row by row as the service would): the
    feature vectors are identical, TTL and missing entities included."""
    from shipyard.features import FeatureLookup, lookup_spec, materialize

    rng = np.random.default_rng(8)
    base = pd.Timestamp("2024-01-01")
    times = base + pd.to_timedelta(rng.integers(0, 60 * 86400, 300), unit="s")
    pd.DataFrame(
        {
            "customer_id": rng.choice(["a", "b", "c"], 300),
            "ts": times.strftime("%Y-%m-%d %H:%M:%S"),
            "amount": rng.integers(1, 100, 300).astype(float),
            "channel": rng.choice(["web", "app"], 300),
        }
    ).to_csv(tmp_path / "events.csv", index=False)
    label_times = base + pd.to_timedelta(rng.integers(0, 90 * 86400, 120), unit="s")
    labels = pd.DataFrame(
        {"customer_id": rng.choice(["a", "b", "c", "z"], 120), "t": label_times.strftime("%Y-%m-%d %H:%M:%S")}
    )
    views = _views(tmp_path)
    batch = build_training_frame(labels, views, "t", tmp_path)
    store = tmp_path / "features.sqlite"
    assert materialize(views, tmp_path, file=store) > 0
    lookup = FeatureLookup(lookup_spec(views, "t", None), tmp_path, store.name)
    try:
        online = lookup.fill({c: list(labels[c]) for c in lookup.inputs})
    finally:
        lookup.close()
    assert list(online) == lookup.columns == [c for c in batch.columns if c.startswith("spend__")]
    served = pd.DataFrame(online).astype("float64")
    assert served.isna().any().any() and served.notna().any().all(), "both found and missing values are compared"
    pd.testing.assert_frame_equal(served, batch[lookup.columns].astype("float64"), check_exact=True)


@pytest.mark.parametrize("only", [["last_amount"], ["total_3d", "n_all"]])
def test_a_view_of_one_kind_of_feature_gives_the_same_values(tmp_path: Path, only: list[str]) -> None:
    """A view with only `last` features (or only aggregations) is computed without the join of
    the two halves; its values equal those of the view that has both."""
    rng = np.random.default_rng(4)
    times = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 20 * 86400, 200), unit="s")
    pd.DataFrame(
        {
            "customer_id": rng.choice(["a", "b"], 200),
            "ts": times.strftime("%Y-%m-%d %H:%M:%S"),
            "amount": rng.integers(1, 100, 200).astype(float),
            "channel": rng.choice(["web", "app"], 200),
        }
    ).to_csv(tmp_path / "events.csv", index=False)
    labels = pd.DataFrame({"customer_id": rng.choice(["a", "b"], 50), "t": times[:50].strftime("%Y-%m-%d %H:%M:%S")})
    catalog = load_catalog(tmp_path, {"f.yaml": DEFS})
    full = build_training_frame(labels, resolve(catalog, [FeatureRefConf(view="spend", version=1)]), "t", tmp_path)
    head, _, _ = DEFS.partition("    features:\n")
    lines = [line for line in DEFS.splitlines() if any(line.strip().startswith(f"{f}:") for f in only)]
    part = load_catalog(tmp_path, {"f.yaml": head + "    features:\n" + "\n".join(lines) + "\n"})
    some = build_training_frame(labels, resolve(part, [FeatureRefConf(view="spend", version=1)]), "t", tmp_path)
    columns = [f"spend__{f}" for f in only]
    pd.testing.assert_frame_equal(some[columns], full[columns])


def test_the_lookup_names_why_a_row_has_no_features(tmp_path: Path) -> None:
    """Each row the store cannot serve gets one reason: an entity the store does not know, one
    with no value at or before the row's time, one whose latest value is older than the TTL;
    a served row gets None and the values of its latest event at or before its time."""
    from shipyard.features import FeatureLookup, lookup_spec, materialize

    pd.DataFrame(
        {
            "customer_id": ["a", "a", "b"],
            "ts": ["2024-01-01 00:00:00", "2024-01-05 00:00:00", "2024-01-03 00:00:00"],
            "amount": [10.0, 20.0, 5.0],
            "channel": ["web", "app", "web"],
        }
    ).to_csv(tmp_path / "events.csv", index=False)
    views = _views(tmp_path)
    store = tmp_path / "features.db"
    materialize(views, tmp_path, file=store)
    lookup = FeatureLookup(lookup_spec(views, "t", None), tmp_path, store.name)
    rows = {
        "customer_id": ["a", "zz", "b", "b", "a"],
        "t": ["2024-01-06 00:00:00", "2024-01-06", "2024-01-02 00:00:00", "2024-02-01T00:00:00Z", "2024-01-05"],
    }
    try:
        values, reasons = lookup.lookup(rows)
    finally:
        lookup.close()
    assert reasons[0] is None and values["spend__last_amount"][0] == 20.0
    assert reasons[1] == "customer_id 'zz' is unknown to feature view spend@1"
    assert reasons[2] == "customer_id 'b' has no spend@1 values at or before its t"
    assert reasons[3] is not None and "older than the view's ttl (864000 s)" in reasons[3]
    assert reasons[4] is None and values["spend__last_amount"][4] == 20.0, "an event at the row's time counts"
    assert all(values[c][i] is None for c in values for i in (1, 2, 3))


@pytest.mark.drill
def test_materialize_never_replaces_a_file_it_did_not_write(tmp_path: Path) -> None:
    """The fault: the store's path already holds someone else's file (a SQLite database of
    another tool, or any file). Materialising must refuse with one message naming it, and leave
    the file byte for byte as it was; a store Shipyard wrote is replaced."""
    import sqlite3

    from shipyard.core.errors import DataError
    from shipyard.features import materialize

    pd.DataFrame({"customer_id": ["a"], "ts": ["2024-01-01"], "amount": [1.0], "channel": ["web"]}).to_csv(
        tmp_path / "events.csv", index=False
    )
    views = _views(tmp_path)
    foreign = tmp_path / "features.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE mine (x INTEGER)")
    con.close()
    before = foreign.read_bytes()
    with pytest.raises(DataError, match="not an online store Shipyard wrote"):
        materialize(views, tmp_path, file=foreign)
    assert foreign.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv", "features.db"], "no temporary file left"
    ours = tmp_path / "ours.db"
    assert materialize(views, tmp_path, file=ours) == 1
    assert materialize(views, tmp_path, file=ours) == 1, "its own store is replaced"
