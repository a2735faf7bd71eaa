"""The prediction log: round trip, windows, the bounded queue, a clean close, SQL, and files
that stay whole when the writing process is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from shipyard.core.errors import ConfigError
from shipyard.predlog import (
    KEY,
    LOGGED_AT,
    MODEL_VERSION,
    PREDICTION,
    SCORE,
    LogLocation,
    open_log,
    read_batches,
    read_frame,
    resolve_location,
)
from shipyard.predlog._sinks import ParquetFolder

FEATURES = [("age", "number"), ("city", "category")]


def _rows(n: int, start: int = 0) -> dict:
    return {"age": np.arange(start, start + n, dtype=float), "city": [f"c{i % 3}" for i in range(start, start + n)]}


def _log(location: LogLocation, **options):  # type: ignore[no-untyped-def]
    return open_log(location, FEATURES, task="binary", source="test", model_version="t/p@v1.0.0", **options)


def test_round_trip_and_window(tmp_path: Path) -> None:
    clock = iter([datetime(2024, 3, 5, 10, tzinfo=UTC), datetime(2024, 3, 6, 10, tzinfo=UTC)])
    log = _log(LogLocation(path=tmp_path / "log"), clock=lambda: next(clock))
    inputs = _rows(3)
    inputs["age"][1] = np.nan
    log.log(inputs, [1, 0, 1], [0.9, 0.2, 0.7], ["a", "b", "c"])
    log.log(_rows(2, 3), [0, 0], [0.1, 0.3], ["d", "e"])
    log.close()
    assert log.logged == 5 and log.dropped == 0
    frame = read_frame(LogLocation(path=tmp_path / "log"))
    assert frame[KEY].tolist() == ["a", "b", "c", "d", "e"]
    assert frame[PREDICTION].tolist() == ["1", "0", "1", "0", "0"]
    assert frame[SCORE].tolist() == [0.9, 0.2, 0.7, 0.1, 0.3]
    assert np.isnan(frame["age"][1]) and frame["age"][4] == 4.0
    assert frame["city"].tolist() == ["c0", "c1", "c2", "c0", "c1"]
    assert set(frame[MODEL_VERSION]) == {"t/p@v1.0.0"}
    day = read_frame(
        LogLocation(path=tmp_path / "log"),
        since=datetime(2024, 3, 6, tzinfo=UTC),
        until=datetime(2024, 3, 7, tzinfo=UTC),
    )
    assert day[KEY].tolist() == ["d", "e"]


def test_flush_rows_writes_one_file_per_flush(tmp_path: Path) -> None:
    log = _log(LogLocation(path=tmp_path), flush_rows=100, flush_seconds=60)
    for i in range(10):
        log.log(_rows(50, i * 50), [0] * 50)
    log.close()
    files = sorted(tmp_path.glob("part-*.parquet"))
    assert sum(pq.read_metadata(f).num_rows for f in files) == 500
    assert 1 <= len(files) < 10, "rows are written in flushes of flush_rows or more, not one file per call"


def test_rows_wait_at_most_flush_seconds(tmp_path: Path) -> None:
    log = _log(LogLocation(path=tmp_path), flush_rows=10_000, flush_seconds=0.2)
    log.log(_rows(3), [1, 1, 1])
    deadline = time.monotonic() + 10
    while not list(tmp_path.glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob("part-*.parquet")), "a few rows are written after flush_seconds without a close"
    log.close()


def test_rows_after_a_quiet_spell_wait_at_most_flush_seconds_too(tmp_path: Path) -> None:
    """The writer, asleep with nothing queued, wakes for the next few rows (not only for a full
    flush_rows): each small batch logged after a pause reaches a file by itself."""
    log = _log(LogLocation(path=tmp_path), flush_rows=10_000, flush_seconds=0.2)
    for expected in (1, 2, 3):
        log.log(_rows(3), [1, 1, 1])
        deadline = time.monotonic() + 10
        while len(list(tmp_path.glob("part-*.parquet"))) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(list(tmp_path.glob("part-*.parquet"))) == expected
    log.close()


def test_extra_columns_are_logged_beside_the_record(tmp_path: Path) -> None:
    log = _log(LogLocation(path=tmp_path))
    log.log(_rows(2), [1, 0], extra={"_request": ["r1", "r2"], "_latency_ms": [1.5, 1.5], "_answered": [True, True]})
    log.log(_rows(1, 2), [0])  # a batch without them: empty there
    log.close()
    frame = read_frame(LogLocation(path=tmp_path))
    assert frame["_request"].tolist()[:2] == ["r1", "r2"] and frame["_request"].isna().tolist()[2]
    assert frame["_latency_ms"].tolist()[:2] == [1.5, 1.5]
    assert frame["_answered"].tolist()[:2] == [True, True]


class _PausedFolder(ParquetFolder):
    """The real Parquet sink, held back until the test lets it write (a slow disk)."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.go = threading.Event()

    def write(self, table):  # type: ignore[no-untyped-def]
        self.go.wait(30)
        return super().write(table)


