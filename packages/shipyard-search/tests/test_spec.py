"""Search configs: the shipped ones validate; every mistake fails before any trial, naming its key."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from shipyard.core.errors import ConfigError
from shipyard.search import SearchError, SearchSpec, TrialRecord, pareto_front, prepare, run_search, select_trial
from shipyard.search._space import grid_points, hydra_value

ROOT = Path(__file__).resolve().parents[3]
PROJECT = "tabular/breast_cancer"

GOOD = """
name: bad
objectives:
  - {metric: val/f1, direction: maximize}
  - {metric: latency_p95_ms, direction: minimize}
constraints: ["val/recall >= 0.5"]
space:
  optim.lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}
n_trials: 2
"""
LR = "optim.lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}"


def _bad(old: str, new: str, text: str = GOOD) -> str:
    if old not in text:
        raise ValueError(f"{old!r} is not in the base config")
    return text.replace(old, new)


SHIPPED = sorted(p.stem for p in (ROOT / "conf" / "search").glob("*.yaml"))
# The project each shipped search is written for (the default project unless listed).
FOR_PROJECT = {"model_choice": "vision/digits"}


def test_searches_are_shipped() -> None:
    assert {"f1_latency", "accuracy", "model_choice"} <= set(SHIPPED)


@pytest.mark.parametrize("search", SHIPPED)
def test_shipped_searches_validate(search: str) -> None:
    project = FOR_PROJECT.get(search, PROJECT)
    prepared = prepare(project, [f"search={search}"], root=ROOT)
    assert prepared.spec.name == search
    assert prepared.spec.study_name == f"{project}/{search}"
    assert prepared.spec.where == f"conf/search/{search}.yaml"


def _error(repo: Path, write_search: Callable[..., None], text: str, *extra: str) -> ConfigError:
    write_search(repo, "bad", text)
    with pytest.raises(ConfigError) as caught:
        run_search(PROJECT, ["search=bad", *extra], root=repo, final=False, say=lambda _: None)
    # Failing before any trial: no study storage was even created.
    assert not (repo / "data" / PROJECT / "08_reporting" / "search").exists()
    return caught.value


BAD = {
    "unknown key in the space": (
        _bad("optim.lr:", "model.hiden:"),
        "search.space.model.hiden",
        'did you mean "hidden"',
    ),
    "low above high": (
        _bad("low: 1.0e-3, high: 1.0e-1", "low: 0.5, high: 0.1"),
        "search.space.optim.lr.low",
        "above high",
    ),
    "log scale from zero": (_bad("low: 1.0e-3", "low: 0.0"), "search.space.optim.lr.low", "log scale"),
    "steps that miss high": (
        _bad(LR, "trainer.batch_size: {type: int, low: 16, high: 100, step: 16}"),
        "search.space.trainer.batch_size.high",
        "whole number of steps",
    ),
    "int with fractional bounds": (
        _bad(LR, "trainer.batch_size: {type: int, low: 1.5, high: 8}"),
        "search.space.trainer.batch_size.low",
        "whole",
    ),
    "a value of the wrong type": (
        _bad(LR, "trainer.max_epochs: {type: categorical, choices: [2, many]}"),
        "search.space.trainer.max_epochs",
        "max_epochs",
    ),
    "constraint on a metric no stage produces": (
        _bad("val/recall >= 0.5", "val/recal >= 0.5"),
        "search.constraints[0]",
        'did you mean "val/recall"',
    ),
    "objective on the test split": (
        _bad("metric: val/f1", "metric: test/f1"),
        "search.objectives[0].metric",
        "never reads the test split",
    ),
    "a split key": (_bad("optim.lr:", "split.val:"), "search.space.split.val", "cannot vary"),
    "pruning a multi-objective search": (
        GOOD + "pruner: {name: median}\n",
        "search.pruner.name",
        "cannot prune a multi-objective",
    ),
    "a model option that does not fit the project": (
        _bad(LR, "model: {type: categorical, choices: [mlp, cnn]}"),
        "search.space.model",
        "CNN",
    ),
    "an unknown model option": (
        _bad(LR, "model: {type: categorical, choices: [mlp, cnm]}"),
        "search.space.model",
        'did you mean "cnn"',
    ),
    "an unknown search key": (GOOD + "n_trails: 3\n", "search.n_trails", 'did you mean "n_trials"'),
    "no budget": (_bad("n_trials: 2", "n_trials: null"), "search.n_trials", "neither"),
    "a heartbeat grace period within one interval": (
        GOOD + "heartbeat: {interval: 30, grace_period: 30}\n",
        "search.heartbeat.grace_period",
        "longer than the interval",
    ),
    "a database nobody answers at": (
        GOOD + "storage: postgresql+psycopg://nobody:secret@127.0.0.1:1/studies\n",
        "search.storage",
        "cannot open the study storage postgresql+psycopg://nobody:***@127.0.0.1:1/studies",
    ),
    "an unknown sampler parameter": (
        GOOD + "sampler: {name: tpe, params: {n_startup: 3}}\n",
        "search.sampler.params.n_startup",
        "n_startup_trials",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_search_fails_before_any_trial(case: str, repo: Path, write_search: Callable[..., None]) -> None:
    text, key, words = BAD[case]
    error = _error(repo, write_search, text)
    assert error.key == key, error.render()
    assert words in error.render()
    assert error.where == "conf/search/bad.yaml"


def test_grid_with_infinite_range_is_refused(repo: Path, write_search: Callable[..., None]) -> None:
    error = _error(repo, write_search, GOOD + "sampler: {name: grid}\n")
    assert error.key == "search.space.optim.lr"
    assert "finite" in error.message


def test_no_search_declared_names_the_choices() -> None:
    with pytest.raises(ConfigError) as caught:
        prepare(PROJECT, [], root=ROOT)
    assert caught.value.key == "search" and "f1_latency" in (caught.value.fix or "")


def test_searched_key_also_overridden_is_refused(repo: Path, write_search: Callable[..., None]) -> None:
    error = _error(repo, write_search, GOOD, "optim.lr=0.1")
    assert error.key == "search.space.optim.lr"


@pytest.mark.parametrize(
    "value", [1e-05, 0.1, 3, True, None, "relu", "two words", "it's", "1e-3", "null", [64, 32], [[1], "a b"]]
)
def test_hydra_value_round_trips(value: object) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(f"model.x={hydra_value(value)}").value()
    assert parsed == (list(value) if isinstance(value, tuple) else value)


def test_grid_points_follow_conditions() -> None:
    from shipyard.search._spec import Param

    params = (
        Param("model", "group", choices=("cnn", "mlp")),
        Param("model.channels", "categorical", choices=([8], [16]), when=(("model", ("cnn",)),)),
        Param("optim.lr", "float", low=0.1, high=0.3, step=0.1),
    )
    points = grid_points(params)
    # cnn: 2 channel options x 3 lr; mlp: 3 lr (channels not multiplied in).
    assert len(points) == 9
    assert {p["optim.lr"] for p in points} == {0.1, 0.2, 0.3}
    assert all("model.channels" not in p for p in points if p["model"] == "mlp")


@functools.cache
def _spec(select_among: str = "feasible") -> SearchSpec:
    from shipyard.search import search_spec
    from shipyard.search._check import compose_trial

    spec = search_spec(compose_trial(PROJECT, ["search=f1_latency"], ROOT), ROOT)
    return dataclasses.replace(spec, select_among=select_among)


def _record(number: int, f1: float, latency: float, recall: float, state: str = "COMPLETE") -> TrialRecord:
    spec = _spec()
    metrics = {"val/f1": f1, "latency_p95_ms": latency, "val/recall": recall}
    return TrialRecord(number, state, {}, metrics, feasible=state == "COMPLETE" and spec.feasible(metrics))


def test_selection_respects_constraints() -> None:
    spec = _spec()  # val/recall >= 0.9, latency_p95_ms <= 5; maximize val/f1
    rows = [
        _record(0, 0.99, 0.1, 0.80),  # best F1, recall too low: infeasible
        _record(1, 0.98, 9.0, 0.95),  # too slow: infeasible
        _record(2, 0.95, 0.2, 0.91),
        _record(3, 0.97, 0.3, 0.92),
        _record(4, 1.00, 0.1, 1.00, state="FAIL"),
        _record(5, 1.00, 0.1, 1.00, state="PRUNED"),
    ]
    assert select_trial(rows, spec).number == 3
    front = pareto_front(rows, spec)
    assert {r.number for r in front} == {2, 3}
    assert all(r.feasible for r in front)


def test_selection_among_the_pareto_front() -> None:
    spec = _spec("pareto")
    rows = [_record(0, 0.95, 0.2, 0.95), _record(1, 0.95, 0.1, 0.95), _record(2, 0.90, 0.05, 0.95)]
    # Trial 0 is dominated by 1 (same F1, slower); ties on F1 go to the objectives in order.
    assert select_trial(rows, spec).number == 1


def test_no_feasible_trial_is_an_error() -> None:
    spec = _spec()
    with pytest.raises(SearchError) as caught:
        select_trial([_record(0, 0.99, 0.1, 0.5), _record(1, 0.9, 7.0, 0.99)], spec)
    assert "0 feasible" in caught.value.message and caught.value.key == "search.constraints"


def test_nested_space_takes_command_line_overrides(repo: Path, write_search: Callable[..., None]) -> None:
    nested = _bad(LR, "optim:\n    lr: {type: float, low: 1.0e-3, high: 1.0e-1, log: true}")
    write_search(repo, "nested", nested)
    spec = prepare(PROJECT, ["search=nested", "search.space.optim.lr.high=0.05"], root=repo).spec
    assert [(p.key, p.high) for p in spec.params] == [("optim.lr", 0.05)]
    error = _error(repo, write_search, nested, "search.space.optim.lr.low=0")
    assert error.key == "search.space.optim.lr.low"
