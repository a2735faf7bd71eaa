"""Fixtures for cross-package tests: throwaway git + DVC repositories and a CLI runner."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Overrides that switch the quality gate off, for tests about something else.
NO_GATE = ("gate.enabled=false",)
QUIET = {
    "KEDRO_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
    "BENTOML_DO_NOT_TRACK": "True",
}


def cli_env(repo: Path) -> dict[str, str]:
    env = dict(os.environ, **QUIET, SHIPYARD_ROOT=str(repo))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("SHIPYARD_OVERRIDES", None)
    return env


class Repo:
    """A throwaway Shipyard repository: this repo's conf/, a fresh git and DVC."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "shipyard.engine", *args],
            cwd=self.path,
            env=cli_env(self.path),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"shipyard {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc

    def train(
        self, project: str, *overrides: str, check: bool = True, gate: bool = False
    ) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        """Train; return the stages that ran (in order) and the process. The quality gate is
        off unless ``gate`` (tests about other things must not depend on model quality)."""
        proc = self.run("train", project, *overrides, *(() if gate else NO_GATE), check=check)
        ran = [line[2:].strip() for line in proc.stderr.splitlines() if line.startswith("▶ ")]
        return ran, proc

    def data(self, project: str) -> Path:
        return self.path / "data" / project

    def metrics(self, project: str) -> dict[str, float]:
        return json.loads((self.data(project) / "08_reporting" / "metrics.json").read_text())

    def bundle_meta(self, project: str) -> dict[str, object]:
        return json.loads((self.data(project) / "06_models" / "bundle" / "bundle.json").read_text())


def make_repo(path: Path) -> Repo:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "conf", path / "conf")
    shutil.copy(ROOT / ".dvcignore", path / ".dvcignore")
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "test@shipyard.invalid"],
        ["git", "config", "user.name", "Shipyard tests"],
        [str(Path(sys.executable).parent / "dvc"), "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "a Shipyard repository"],
    ):
        subprocess.run(cmd, cwd=path, check=True, env=cli_env(path))
    return Repo(path)


@pytest.fixture
def repo_factory(tmp_path: Path) -> Callable[[str], Repo]:
    def factory(name: str = "repo") -> Repo:
        return make_repo(tmp_path / name)

    return factory


# -- servers the scale-out tests start (and always stop) -----------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 10.0) -> None:
    """SIGTERM the process group ``proc`` leads (started with start_new_session), then SIGKILL."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@contextlib.contextmanager
def served(folder: Path, repo: Repo, timeout: float = 90.0) -> Iterator[str]:
    """A service folder served by ``python -m shipyard.deploy.service serve`` on a free loopback
    port, as the repository's CLI runs it; yields its URL once /readyz answers, stops it cleanly
    (its prediction log is flushed) when done."""
    import httpx

    port = free_port()
    log = repo.path.parent / f"server-{port}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipyard.deploy.service", "serve", str(folder), "--port", str(port)],
            cwd=repo.path,
            env=cli_env(repo.path),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.3)
        yield url
    finally:
        stop_process(proc)


def _pg_tool(name: str) -> str:
    """initdb and pg_ctl: on PATH, else where Debian's postgresql package puts them."""
    debian = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    found = shutil.which(name) or (debian[0] if debian else None)
    if found is None:
        pytest.fail(f"PostgreSQL's {name} is not installed: apt-get install -y postgresql (.ci/run does)")
    return str(found)


@dataclass
class Postgres:
    """A PostgreSQL server on 127.0.0.1 for one test session (trust auth, loopback only)."""

    port: int
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def database(self, name: str) -> str:
        """Create an empty database; return its SQLAlchemy URL."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database: str, sql: str) -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname=database) as conn:
            return list(conn.execute(sql).fetchall())


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """Start PostgreSQL from initdb in a temporary folder (as the ``postgres`` user when run as
    root: the server refuses root) and stop it at the end of the session, whatever happened."""
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="shipyard-pg-"))
    data = folder / "data"
    started = False
    try:
        if as_user:
            shutil.chown(folder, "postgres", "postgres")
        subprocess.run(
            [*as_user, _pg_tool("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
        )
        for _attempt in range(3):  # a free port can be taken between choosing it and binding it
            port = free_port()
            options = f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
            proc = subprocess.run(
                [
                    *as_user,
                    _pg_tool("pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(folder / "log"),
                    "-w",
                    "start",
                ],
                capture_output=True,
                text=True,
            )
            if proc.returncode == 0:
                started = True
                break
        if not started:
            log = (folder / "log").read_text() if (folder / "log").is_file() else ""
            pytest.fail(f"PostgreSQL did not start: {proc.stderr}\n{log[-2000:]}")
        yield Postgres(port)
    finally:
        if started:
            subprocess.run(
                [*as_user, _pg_tool("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], capture_output=True
            )
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class DaskCluster:
    scheduler: str
    workers: list[subprocess.Popen[str]]


def _dask(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "dask"), *args]


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    """``dask scheduler`` and two ``dask worker`` processes (no nanny: a killed worker stays
    dead) on 127.0.0.1, started from the CLIs as separate processes and stopped at the end."""
    from distributed import Client

    env = dict(os.environ, **QUIET)
    procs: list[subprocess.Popen[str]] = []
    info = tmp_path / "scheduler.json"
    logs = tmp_path / "dask-logs"
    logs.mkdir()

    def start(name: str, *args: str) -> subprocess.Popen[str]:
        log = (logs / f"{name}.log").open("w")
        proc = subprocess.Popen(
            _dask(*args), env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        log.close()
        procs.append(proc)
        return proc

    try:
        start(
            "scheduler",
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--dashboard-address",
            "127.0.0.1:0",
            "--scheduler-file",
            str(info),
        )
        deadline = time.monotonic() + 120
        while not info.is_file() and time.monotonic() < deadline and procs[0].poll() is None:
            time.sleep(0.1)
        if not info.is_file():
            pytest.fail("dask scheduler did not start: " + (logs / "scheduler.log").read_text()[-2000:])
        address = json.loads(info.read_text())["address"]
        workers = [
            start(
                f"worker{i}",
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--name",
                f"w{i}",
            )
            for i in range(2)
        ]
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=180)
        yield DaskCluster(address, workers)
    finally:
        for proc in reversed(procs):
            stop_process(proc)