def test_a_full_queue_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    from shipyard.predlog import PredictionLog

    sink = _PausedFolder(tmp_path)
    counted: list[int] = []
    log = PredictionLog(
        sink,
        FEATURES,
        task="binary",
        source="test",
        model_version="v",
        flush_rows=10,
        queue_rows=100,
        on_drop=counted.append,
    )
    offered = 0
    started = time.monotonic()
    for i in range(60):
        log.log(_rows(10, i * 10), [1] * 10)
        offered += 10
    assert time.monotonic() - started < 5, "logging never waits for the writer"
    sink.go.set()
    log.close()
    written = sum(pq.read_metadata(f).num_rows for f in tmp_path.glob("part-*.parquet"))
    assert log.dropped > 0 and sum(counted) == log.dropped
    assert written == log.logged and written + log.dropped == offered, "every row is written or counted as dropped"


def test_blocking_log_waits_for_room_and_loses_nothing(tmp_path: Path) -> None:
    sink = _PausedFolder(tmp_path)
    from shipyard.predlog import PredictionLog

    log = PredictionLog(
        sink, FEATURES, task="binary", source="t", model_version="v", flush_rows=10, queue_rows=30, block=True
    )
    threading.Timer(0.5, sink.go.set).start()
    for i in range(20):
        log.log(_rows(10, i * 10), [0] * 10)
    log.close()
    assert log.dropped == 0 and log.logged == 200


def test_sampling_is_seeded(tmp_path: Path) -> None:
    kept = []
    for run in range(2):
        log = _log(LogLocation(path=tmp_path / str(run)), sample_rate=0.25, seed=3)
        for i in range(40):
            log.log(_rows(100, i * 100), [0] * 100, keys=list(range(i * 100, i * 100 + 100)))
        log.close()
        kept.append(read_frame(LogLocation(path=tmp_path / str(run)))[KEY].tolist())
    assert kept[0] == kept[1]
    assert 800 < len(kept[0]) < 1200


def test_sql_table(tmp_path: Path) -> None:
    location = resolve_location(None, "sqlite:///preds.db?table=preds", tmp_path, env={})
    assert location.url == f"sqlite:///{tmp_path}/preds.db"
    clock = iter([datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=d) for d in range(3)])
    log = _log(location, clock=lambda: next(clock), flush_rows=1)
    for day in range(3):
        log.log(_rows(4, day * 4), [1, 0, 1, 0], [0.5] * 4, [f"k{day}{i}" for i in range(4)])
        log.flush()
    log.close()
    frame = read_frame(location, since=datetime(2024, 1, 2, tzinfo=UTC))
    assert sorted(frame[KEY]) == [f"k{d}{i}" for d in (1, 2) for i in range(4)]
    batches = list(read_batches(location, columns=["age", LOGGED_AT], batch_rows=5))
    assert sum(b.num_rows for b in batches) == 12


def test_a_write_that_fails_is_counted_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    log = _log(LogLocation(path=blocker / "log"))
    assert log.log(_rows(5), [1] * 5) == 5
    log.close()
    assert log.dropped == 5 and log.failed_writes == 1 and log.logged == 0


def test_location_from_the_environment_wins(tmp_path: Path) -> None:
    env = {"SHIPYARD_PREDICTION_LOG": "/mnt/logs"}
    assert resolve_location("data/x", None, tmp_path, env=env).path == Path("/mnt/logs")
    assert resolve_location("data/x", None, tmp_path, env={}).path == tmp_path / "data/x"
    with pytest.raises(ConfigError, match="names no table"):
        resolve_location(None, "sqlite:///x.db", tmp_path, env={})


WRITER = """
import sys, numpy as np
from pathlib import Path
from shipyard.predlog import LogLocation, open_log
log = open_log(LogLocation(path=Path(sys.argv[1])), [("x", "number")], task="regression", source="t",
               model_version="v", flush_rows=2000, flush_seconds=0.01)
print("ready", flush=True)
i = 0
while True:
    log.log({"x": np.arange(i, i + 500, dtype=float)}, np.zeros(500))
    i += 500
"""


@pytest.mark.drill
def test_killed_writer_leaves_only_whole_files(tmp_path: Path) -> None:
    """Fault: the process writing the log is killed with SIGKILL mid-write. Every file it left
    reads in full; only hidden temporary files may be incomplete, and readers skip them."""
    folder = tmp_path / "log"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 30
    while len(list(folder.glob("part-*.parquet"))) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    files = sorted(folder.glob("part-*.parquet"))
    assert len(files) >= 5
    rows = sum(pq.read_table(f).num_rows for f in files)
    assert rows == len(read_frame(LogLocation(path=folder)))
    assert all(p.name.startswith((".tmp-", "part-")) for p in folder.iterdir()), "nothing else was written there"
