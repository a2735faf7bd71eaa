"""Reliability drills of the batch job's outputs: it never replaces what it did not write, and a
disk that fills up or refuses writes stops it with one message, its finished parts kept.

Real files, a real SQLite database, a real full file system (a small tmpfs, where this process may
mount one) and a real read-only folder; the job runs through its own CLI where the exit code and
the message are what is checked.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from shipyard.core.errors import DataError
from shipyard.deploy.batch import build_batch_job, run_batch_job
from shipyard.deploy.batch.__main__ import main as batch_main

pytestmark = pytest.mark.drill

ENV = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "BENTOML_DO_NOT_TRACK": "True"}


def job_for(example: Any, root: Path, project: str | None = None, **batch: Any) -> Path:
    """``example``'s batch job, built as ``project`` (default examples/<name>) under ``root``."""
    project = project or f"examples/{example.name}"
    key = None if example.key == "row_id" else example.key
    job_dir = root / "deploy" / project / "batch"
    build_batch_job(example.bundle_dir, job_dir, batch, project=project, version="v1.0.0", data_key=key)
    return job_dir


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` with its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def cli(*args: str, cwd: Path, preexec: Any = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipyard.deploy.batch", *args, "--no-progress"],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=preexec,
    )


def one_message(stderr: str) -> None:
    """What a user's mistake prints: one rendered error, no traceback, no internal error."""
    assert stderr.startswith("data error: "), stderr
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert stderr.count("data error:") == 1 and "\n  fix: " in stderr, stderr


@pytest.fixture()
def bc_input(examples: Any, tmp_path: Path) -> Path:
    path = tmp_path / "in.parquet"
    examples["breast_cancer"].test.to_parquet(path, index=False)
    return path


# -- 1. a CSV output and a user's <stem>.rejects.csv ---------------------------------------------


def test_csv_output_never_replaces_a_users_rejects_file(examples: Any, tmp_path: Path, bc_input: Path) -> None:
    """Fault: OUTPUT=dir/report.csv beside the user's own dir/report.rejects.csv; a clean run (no
    rejects) used to delete it. Must: refuse with exit 2 naming that file, create nothing, and
    leave every file in the folder as it was; once the user moves it away, the job runs."""
    job_dir = job_for(examples["breast_cancer"], tmp_path)
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "report.rejects.csv").write_text("ticket,reason\n17,the customer's own notes\n")
    (reports / "other.csv").write_text("a,b\n1,2\n")
    before = snapshot(reports)

    done = cli("run", str(job_dir), "--input", str(bc_input), "--output", str(reports / "report.csv"), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    one_message(done.stderr)
    assert f"file {reports / 'report.rejects.csv'} exists and was not written by a batch job" in done.stderr
    assert snapshot(reports) == before  # no report.csv, no staging folder, the user's files as they were
    assert sorted(p.name for p in reports.iterdir()) == ["other.csv", "report.rejects.csv"]

    (reports / "report.rejects.csv").rename(tmp_path / "kept.csv")
    summary = run_batch_job(job_dir, str(bc_input), str(reports / "report.csv"), progress=False)
    assert summary["status"] == "succeeded" and summary["rejects_file"] is None
    assert len(pd.read_csv(reports / "report.csv")) == len(examples["breast_cancer"].test)
    assert (reports / "other.csv").read_text() == "a,b\n1,2\n"

    # A user's file of that name appearing after a run that wrote none is still the user's.
    (reports / "report.rejects.csv").write_text("mine\n")
    with pytest.raises(DataError, match="report.rejects.csv exists and was not written by a batch job") as info:
        run_batch_job(job_dir, str(bc_input), str(reports / "report.csv"), resume=False, progress=False)
    assert info.value.exit_code == 2
    assert (reports / "report.rejects.csv").read_text() == "mine\n"


def test_csv_rejects_file_the_job_wrote_is_still_replaced(examples: Any, tmp_path: Path) -> None:
    """Fault guarded: the ownership check must not stop a job from cleaning up after itself. A
    run with rejects writes <stem>.rejects.csv; a later clean run of the same job removes it."""
    ex = examples["churn"]
    job_dir = job_for(ex, tmp_path, rejects={"max_fraction": 0.5})
    dirty, clean = tmp_path / "dirty.parquet", tmp_path / "clean.parquet"
    frame = ex.test.reset_index(drop=True)
    bad = frame.copy()
    bad.loc[0, "support_calls"] = 1e6  # out of the training range: rejected
    bad.to_parquet(dirty, index=False)
    frame.to_parquet(clean, index=False)
    out = tmp_path / "out" / "scores.csv"

    first = run_batch_job(job_dir, str(dirty), str(out), progress=False)
    assert first["rows_rejected"] == 1 and Path(first["rejects_file"]).is_file()
    second = run_batch_job(job_dir, str(clean), str(out), resume=False, progress=False)
    assert second["rows_rejected"] == 0 and second["rejects_file"] is None
    assert not (tmp_path / "out" / "scores.rejects.csv").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["scores.csv", "scores.csv.parts"]


def test_another_projects_output_is_refused_even_without_resume(examples: Any, tmp_path: Path, bc_input: Path) -> None:
    """Fault: one project's job pointed at the output another project's job wrote. Must: refuse
    (resume or not) naming the other job, and leave its files byte for byte."""
    ex = examples["breast_cancer"]
    ours = job_for(ex, tmp_path, project="tabular/mine")
    theirs = job_for(ex, tmp_path, project="tabular/theirs")
    folder, csv_out = tmp_path / "scores", tmp_path / "scores.csv"
    run_batch_job(theirs, str(bc_input), str(folder), progress=False)
    run_batch_job(theirs, str(bc_input), str(csv_out), progress=False)
    before = (snapshot(folder), csv_out.read_bytes(), snapshot(tmp_path / "scores.csv.parts"))

    for output in (folder, csv_out):
        for resume in (True, False):
            with pytest.raises(DataError, match="was written by the batch job of tabular/theirs, not of tabular/mine"):
                run_batch_job(ours, str(bc_input), str(output), resume=resume, progress=False)
    assert (snapshot(folder), csv_out.read_bytes(), snapshot(tmp_path / "scores.csv.parts")) == before


def test_a_users_folder_gets_no_lock_file(examples: Any, tmp_path: Path, bc_input: Path) -> None:
    """Fault guarded: a refused folder must be refused before the job creates anything in it."""
    job_dir = job_for(examples["breast_cancer"], tmp_path)
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "cat.jpg").write_bytes(b"\xff\xd8 not really")
    before = snapshot(mine)
    with pytest.raises(DataError, match="output folder .* exists and was not written by a batch job"):
        run_batch_job(job_dir, str(bc_input), str(mine), resume=False, progress=False)
    assert snapshot(mine) == before and sorted(p.name for p in mine.iterdir()) == ["cat.jpg"]


# -- 2. a SQL output and a user's T__rejects / T__batch ------------------------------------------


def tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(db) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}


@pytest.mark.parametrize(
    "user_tables",
    [
        {"scores__rejects": "CREATE TABLE scores__rejects (ticket INTEGER, note TEXT)"},
        {"scores__batch": "CREATE TABLE scores__batch (name TEXT, value TEXT)"},  # looks like bookkeeping
        {
            "scores__rejects": "CREATE TABLE scores__rejects (ticket INTEGER, note TEXT)",
            "scores__batch": "CREATE TABLE scores__batch (id INTEGER, owner TEXT)",
        },
    ],
    ids=["rejects", "batch-lookalike", "both"],
)
def test_sql_output_never_drops_a_users_tables(
    examples: Any, tmp_path: Path, bc_input: Path, user_tables: dict[str, str]
) -> None:
    """Fault: OUTPUT=sqlite:///x.db?table=scores where the user has their own scores__rejects or
    scores__batch table; only `scores` was checked before all three were dropped. Must: exit 2
    naming the table, and every table and row in the database as it was."""
    job_dir = job_for(examples["breast_cancer"], tmp_path)
    db = tmp_path / "x.db"
    with sqlite3.connect(db) as conn:
        for name, ddl in user_tables.items():
            conn.execute(ddl)
            conn.execute(f"INSERT INTO {name} VALUES (1, 'keep me')")
        conn.execute("CREATE TABLE customers (id INTEGER)")
    before = tables(db)

    done = cli("run", str(job_dir), "--input", str(bc_input), "--output", f"sqlite:///{db}?table=scores", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    one_message(done.stderr)
    named = next(n for n in ("scores__rejects", "scores__batch") if n in user_tables)
    assert f"table '{named}' in sqlite:///{db} exists and was not written by a batch job" in done.stderr
    assert tables(db) == before


def test_sql_output_of_the_same_project_is_replaced_and_of_another_refused(
    examples: Any, tmp_path: Path, bc_input: Path
) -> None:
    """Fault guarded: the same project's job may rescore its own tables (--no-resume); another
    project's job may not touch them, and the refusal leaves every row."""
    ex = examples["breast_cancer"]
    ours, theirs = job_for(ex, tmp_path), job_for(ex, tmp_path, project="tabular/theirs")
    db = tmp_path / "x.db"
    target = f"sqlite:///{db}?table=scores"
    run_batch_job(ours, str(bc_input), target, progress=False)
    again = run_batch_job(ours, str(bc_input), target, resume=False, progress=False)
    assert again["parts_scored"] == again["parts"] and len(tables(db)["scores"]) == len(ex.test)
    with sqlite3.connect(db) as conn:
        manifest = json.loads(conn.execute("SELECT value FROM scores__batch WHERE name = 'manifest'").fetchone()[0])
    assert manifest["written"] == {"scores": "examples/breast_cancer", "scores__batch": "examples/breast_cancer"}

    before = tables(db)
    with pytest.raises(DataError, match="table 'scores' .* was written by the batch job of examples/breast_cancer"):
        run_batch_job(theirs, str(bc_input), target, resume=False, progress=False)
    assert tables(db) == before


# -- 5. a full disk and a read-only output -------------------------------------------------------


def _can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        return False
    subprocess.run(["umount", str(where)], check=True)
    return True


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB file system (tmpfs), where this process may mount one."""
    disk = tmp_path / "disk"
    if not _can_mount_tmpfs(disk):
        pytest.skip("needs root and mount(8) for a real full file system (the injected variant runs everywhere)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` with one file, leaving about ``leave`` bytes free."""
    filler = disk / "filler.bin"
    stats = os.statvfs(disk)
    filler.write_bytes(b"\0" * max(0, stats.f_bavail * stats.f_frsize - leave))
    return filler


def _assert_resumes(job_dir: Path, source: Path, out: Path, written: dict[str, bytes], total: int) -> None:
    """A rerun keeps the parts written before the failure and scores only the rest."""
    summary = run_batch_job(job_dir, str(source), str(out), progress=False)
    assert summary["status"] == "succeeded" and summary["parts_resumed"] == len(written)
    assert summary["parts"] == total and summary["rows_read"] == summary["rows_scored"]
    assert {n: (out / n).read_bytes() for n in written} == written


def test_full_disk_stops_with_one_message_and_resumes(
    examples: Any, tmp_path: Path, bc_input: Path, small_disk: Path
) -> None:
    """Fault: the disk holding the output fills up mid-job (a real full tmpfs). Must: exit 2 with
    one message naming the output and the fix (no internal error), the parts finished before it
    intact and no temporary file left; once space is freed, the same command resumes."""
    job_dir = job_for(examples["breast_cancer"], tmp_path, chunk_size=8)
    out = small_disk / "scores"
    filler = _fill(small_disk, leave=6 * os.sysconf("SC_PAGESIZE"))  # tmpfs counts pages: a few parts fit
    total = -(-len(examples["breast_cancer"].test) // 8)

    done = cli("run", str(job_dir), "--input", str(bc_input), "--output", str(out), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    one_message(done.stderr)
    assert f"no space left to write the output {out}" in done.stderr and "free space" in done.stderr
    written = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}
    assert 0 < len(written) < total, sorted(written)
    for name in written:  # each one finished and readable
        assert len(pd.read_parquet(out / name)) > 0
    assert not list(out.rglob(".tmp-*")) and not (out / "_SUCCESS").exists()

    filler.unlink()
    _assert_resumes(job_dir, bc_input, out, written, total)


def test_write_failure_injected_at_the_part_write(
    examples: Any, tmp_path: Path, bc_input: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault: the write of the third part fails with ENOSPC (injected at pyarrow's write call:
    the variant of the full-disk drill that needs no mount). Must: exit 2 with one message, the
    first two parts intact, and a rerun resumes from them."""
    import pyarrow.parquet as pq

    job_dir = job_for(examples["breast_cancer"], tmp_path, chunk_size=8)
    out = tmp_path / "scores"
    real_write, calls = pq.write_table, []

    def failing_write(table: Any, where: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(where)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(where))
        real_write(table, where, *args, **kwargs)

    monkeypatch.setattr(pq, "write_table", failing_write)
    code = batch_main(["run", str(job_dir), "--input", str(bc_input), "--output", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    one_message(err)
    assert f"no space left to write the output {out}" in err
    written = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}
    assert sorted(written) == ["part-00000-00000.parquet", "part-00000-00001.parquet"]
    assert not list(out.rglob(".tmp-*"))

    monkeypatch.setattr(pq, "write_table", real_write)
    _assert_resumes(job_dir, bc_input, out, written, -(-len(examples["breast_cancer"].test) // 8))


def _drop_file_permission_override() -> None:
    """In the child, before exec: as root, give up the capabilities that ignore file modes."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def test_read_only_output_stops_with_one_message_and_resumes(examples: Any, tmp_path: Path, bc_input: Path) -> None:
    """Fault: the output folder of a run that was cut short is no longer writable (EACCES, a real
    read-only folder). Must: exit 2 with one message naming the output and the fix, the parts
    already there intact; once writable again, the same command resumes."""
    job_dir = job_for(examples["breast_cancer"], tmp_path, chunk_size=8)
    out = tmp_path / "scores"
    total = run_batch_job(job_dir, str(bc_input), str(out), progress=False)["parts"]
    for name in ("_SUCCESS", "_summary.json", "part-00000-00004.parquet", "part-00000-00007.parquet"):
        (out / name).unlink()  # what a run killed halfway leaves
    written = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}
    before = snapshot(out)
    out.chmod(0o555)
    try:
        done = cli(
            "run",
            str(job_dir),
            "--input",
            str(bc_input),
            "--output",
            str(out),
            cwd=tmp_path,
            preexec=_drop_file_permission_override,
        )
    finally:
        out.chmod(0o755)
    assert done.returncode == 2, done.stderr
    one_message(done.stderr)
    assert f"not allowed to write the output {out}" in done.stderr and "writable" in done.stderr
    assert snapshot(out) == before
    _assert_resumes(job_dir, bc_input, out, written, total)
