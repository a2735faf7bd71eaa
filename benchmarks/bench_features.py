"""Point-in-time join budget, as ratios measured in one command:

- time and peak memory of Shipyard's feature join (``shipyard.features.build_training_frame``:
  the view's feature table, DuckDB's ASOF join with a time-to-live, the no-future check on every
  row) against a plain pandas ``merge_asof`` of the same data (the latest event's value at or
  before each label, within the same time-to-live).

``.venv/bin/python benchmarks/bench_features.py`` (``--labels``, ``--events``, ``--entities``);
defaults: 1M label rows against 10M events of 100k entities, generated with seed 5 into a
temporary folder as Parquet (about 250 MB). Each side runs in a fresh process (``--child``) after
its imports, timed from reading the Parquet files to the joined frame in memory; peak memory is
the process's peak RSS (VmHWM), which includes the interpreter and its imports. Both sides' values
are compared (they must be equal) before the ratios are printed. Prints a table, writes
``.bench/features.json``; exits 0 with a report, 1 when a side fails or the values differ.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TTL_DAYS = 30
TIMEOUT = 900.0


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def generate(folder: Path, labels: int, events: int, entities: int) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(5)
    # Microsecond times: two events of one entity at the same moment (where "the latest" would be
    # ambiguous between the two sides) practically never happen.
    start = pd.Timestamp("2024-01-01").value // 10**3
    span = 365 * 86400 * 10**6
    pd.DataFrame(
        {
            "customer_id": rng.integers(0, entities, events, dtype=np.int64),
            "ts": pd.to_datetime(start + rng.integers(0, span, events), unit="us"),
            "amount": rng.gamma(2.0, 20.0, events).round(2),
        }
    ).to_parquet(folder / "events.parquet", index=False)
    pd.DataFrame(
        {
            "customer_id": rng.integers(0, entities, labels, dtype=np.int64),
            "label_time": pd.to_datetime(start + rng.integers(0, span, labels), unit="us"),
            "y": rng.integers(0, 2, labels),
        }
    ).to_parquet(folder / "labels.parquet", index=False)


def _views(folder: Path) -> list[dict[str, Any]]:
    from shipyard.core.schema import FeatureRefConf
    from shipyard.features import load_catalog, resolve

    text = f"""
entities: {{customer: {{join_key: customer_id}}}}
sources:
  events: {{entity: customer, event_time: ts, source: {{kind: parquet, path: events.parquet}}}}
views:
  - name: spend
    version: 1
    source: events
    owner: bench
    description: the latest amount
    ttl: {TTL_DAYS}d
    features:
      last_amount: {{agg: last, column: amount}}
"""
    catalog = load_catalog(folder, {"conf/features/bench/defs.yaml": text})
    return resolve(catalog, [FeatureRefConf(view="spend", version=1)])


def child(side: str, folder: Path) -> dict[str, Any]:
    import pandas as pd

    if side == "shipyard":
        from shipyard.features import build_training_frame

        views = _views(folder)
        started = time.perf_counter()
        labels = pd.read_parquet(folder / "labels.parquet")
        out = build_training_frame(labels, views, "label_time", folder)
        values = out["spend__last_amount"]
    else:
        started = time.perf_counter()
        labels = pd.read_parquet(folder / "labels.parquet")
        events = pd.read_parquet(folder / "events.parquet").sort_values("ts", kind="stable")
        order = labels.assign(__row=range(len(labels))).sort_values("label_time", kind="stable")
        joined = pd.merge_asof(
            order,
            events,
            left_on="label_time",
            right_on="ts",
            by="customer_id",
            direction="backward",
            tolerance=pd.Timedelta(days=TTL_DAYS),
        )
        values = joined.sort_values("__row")["amount"].reset_index(drop=True)
    seconds = time.perf_counter() - started
    values.reset_index(drop=True).to_frame("v").to_parquet(folder / f"{side}.parquet")
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "rows": len(values)}


def _run_child(side: str, folder: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", side, "--folder", str(folder)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{side} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--child", choices=["shipyard", "pandas"])
    parser.add_argument("--folder", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder)))
        return 0
    import numpy as np
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        folder = Path(tmp)
        generate(folder, args.labels, args.events, args.entities)
        try:
            results = {side: _run_child(side, folder) for side in ("shipyard", "pandas")}
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(exc, file=sys.stderr)
            return 1
        ours, theirs = (pd.read_parquet(folder / f"{s}.parquet")["v"].to_numpy() for s in ("shipyard", "pandas"))
        same = bool(np.array_equal(ours, theirs, equal_nan=True))
        matched = float(np.mean(~np.isnan(ours)))
    report = {
        "labels": args.labels,
        "events": args.events,
        "entities": args.entities,
        "ttl_days": TTL_DAYS,
        "matched_fraction": round(matched, 4),
        "same_values": same,
        **results,
        "time_ratio": results["shipyard"]["seconds"] / results["pandas"]["seconds"],
        "memory_ratio": results["shipyard"]["peak_rss_mb"] / results["pandas"]["peak_rss_mb"],
    }
    print(f"point-in-time join: {args.labels:,} label rows x {args.events:,} events ({args.entities:,} entities)")
    print(f"{'':10}{'seconds':>10}{'peak MB':>10}")
    for side in ("shipyard", "pandas"):
        print(f"{side:10}{results[side]['seconds']:>10.2f}{results[side]['peak_rss_mb']:>10.0f}")
    print(f"ratios (shipyard / pandas): time {report['time_ratio']:.2f}x, peak memory {report['memory_ratio']:.2f}x")
    print(f"values identical: {same} ({matched:.1%} of rows matched within the {TTL_DAYS}-day TTL)")
    out = REPO / ".bench" / "features.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
