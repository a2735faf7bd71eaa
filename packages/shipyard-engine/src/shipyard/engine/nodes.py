"""Pure node functions: the glue between Kedro's named inputs and the layer packages.

Each wrapper only reshapes arguments; the work happens in ``shipyard.data`` and
``shipyard.train``. Params arrive as the typed sections of :class:`ShipyardConfig`; ``runtime``
carries the repository root and work folders (not params: they do not change results).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import (
    Action,
    ChecksConf,
    ContractAction,
    DataConf,
    EvaluateConf,
    FeaturesConf,
    GateConf,
    ModelConf,
    OptimConf,
    PreprocessConf,
    ProjectConf,
    SplitConf,
    ThresholdCheckConf,
    TrainerConf,
)


def _aux(group: str | None, time: str | None) -> list[str]:
    return [c for c in (group, time) if c]


def ingest(
    data: DataConf,
    group: str | None,
    time: str | None,
    max_categories: int,
    features: FeaturesConf,
    runtime: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:
    """The dataset, and the ingest report (rows, key, each column's role and fate). The shared
    features' join keys and event time are kept for the join, never made features."""
    from shipyard.data.sources import ingest_with_report

    keep = _join_columns(features, runtime)
    return ingest_with_report(data, Path(runtime["root"]), _aux(group, time), max_categories, keep)


def _join_columns(features: FeaturesConf, runtime: dict[str, Any]) -> list[str]:
    if not features.views:
        return []
    import yaml

    defs = ProjectPaths.of(Path(runtime["root"]), runtime["project"]).feature_defs
    views = yaml.safe_load(defs.read_text())["views"] if defs.is_file() else []
    return list(dict.fromkeys([*(str(v["join_key"]) for v in views), str(features.event_time)]))


def _contract_check(
    frame: Any, reference: dict[str, Any], checks: ChecksConf, project: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """Failures, warnings and the summary line of the data contract check."""
    from shipyard.data.contract import compare_contract

    if checks.contract == ContractAction.off and not checks.contract_columns:
        return [], [], "data contract: not compared (checks.contract: off)"
    contract = reference.get("contract")
    if not contract:
        return [], [], f"data contract: none to compare with ({reference.get('reason') or 'no registered version'})"
    failures, warnings = compare_contract(frame, contract, checks)
    which = f"{project} {reference.get('version')} ({reference.get('stage') or 'latest registered'})"
    verdict = "broken" if failures else "kept, with warnings" if warnings else "kept"
    return failures, warnings, f"data contract of {which}: {verdict}"


def check(
    frame: Any,
    ingested: dict[str, Any],
    reference: dict[str, Any],
    checks: ChecksConf,
    target: str,
    task: str,
    group: str | None,
    time: str | None,
    runtime: dict[str, Any],
) -> tuple[dict[str, Any], str]:
    """Run the data checks. On failure the report is written anyway, then the stage stops."""
    from shipyard.core.atomic import write_json, write_text
    from shipyard.core.errors import DataError
    from shipyard.data.checks import format_summary, run_checks

    if not checks.enabled:
        report = {
            "passed": True,
            "skipped": True,
            "rows": len(frame),
            "columns": len(frame.columns),
            "failures": [],
            "warnings": [],
        }
    else:
        report = run_checks(frame, checks, target, str(task), _aux(group, time))
    # The data report: what ingest read and did to every column, beside the checks' verdict.
    report["ingest"] = {k: v for k, v in ingested.items() if k != "columns"}
    report["profile"] = ingested["columns"]
    broken, noted, line = _contract_check(frame, reference, checks, runtime["project"])
    # Contract breaks come first: they explain the other failures a missing column causes.
    report["failures"] = broken + report["failures"]
    report["warnings"] = noted + report["warnings"]
    report["passed"] = not report["failures"]
    summary = format_summary(report, runtime["project"]) + line + "\n"
    if report["warnings"] or not report["passed"]:
        print(summary, end="", file=sys.stderr)
    if not report["passed"]:
        write_json(Path(runtime["check_report"]), report)
        write_text(Path(runtime["check_summary"]), summary)
        first = report["failures"][0]
        raise DataError(
            f"{len(report['failures'])} data check(s) failed; first: {first['check']} "
            f"on {first['column'] or 'all columns'}: observed {first['observed']}, expected {first['expected']}",
            where=runtime["check_summary_rel"],
            fix=first.get("fix")
            or "fix the data, or the rule under `checks:` in the project config if the data is right",
        )
    return report, summary


def split(
    frame: Any,
    report: dict[str, Any],
    split: SplitConf,
    target: str,
    shape: list[int] | None,
    task: str,
    seed: int,
    rule: ThresholdCheckConf,
) -> tuple[Any, Any, Any, dict[str, Any], dict[str, Any]]:
    """The three splits, their manifest, and the data contract the training split sets; then
    the label mix of the splits is judged: a problem warns, or stops the stage under
    ``checks.split.action: fail`` (checks=strict)."""
    from shipyard.core.errors import DataError
    from shipyard.data.contract import infer_contract
    from shipyard.data.report import split_table
    from shipyard.data.split import label_mix, split_frame

    train, val, test, manifest = split_frame(frame, split, target, str(task), seed)
    problems = label_mix(manifest, str(task), rule)
    manifest["warnings"] = problems
    print(split_table(manifest), end="", file=sys.stderr)
    for p in problems:
        print(
            f"  {'failed' if rule.action == Action.fail else 'warning'}: {p['check']} [{p['column']}]: {p['observed']}",
            file=sys.stderr,
        )
    if problems and rule.action == Action.fail:
        first = problems[0]
        raise DataError(
            f"{len(problems)} split check(s) failed; first: {first['check']} ({first['observed']})",
            key="checks.split",
            fix="use more data, a stratified split, other split fractions, or checks.split.action=warn",
        )
    # Ranges and vocabularies of all the rows this version was built from (train, val and test):
    # the same data must keep its own contract, whatever the split drew into training.
    contract = infer_contract(frame, target, str(task), _aux(split.group_column, split.time_column), shape)
    # The check stage holds the next ingest to this contract: only the columns ingest gives, not
    # those a team's data step or the shared-feature join adds after the check.
    ingested = {c["name"] for c in report.get("profile", [])}
    if ingested:
        contract["columns"] = {n: c for n, c in contract["columns"].items() if n in ingested}
    return train, val, test, manifest, contract


def fit_preprocessing(
    train: Any,
    target: str,
    shape: list[int] | None,
    preprocess: PreprocessConf,
    task: str,
    group: str | None,
    time: str | None,
    datetime_parts: list[str],
) -> dict[str, Any]:
    from shipyard.data.preprocess import fit_preprocessor

    return fit_preprocessor(train, target, shape, preprocess, str(task), _aux(group, time), datetime_parts)


def train(
    train: Any,
    val: Any,
    state: dict[str, Any],
    model: ModelConf,
    optim: OptimConf,
    trainer: TrainerConf,
    seed: int,
    project: ProjectConf,
    runtime: dict[str, Any],
) -> tuple[Any, Any, dict[str, Any]]:
    from shipyard.train.fit import train_model

    result = train_model(
        train,
        val,
        state,
        model=model,
        optim=optim,
        trainer=trainer,
        seed=seed,
        project=project,
        workdir=Path(runtime["train_workdir"]),
    )
    return result.bundle, result.curve, result.report


def evaluate(
    bundle: Any, train: Any, val: Any, test: Any, conf: EvaluateConf, bins: int, runtime: dict[str, Any]
) -> tuple[dict[str, float], Any, dict[str, Any]]:
    """Metrics, the confusion table, and the reference profile monitoring compares against."""
    from shipyard.data.profile import reference_profile
    from shipyard.train.evaluate import confusion_rows, evaluate_bundle

    weights = Path(runtime["bundle_dir"]) / "weights.safetensors"
    metrics = evaluate_bundle(bundle, val, test, conf, weights.stat().st_size)
    confusion = confusion_rows(bundle, test) if bundle.task != "regression" else None
    if confusion is None:
        import pandas as pd

        confusion = pd.DataFrame({"actual": [], "predicted": []})
    pre = bundle.preprocessor
    # Image models have one feature per pixel: their profile is the prediction's alone.
    features = [] if pre.shape else list(pre.features)
    predictions = bundle.labels(bundle.predict_scores(val))
    profile = reference_profile(
        train, features, set(pre.categorical), predictions, bundle.task, metrics, int(bins), list(pre.classes)
    )
    return metrics, confusion, profile


def gate(
    metrics: dict[str, float],
    train: Any,
    val: Any,
    test: Any,
    state: dict[str, Any],
    gate: GateConf,
    model: ModelConf,
    optim: OptimConf,
    trainer: TrainerConf,
    seed: int,
    project: ProjectConf,
    runtime: dict[str, Any],
) -> dict[str, Any]:
    """Thresholds and baselines on the test split; optionally a seeded retrain that must
    reproduce the validation metrics exactly. The comparison with production happens when the
    version is registered or promoted (production changes outside the pipeline)."""
    from shipyard.core.features import Preprocessor
    from shipyard.train.gate import evaluate_gate

    report = evaluate_gate(metrics, train, test, Preprocessor.from_state(state), gate)
    if gate.reproducibility:
        from shipyard.train.evaluate import evaluate_bundle
        from shipyard.train.fit import train_model

        again = train_model(
            train,
            val,
            state,
            model=model,
            optim=optim,
            trainer=dataclasses.replace(trainer, progress_bar=False),
            seed=seed,
            project=project,
            workdir=Path(runtime["train_workdir"]).with_name(".reproduce"),
        )
        repeat = evaluate_bundle(again.bundle, val, None, EvaluateConf(latency_batch_sizes=[]), 0)
        first = {k: v for k, v in metrics.items() if k.startswith("val/")}
        second = {k: v for k, v in repeat.items() if k.startswith("val/")}
        report["checks"].append(
            {
                "name": "reproducible with the same seed",
                "passed": first == second,
                "observed": second,
                "expected": first,
                "detail": "retrained once more with the same seed and data",
            }
        )
        report["passed"] = all(c["passed"] for c in report["checks"])
    return report


def report(
    check_report: dict[str, Any],
    split_manifest: dict[str, Any],
    learning_curve: Any,
    metrics: dict[str, float],
    confusion: Any,
    gate_report: dict[str, Any],
    project: ProjectConf,
    model: ModelConf,
    seed: int,
) -> str:
    """The run's self-contained HTML report (08_reporting/report.html)."""
    from shipyard.engine.html_report import render

    artifacts = {
        "check_report": check_report,
        "split_manifest": split_manifest,
        "learning_curve": learning_curve,
        "metrics": metrics,
        "confusion": confusion,
        "gate_report": gate_report,
    }
    run = {"project": f"{project.team}/{project.name}", "model": model.target, "seed": seed}
    return render(f"{project.team}/{project.name}", str(project.task), artifacts, run=run)


# -- shared features and a team's own steps ----------------------------------------------------


def join_features(
    frame: Any,
    report: dict[str, Any],
    definitions: str,
    refs: list[Any],
    event_time: str,
    runtime: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:
    """The label rows with the features of the project's views joined point in time, and the
    manifest of what was joined (views, hashes, columns: the bundle carries it to every target).
    ``definitions`` is the compiled ``features.yaml``, never conf/ (as params.yaml for params)."""
    import yaml
    from shipyard.features import build_training_frame, lookup_spec

    views = yaml.safe_load(definitions)["views"]
    joined = build_training_frame(frame, views, event_time, Path(runtime["root"]))
    manifest = lookup_spec(views, event_time, None)
    manifest["rows"] = len(joined)
    manifest["matched"] = {
        f"{v['view']}@{v['version']}": int(joined[v["columns"][0]].notna().sum()) for v in views if v["columns"]
    }
    return joined, manifest


def _lookup_columns(manifest: dict[str, Any]) -> list[str]:
    keys = [v["join_key"] for v in manifest["views"]]
    return list(dict.fromkeys([*keys, manifest["event_time"]]))


def fit_preprocessing_joined(
    train: Any,
    target: str,
    shape: list[int] | None,
    preprocess: PreprocessConf,
    task: str,
    group: str | None,
    time: str | None,
    datetime_parts: list[str],
    manifest: dict[str, Any],
) -> dict[str, Any]:
    from shipyard.data.preprocess import fit_preprocessor

    aux = list(dict.fromkeys([*_aux(group, time), *_lookup_columns(manifest)]))
    return fit_preprocessor(train, target, shape, preprocess, str(task), aux, datetime_parts)


def train_joined(*args: Any) -> tuple[Any, Any, dict[str, Any]]:
    """:func:`train`, then the feature manifest goes into the bundle's metadata (not its
    weights), so the service and the batch job know which features to look up, and how."""
    *rest, manifest = args
    bundle, curve, report = train(*rest)
    bundle.meta["features"] = {k: v for k, v in manifest.items() if k not in ("rows", "matched")}
    return bundle, curve, report


def run_step(function: str, *args: Any) -> Any:
    """A team's registered step: its inputs in the order the project lists them, then its typed
    parameters; returns its outputs (a tuple when it declares several)."""
    from shipyard.core.registry import STEPS, import_target

    *inputs, step = args
    func = import_target(function, key="steps.function", group=STEPS)
    return func(*inputs, params=step.params)
