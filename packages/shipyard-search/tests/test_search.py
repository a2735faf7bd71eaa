"""Real searches on the breast-cancer splits: real Optuna storages, real Lightning training."""

from __future__ import annotations

import json
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pandas as pd
import pytest
from shipyard.core.errors import DataError
from shipyard.search import SearchResult, load_search_data, run_search

PROJECT = "tabular/breast_cancer"
TRIAL_LINE = re.compile(r"^trial \d+ ")
Env = Callable[[Path], dict[str, str]]

# Short trials: the real code path, a fraction of the cost.
EVAL = ["evaluate.latency_repeats=3", "evaluate.latency_warmup=1"]
QUICK = """
name: quick
objectives:
  - {metric: val/f1, direction: maximize}
  - {metric: latency_p95_ms, direction: minimize}
constraints: ["val/recall >= 0.5"]
space:
  model.hidden: {type: categorical, choices: [[8], [16, 8]]}
  optim.lr: {type: float, low: 3.0e-3, high: 3.0e-2, log: true}
fixed: {trainer.max_epochs: 2, trainer.log_every_n_steps: 1}
sampler: {name: tpe, params: {n_startup_trials: 2}}
n_trials: 4
"""


def _folder(root: Path) -> Path:
    return root / "data" / PROJECT / "08_reporting" / "search"


def _journal(folder: Path) -> optuna.storages.JournalStorage:
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(folder / "journal.log")))


@pytest.fixture(scope="module")
def searched(template_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SearchResult, list[str]]:
    """One finished 4-trial search (default storage), shared by the tests that only read its results."""
    root = tmp_path_factory.mktemp("searched") / "repo"
    shutil.copytree(template_repo, root)
    (root / "conf" / "search" / "quick.yaml").write_text(QUICK)
    lines: list[str] = []
    result = run_search(PROJECT, ["search=quick", *EVAL], root=root, say=lines.append)
    return root, result, lines


def test_search_runs_trials_and_writes_results(searched: tuple[Path, SearchResult, list[str]]) -> None:
    root, result, lines = searched
    assert [r.state for r in result.trials] == ["COMPLETE"] * 4
    assert sum(bool(TRIAL_LINE.match(line)) for line in lines) == 4  # progress, one line per trial
    folder = _folder(root)
    assert result.storage.kind == "journal" and (folder / "journal.log").is_file()
    assert len(pd.read_csv(folder / "trials.csv")) == 4
    pareto = json.loads((folder / "pareto.json").read_text())
    assert [t["number"] for t in pareto["trials"]] == [r.number for r in result.pareto]
    assert all(t["feasible"] for t in pareto["trials"])
    assert (folder / "plots" / "pareto_front.html").is_file()
    assert (folder / "plots" / "history_val_f1.html").is_file()
    # Optuna 5 constraints are recorded on every complete trial, so the sampler knows them.
    study = optuna.load_study(study_name=result.spec.study_name, storage=_journal(folder))
    assert all(set(t.constraints) == {"val/recall >= 0.5"} for t in study.trials)


def test_selection_and_layer(searched: tuple[Path, SearchResult, list[str]]) -> None:
    from shipyard.core.compose import compose, to_dict

    root, result, _ = searched
    chosen = result.selected
    assert chosen is not None and chosen.feasible
    feasible = [r for r in result.trials if r.feasible]
    assert chosen.value("val/f1") == max(r.value("val/f1") for r in feasible)
    config = to_dict(compose(PROJECT, [f"experiment={result.experiment}"], root=root))
    assert config["model"]["hidden"] == chosen.params["model.hidden"]
    assert config["optim"]["lr"] == pytest.approx(chosen.params["optim.lr"], rel=1e-12)
    assert config["trainer"]["max_epochs"] == 2  # search.fixed travels with the layer
    assert config["evaluate"]["latency_repeats"] == 3  # and so do the overrides the search ran with


def test_chosen_model_is_evaluated_once_on_test(searched: tuple[Path, SearchResult, list[str]]) -> None:
    root, result, lines = searched
    report = json.loads((_folder(root) / "report.json").read_text())
    assert report["selected"]["number"] == result.selected.number
    final = report["final"]
    assert {"test/f1", "test/accuracy", "val/f1"} <= set(final["metrics"])
    assert final["reproduced"], "training the layer again gives the trial's validation metrics"
    assert sum("once on the test split" in line for line in lines) == 1


def test_rerun_continues_the_same_study(searched: tuple[Path, SearchResult, list[str]], tmp_path: Path) -> None:
    root, result, _ = searched
    copy = tmp_path / "repo"
    shutil.copytree(root, copy)
    lines: list[str] = []
    again = run_search(PROJECT, ["search=quick", *EVAL], root=copy, say=lines.append)
    assert len(again.trials) == 4 and again.selected.number == result.selected.number
    assert not any(TRIAL_LINE.match(line) for line in lines)
    assert not any("once on the test split" in line for line in lines), "the test split is not looked at again"
    more = run_search(PROJECT, ["search=quick", "search.n_trials=5", *EVAL], root=copy, final=False, say=lines.append)
    assert [r.number for r in more.trials] == [0, 1, 2, 3, 4]
    assert [r.params for r in more.trials[:4]] == [r.params for r in result.trials]


