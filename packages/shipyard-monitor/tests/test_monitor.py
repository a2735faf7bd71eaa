"""Drift on injected shifts (mean shift, new category, missing-rate jump, prediction), none on
replays at any size, labels joined by key, the reports, and the trigger with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shipyard.core.compose import section
from shipyard.core.errors import DataError
from shipyard.core.schema import DriftConf, TriggerConf
from shipyard.data.profile import reference_profile
from shipyard.monitor import (
    EXIT_DRIFT,
    EXIT_HEALTHY,
    TriggerState,
    decide,
    exit_code,
    input_batches,
    monitor_window,
    read_labels,
    table,
    write_reports,
)

FEATURES = ["a", "b", "c", "colour"]


def data(n: int, seed: int, *, shift: float = 0.0, colours: tuple[str, ...] = ("red", "blue", "green")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(0, 1, n) + shift,
            "b": rng.exponential(2.0, n),
            "c": rng.uniform(-5, 5, n),
            "colour": rng.choice(list(colours), n),
            "_prediction": rng.choice(["0", "1"], n),
        }
    )


REFERENCE = data(20_000, 0)
PROFILE = reference_profile(
    REFERENCE, FEATURES, {"colour"}, list(REFERENCE["_prediction"]), "binary", {"val/accuracy": 0.9}, 20, ["0", "1"]
)
DRIFT = DriftConf()


def run(frame: pd.DataFrame, **extra: object) -> dict:
    batches = pa.Table.from_pandas(frame, preserve_index=False).to_batches(max_chunksize=4096)
    return monitor_window(
        batches,
        PROFILE,
        DRIFT,
        project="t/p",
        version="v1.0.0",
        since=None,
        until=None,
        source="test",
        prediction_column="_prediction",
        **extra,
    )


@pytest.mark.parametrize("rows", [1_000, 100_000, 1_000_000])
def test_replays_of_the_reference_distribution_raise_no_alarm(rows: int) -> None:
    result = run(data(rows, rows))
    assert result["status"] == "healthy", table(result)
    assert exit_code(result["status"]) == EXIT_HEALTHY


def test_a_tenth_of_a_sigma_mean_shift_is_caught_at_100k_rows() -> None:
    result = run(data(100_000, 7, shift=0.1))
    assert result["drifted"] == ["a"], table(result)
    assert result["status"] == "drift" and exit_code("drift") == EXIT_DRIFT
    a = next(f for f in result["features"] if f["feature"] == "a" and f["kind"] == "numeric")
    assert 0.07 < a["effect"] < 0.12 and a["p_adjusted"] < 1e-6


def test_a_tiny_real_shift_at_a_million_rows_stays_below_the_floor() -> None:
    result = run(data(1_000_000, 8, shift=0.04))
    a = next(f for f in result["features"] if f["feature"] == "a" and f["kind"] == "numeric")
    assert a["p_adjusted"] < 0.05 and not a["drifted"], "significant, but too small to matter"
    assert result["status"] == "healthy"


def test_a_new_category_is_caught_and_named() -> None:
    result = run(data(5_000, 9, colours=("red", "blue", "green", "purple")))
    colour = next(f for f in result["features"] if f["feature"] == "colour" and f["kind"] == "categorical")
    assert colour["drifted"] and colour["new_categories"] == ["purple"]


def test_a_missing_rate_jump_is_caught() -> None:
    frame = data(5_000, 10)
    frame.loc[frame.index % 5 == 0, "b"] = np.nan
    result = run(frame)
    missing = next(f for f in result["features"] if f["feature"] == "b" and f["kind"] == "missing")
    assert missing["drifted"] and missing["null_rate"] == pytest.approx(0.2)
    assert result["drifted"] == ["b"]


def test_prediction_drift() -> None:
    frame = data(5_000, 11)
    frame["_prediction"] = np.where(np.arange(5_000) % 10 == 0, "0", "1")
    assert run(frame)["prediction_drift"]


def test_a_small_window_is_not_judged() -> None:
    result = run(data(50, 12, shift=3.0))
    assert result["status"] == "too_small" and "fewer than drift.min_rows=100" in result["note"]


def test_labels_join_by_key_and_measure_live_metrics(tmp_path: Path) -> None:
    frame = data(1_000, 13)
    frame["_key"] = [f"k{i}" for i in range(1_000)]
    frame["_score"] = 0.5
    truth = np.where(np.arange(1_000) % 2 == 0, frame["_prediction"], "x")  # half right
    labels_file = tmp_path / "labels.csv"
    pd.DataFrame({"id": frame["_key"][:800], "target": truth[:800]}).to_csv(labels_file, index=False)
    result = run(frame, labels=read_labels(labels_file, "id", "target"))
    assert result["labels"]["joined"] == 800
    assert result["labels"]["metrics"]["accuracy"] == pytest.approx(0.5)
    assert result["labels"]["drops"]["accuracy"] == pytest.approx(0.4)
    with pytest.raises(DataError, match="lacks column"):
        read_labels(labels_file, "row", "target")


def test_reports_are_written_and_self_contained(tmp_path: Path) -> None:
    result = run(data(5_000, 14, shift=0.5))
    data_file, page = write_reports(result, PROFILE, tmp_path / "w")
    text = page.read_text()
    assert "<svg" in text and "drift" in text and "http" not in text.replace("http-equiv", "")
    assert '"drifted": [' in data_file.read_text()


def test_input_files_stream_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pandas(data(10_000, 15)), path, row_group_size=1000)
    batches = list(input_batches(path, FEATURES, batch_rows=1000))
    assert len(batches) == 10 and batches[0].num_rows == 1000
    with pytest.raises(DataError, match="does not exist"):
        list(input_batches(tmp_path / "none.csv", FEATURES))


def window(share: float, day: int, judged: bool = True) -> dict:
    return {
        "judged": judged,
        "drift_share": share,
        "window": {"since": f"d{day}", "until": f"d{day + 1}"},
        "labels": None,
    }


def test_trigger_fires_after_consecutive_windows_waits_out_its_cooldown_and_records_why(tmp_path: Path) -> None:
    conf = section(TriggerConf, {"drift_share": 0.3, "windows": 2, "cooldown": "2d"}, "monitor.trigger")
    state_file = tmp_path / "trigger.json"
    clock = datetime(2026, 1, 1, tzinfo=UTC)

    def step(share: float, day: int) -> object:
        state = TriggerState.load(state_file)
        decision = decide(
            state, window(share, day), conf, now=clock + timedelta(days=day), production_age=None, max_age=None
        )
        state.save(state_file)
        return decision

    assert not step(0.5, 0).fired, "one drifted window is not two"
    assert not step(0.1, 1).fired, "a quiet window breaks the run"
    assert not step(0.5, 2).fired
    fired = step(0.5, 3)
    assert fired.fired and "2 consecutive window(s)" in fired.reasons[0]
    assert not step(0.5, 4).fired
    held = step(0.5, 4.5)  # type: ignore[arg-type]
    assert not held.fired and held.cooling_until == (clock + timedelta(days=5)).isoformat()
    assert step(0.5, 6).fired, "past the cooldown, two more drifted windows fire again"
    state = TriggerState.load(state_file)
    assert [f["at"][:10] for f in state.firings] == ["2026-01-04", "2026-01-07"]
    assert all("consecutive" in f["reasons"][0] for f in state.firings)


def test_trigger_on_age_and_live_metric() -> None:
    conf = section(TriggerConf, {"drift_share": None, "metric": "accuracy", "max_drop": 0.05}, "monitor.trigger")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    quiet = decide(TriggerState(), window(0.0, 0), conf, now=now, production_age=timedelta(days=3), max_age="30d")
    assert not quiet.fired
    old = decide(TriggerState(), window(0.0, 0), conf, now=now, production_age=timedelta(days=31), max_age="30d")
    assert old.fired and "31 day(s) old" in old.reasons[0]
    dropped = dict(window(0.0, 1), labels={"drops": {"accuracy": 0.08}})
    decision = decide(TriggerState(), dropped, conf, now=now, production_age=None, max_age=None)
    assert decision.fired and "live accuracy is 0.0800 below validation" in decision.reasons[0]


def test_a_damaged_state_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "trigger.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="damaged"):
        TriggerState.load(path)
