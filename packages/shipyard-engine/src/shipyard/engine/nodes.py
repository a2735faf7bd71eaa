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

from shipyard.core.schema import (
    ChecksConf,
    ContractAction,
    DataConf,
    EvaluateConf,
    GateConf,
    ModelConf,
    OptimConf,
    PreprocessConf,
    ProjectConf,
    SplitConf,
    TrainerConf,
)


def _aux(group: str | None, time: str | None) -> list[str]:
    return [c for c in (group, time) if c]


def ingest(data: DataConf, group: str | None, time: str | None, runtime: dict[str, Any]) -> Any:
    from shipyard.data.sources import ingest as _ingest

    return _ingest(data, Path(runtime["root"]), _aux(group, time))


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
) -> tuple[Any, Any, Any, dict[str, Any], dict[str, Any]]:
    """The three splits, their manifest, and the data contract the training split sets."""
    from shipyard.data.contract import infer_contract
    from shipyard.data.split import split_frame

    train, val, test, manifest = split_frame(frame, split, target, str(task), seed)
    contract = infer_contract(train, target, str(task), _aux(split.group_column, split.time_column), shape)
    return train, val, test, manifest, contract


def fit_preprocessing(
    train: Any,
    target: str,
    shape: list[int] | None,
    preprocess: PreprocessConf,
    task: str,
    group: str | None,
    time: str | None,
) -> dict[str, Any]:
    from shipyard.data.preprocess import fit_preprocessor

    return fit_preprocessor(train, target, shape, preprocess, str(task), _aux(group, time))


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