def test_changed_base_config_refuses_to_mix_studies(
    searched: tuple[Path, SearchResult, list[str]], tmp_path: Path
) -> None:
    from shipyard.core.errors import ConfigError

    root, _, _ = searched
    copy = tmp_path / "repo"
    shutil.copytree(root, copy)
    with pytest.raises(ConfigError) as caught:
        run_search(PROJECT, ["search=quick", "optim.weight_decay=0.1", *EVAL], root=copy, say=lambda _: None)
    assert caught.value.key == "search.study_name"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def dashboard_proc(
    searched: tuple[Path, SearchResult, list[str]], cli_env: Env
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    root, _, _ = searched
    port = _free_port()
    cmd = [sys.executable, "-m", "shipyard.search", "dashboard", PROJECT, "search=quick", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=cli_env(root), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc, port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dashboard_serves_the_study(
    searched: tuple[Path, SearchResult, list[str]], dashboard_proc: tuple[subprocess.Popen[bytes], int]
) -> None:
    import httpx

    _, result, _ = searched
    proc, port = dashboard_proc
    deadline, body = time.monotonic() + 90, ""
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            body = httpx.get(f"http://127.0.0.1:{port}/api/studies", timeout=2).text
            break
        except httpx.TransportError:
            time.sleep(0.3)
    assert result.spec.study_name in body
    # Feasibility reaches the dashboard as the trial's user attributes (its trial table and
    # trial page show them), the same verdict as trials.csv's `feasible` column.
    study_id = next(
        s["study_id"] for s in json.loads(body)["study_summaries"] if s["study_name"] == result.spec.study_name
    )
    trials = httpx.get(f"http://127.0.0.1:{port}/api/studies/{study_id}", timeout=10).json()["trials"]
    shown = {t["number"]: {a["key"]: a["value"] for a in t["user_attrs"]} for t in trials}
    table = pd.read_csv(_folder(searched[0]) / "trials.csv")
    assert len(shown) == len(table) == 4
    for _, row in table.iterrows():
        attrs = shown[int(row["number"])]
        assert attrs["feasible"] == str(bool(row["feasible"]))  # the dashboard shows a bool as True/False
        violation = json.loads(attrs["constraints"])["val/recall >= 0.5"]
        assert violation == pytest.approx(row["violation:val/recall >= 0.5"])
        assert (violation <= 0) is bool(row["feasible"])


def test_plots_mark_infeasible_trials(searched: tuple[Path, SearchResult, list[str]], tmp_path: Path) -> None:
    """Optuna's plots grey the trials whose recorded constraints are violated."""
    from shipyard.search._outputs import write_plots

    spec = searched[1].spec
    study = optuna.create_study(directions=["maximize", "minimize"])
    for i, (f1, latency, violation) in enumerate([(0.9, 1.0, -0.1), (0.95, 0.5, 0.3), (0.8, 0.8, -0.2)]):
        study.add_trial(
            optuna.trial.create_trial(
                values=[f1, latency],
                params={"optim.lr": 0.01 * (i + 1)},
                distributions={"optim.lr": optuna.distributions.FloatDistribution(1e-3, 1.0)},
                system_attrs={"constraints:val/recall >= 0.5": violation},
            )
        )
    written = write_plots(tmp_path, study, spec)
    assert written["pareto_front"] == "pareto_front.html"
    assert "Infeasible Trial" in (tmp_path / "plots" / "pareto_front.html").read_text()
    assert "Infeasible Trial" in (tmp_path / "plots" / "history_val_f1.html").read_text()


CRASHY = """
name: crashy
objectives: [{metric: val/f1, direction: maximize}]
space:
  trainer.devices: {type: categorical, choices: [1, [0]]}
  optim.lr: {type: categorical, choices: [0.05, 1.0e+12]}
fixed: {trainer.max_epochs: 2, trainer.log_every_n_steps: 1}
sampler: {name: grid}
n_trials: 10
storage: memory
"""


def test_crashing_and_nan_trials_fail_and_the_study_goes_on(repo: Path, write_search: Callable[..., None]) -> None:
    write_search(repo, "crashy", CRASHY)
    lines: list[str] = []
    result = run_search(PROJECT, ["search=crashy", *EVAL], root=repo, final=False, say=lines.append)
    states = {(str(r.params["trainer.devices"]), r.params["optim.lr"]): r for r in result.trials}
    assert len(result.trials) == 4  # the whole grid ran: no failure stopped it
    assert states[("1", 0.05)].state == "COMPLETE"
    assert states[("1", 1e12)].state == "FAIL" and "diverged" in (states[("1", 1e12)].error or "")
    # A config the schema accepts but Lightning refuses on a CPU (GPU ids) crashes its trial only.
    crashed = [r for key, r in states.items() if key[0] != "1"]
    assert len(crashed) == 2 and all(r.state == "FAIL" for r in crashed)
    assert "CPUAccelerator" in (crashed[0].error or "")
    assert result.selected is states[("1", 0.05)]
    assert sum(" FAIL " in line for line in lines) == 3


def test_test_split_is_not_read_during_the_search(repo: Path, write_search: Callable[..., None]) -> None:
    """No test split at all: every trial completes; only the final evaluation asks for it."""
    (repo / "data" / PROJECT / "05_model_input" / "test.parquet").unlink()
    write_search(repo, "quick", QUICK.replace("n_trials: 4", "n_trials: 2"))
    with pytest.raises(DataError) as caught:
        run_search(PROJECT, ["search=quick", *EVAL], root=repo, say=lambda _: None)
    assert "test.parquet" in caught.value.message
    study = optuna.load_study(study_name=f"{PROJECT}/quick", storage=_journal(_folder(repo)))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]


def test_pruning_callback_stops_a_poor_trial(template_repo: Path, tmp_path: Path) -> None:
    from shipyard.core.paths import ProjectPaths
    from shipyard.search._check import compose_trial
    from shipyard.search._pruning import PruningCallback
    from shipyard.search._trial import train_and_evaluate

    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    )
    study.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={0: 1.0, 1: 1.0, 2: 1.0}))
    trial = study.ask()
    overrides = ["optim.name=sgd", "optim.lr=1e-6", "trainer.max_epochs=3", *EVAL]
    config = compose_trial(PROJECT, overrides, template_repo)
    data = load_search_data(ProjectPaths.of(template_repo, PROJECT))
    with pytest.raises(optuna.TrialPruned):
        train_and_evaluate(config, data, tmp_path / "work", callbacks=[PruningCallback(trial, "val/f1")])
    assert list(study.trials[-1].intermediate_values) == [0]  # reported after epoch 0, stopped there


