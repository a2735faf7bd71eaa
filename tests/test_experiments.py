"""DVC experiments and the compiled params.yaml: Shipyard never overwrites an edit of it (by hand
or by `dvc exp run -S`), says where the change belongs, registers an experiment through an
override, and a search leaves the compiled files as it found them."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from shipyard.core.compose import section
from shipyard.core.schema import SourceConf
from shipyard.data.sources import fetch_raw

from .conftest import NO_GATE, ROOT, Repo, cli_env

BC = "tabular/breast_cancer"
PARAMS = f"pipelines/{BC}/params.yaml"
DVC = Path(sys.executable).parent / "dvc"
QUICK = ("trainer.max_epochs=2", "trainer.progress_bar=false", *NO_GATE)


def _dvc(repo: Repo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DVC), *args], cwd=repo.path, env=cli_env(repo.path), capture_output=True, text=True)


def _edit(repo: Repo, old: str, new: str) -> None:
    """Change params.yaml as a person would in an editor: the text, comments kept."""
    path = repo.path / PARAMS
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_a_hand_edit_of_params_yaml_is_refused_with_where_it_belongs(repo_factory) -> None:
    repo = repo_factory()
    repo.run("compile", BC)
    _edit(repo, "  max_epochs: 40\n", "  max_epochs: 7\n")
    _edit(repo, "  hidden:\n  - 64\n  - 32\n", "  hidden: [16, 8]   # wider is slower\n")
    edited = (repo.path / PARAMS).read_text()
    before = sorted(p.relative_to(repo.path) for p in repo.path.rglob("*") if ".git" not in p.parts)
    for command in (("train", BC), ("compile", BC)):
        proc = repo.run(*command, check=False)
        assert proc.returncode == 2, proc.stderr
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
        first = proc.stderr.splitlines()[0]
        assert first.startswith(f"config error: {PARAMS} was changed after Shipyard compiled it")
        assert "model.hidden: [64,32] -> [16,8], trainer.max_epochs: 40 -> 7)" in first
        assert f'make train PROJECT={BC} ARGS="model.hidden=[16,8] trainer.max_epochs=7"' in proc.stderr
        assert f"conf/project/{BC}.yaml" in proc.stderr and f"delete {PARAMS}" in proc.stderr
        assert (repo.path / PARAMS).read_text() == edited
    after = sorted(p.relative_to(repo.path) for p in repo.path.rglob("*") if ".git" not in p.parts)
    assert after == before, "a refused train touches nothing"
    # The override the message names compiles to exactly the edited values: accepted, rewritten.
    repo.run("compile", BC, "model.hidden=[16,8]", "trainer.max_epochs=7")
    assert yaml.safe_load((repo.path / PARAMS).read_text()) == yaml.safe_load(edited)
    assert (repo.path / PARAMS).read_text() != edited  # in Shipyard's own layout, with its hash
    # Deleting the file discards the edit.
    _edit(repo, "seed: 42", "seed: 1")
    (repo.path / PARAMS).unlink()
    repo.run("compile", BC)
    assert yaml.safe_load((repo.path / PARAMS).read_text())["seed"] == 42


def test_params_yaml_that_is_not_shipyards_or_not_yaml_is_refused(repo_factory) -> None:
    repo = repo_factory()
    path = repo.path / PARAMS
    path.parent.mkdir(parents=True)
    path.write_text("trainer: {max_epochs: 3}\n")
    proc = repo.run("compile", BC, check=False)
    first = proc.stderr.splitlines()[0]
    assert proc.returncode == 2 and f"{PARAMS} lacks the header Shipyard writes" in first
    assert "trainer.max_epochs: 40 -> 3" in first
    assert path.read_text() == "trainer: {max_epochs: 3}\n"
    path.unlink()
    repo.run("compile", BC)
    path.write_text(path.read_text() + "seed: [unclosed\n")
    proc = repo.run("compile", BC, check=False)
    assert proc.returncode == 2 and f"{PARAMS} is no longer a YAML mapping" in proc.stderr


def test_params_yaml_compiled_before_it_carried_its_hash_is_still_rewritten(repo_factory) -> None:
    """Repositories compiled by an earlier Shipyard have no hash line: taken as compiled."""
    repo = repo_factory()
    repo.run("compile", BC)
    path = repo.path / PARAMS
    legacy = "".join(line for line in path.read_text().splitlines(keepends=True) if not line.startswith("# sha256"))
    path.write_text(legacy.replace("max_epochs: 40", "max_epochs: 5"))
    repo.run("compile", BC)
    assert yaml.safe_load(path.read_text())["trainer"]["max_epochs"] == 40


def _exp_show_command() -> list[str]:
    """The `dvc exp show` command the README documents."""
    text = (ROOT / "README.md").read_text()
    line = next(x for x in text.splitlines() if x.startswith(".venv/bin/dvc exp show "))
    return shlex.split(line.split("  #")[0])[1:]


@pytest.mark.slow
@pytest.mark.drill
def test_a_dvc_experiment_becomes_a_registered_version_through_an_override(repo_factory) -> None:
    """Fault: `dvc exp run -S` changed params.yaml, and the next `make train` would silently have
    compiled it away. Must happen: train refuses and names the override; `dvc exp show` (the
    README's command) shows the experiment; training with that override registers the experiment's
    own results without rerunning a stage; nothing else is touched."""
    repo = repo_factory()
    repo.run("compile", BC, *QUICK)
    fetch_raw(section(SourceConf, yaml.safe_load((repo.path / PARAMS).read_text())["data"]["source"]), repo.path)
    ran, _ = repo.train(BC, *QUICK[:2])
    assert "train" in ran
    proc = _dvc(repo, "exp", "run", "-S", f"{PARAMS}:optim.lr=0.003", f"pipelines/{BC}/dvc.yaml")
    assert proc.returncode == 0, proc.stderr[-3000:]
    experiment = json.loads((repo.data(BC) / "08_reporting" / "metrics.json").read_text())
    tags = subprocess.run(["git", "tag"], cwd=repo.path, capture_output=True, text=True).stdout

    refused = repo.run("train", BC, *QUICK, check=False)
    assert refused.returncode == 2
    assert "optim.lr: 0.01 -> 0.003" in refused.stderr
    assert 'ARGS="optim.lr=0.003"' in refused.stderr
    assert subprocess.run(["git", "tag"], cwd=repo.path, capture_output=True, text=True).stdout == tags

    shown = _dvc(repo, *_exp_show_command(), "-A")
    assert shown.returncode == 0, shown.stderr
    header, _, *rows = [r for r in shown.stdout.splitlines() if r.startswith("|")]
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[:2] == ["Experiment", "Created"] and len(columns) <= 10, columns
    lr = next(i for i, c in enumerate(columns) if c.endswith("optim.lr"))
    values = {re.sub(r"^\W+", "", r.split("|")[1].strip()): r.split("|")[lr + 1].strip() for r in rows}
    assert any(name.endswith("]") and value == "0.003" for name, value in values.items()), values

    ran, proc = repo.train(BC, *QUICK[:2], "optim.lr=0.003")
    assert ran == [], "the experiment's results are DVC's: nothing reruns"
    assert "registered tabular/breast_cancer v2.0.0" in proc.stdout
    card = json.loads(repo.run("lineage", BC, "v2", "--json").stdout)
    assert card["metrics"] == experiment
    assert card["params"]["optim"]["lr"] == yaml.safe_load((repo.path / PARAMS).read_text())["optim"]["lr"] == 0.003


@pytest.mark.slow
def test_search_leaves_the_compiled_files_as_it_found_them(repo_factory) -> None:
    repo = repo_factory()
    repo.run("compile", BC, "trainer.max_epochs=3")
    before = {name: (repo.path / f"pipelines/{BC}/{name}").read_text() for name in ("params.yaml", "dvc.yaml")}
    repo.run(
        "search",
        BC,
        "search=accuracy",
        "search.constraints=[]",  # the latency limit is the machine's business, not this test's
        "trainer.max_epochs=1",
        "evaluate.latency_repeats=3",
        "--n-trials",
        "1",
        "--no-final",
    )
    after = {name: (repo.path / f"pipelines/{BC}/{name}").read_text() for name in before}
    assert after == before
    assert (repo.data(BC) / "08_reporting" / "search" / "trials.csv").is_file()