@pytest.mark.slow
def test_two_workers_complete_exactly_n_trials(repo: Path, write_search: Callable[..., None]) -> None:
    (repo / "data" / PROJECT / "05_model_input" / "test.parquet").unlink()  # and never need it
    write_search(repo, "quick", QUICK.replace("n_trials: 4", "n_trials: 6"))
    lines: list[str] = []
    result = run_search(PROJECT, ["search=quick", *EVAL], root=repo, workers=2, final=False, say=lines.append)
    assert result.storage.kind == "journal" and (_folder(repo) / "journal.log").is_file()
    assert sorted(r.number for r in result.trials) == list(range(6))
    assert all(r.state == "COMPLETE" for r in result.trials)
    assert {r.worker for r in result.trials} == {0, 1}
    params = {json.dumps(r.params, sort_keys=True) for r in result.trials}
    assert len(params) == 6, "no trial ran twice"


def _read_until(proc: subprocess.Popen[str], words: str, limit: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready and proc.stderr:
            line = proc.stderr.readline()
            lines.append(line)
            if words in line:
                return lines
    raise AssertionError(f"{words!r} never appeared:\n{''.join(lines)[-3000:]}")


@pytest.mark.slow
def test_interrupted_study_resumes(repo: Path, write_search: Callable[..., None], cli_env: Env) -> None:
    slower = QUICK.replace("n_trials: 4", "n_trials: 3").replace("max_epochs: 2", "max_epochs: 15")
    write_search(repo, "quick", slower + "storage: sqlite\n")  # the SQLite storage, resumed
    storage = f"sqlite:///{_folder(repo) / 'study.db'}"
    cmd = [sys.executable, "-m", "shipyard.search", "run", PROJECT, "search=quick", *EVAL, "--no-final"]
    proc = subprocess.Popen(cmd, env=cli_env(repo), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _read_until(proc, "trial 0 COMPLETE", 240)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until trial 1 is claimed, then kill mid-trial
            running = optuna.load_study(study_name=f"{PROJECT}/quick", storage=storage).get_trials(
                states=(optuna.trial.TrialState.RUNNING,)
            )
            if running:
                break
            time.sleep(0.1)
        proc.kill()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    before = optuna.load_study(study_name=f"{PROJECT}/quick", storage=storage).trials
    cut = len(before) - 1  # the trial that was running when the process was killed
    assert [t.state.name for t in before] == ["COMPLETE"] * cut + ["RUNNING"] and 1 <= cut < 3
    lines: list[str] = []
    result = run_search(PROJECT, ["search=quick", *EVAL], root=repo, final=False, say=lines.append)
    assert any("interrupted last time" in line for line in lines)
    states = [(r.state, r.interrupted) for r in result.trials]
    assert states == [("COMPLETE", False)] * cut + [("FAIL", True)] + [("COMPLETE", False)] * (3 - cut)
    assert [r.number for r in result.trials[:cut]] == [t.number for t in before[:cut]]  # kept, not run again
    assert result.trials[cut + 1].params == result.trials[cut].params  # the interrupted trial ran again
    assert sum(r.state == "COMPLETE" for r in result.trials) == 3  # exactly n_trials counted
