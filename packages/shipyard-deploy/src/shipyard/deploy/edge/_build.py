"""Build the edge target: export, parity gate, report; written atomically.

A candidate that passes replaces ``out_dir`` in one rename. One that fails leaves ``out_dir``
(the model on devices now) as it is and goes, report included, to ``<out_dir>.rejected/`` for
inspection (docs/architecture.md, invariant 3: nothing reaches a deployment without passing its gate).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.atomic import atomic_dir, write_json
from shipyard.core.compose import section
from shipyard.core.errors import ConfigError, DataError
from shipyard.core.paths import ProjectPaths
from shipyard.core.schema import EdgeConf, EdgeVariant
from shipyard.deploy.edge._errors import ParityError
from shipyard.deploy.edge._report import (
    METADATA,
    REPORT,
    edge_metrics,
    metadata,
    model_file,
    rejected_dir,
)

if TYPE_CHECKING:
    import pandas as pd
    from shipyard.train.bundle import ModelBundle

__all__ = ["build_edge", "build_edge_bundle", "edge_dir", "run_edge"]


def build_edge(
    bundle_dir: Path,
    out_dir: Path,
    conf: EdgeConf | dict[str, Any] | None,
    *,
    project: str,
    version: str,
    test_frame: pd.DataFrame,
) -> dict[str, Any]:
    """Export the bundle at ``bundle_dir`` to LiteRT, gate every variant on ``test_frame`` and
    write ``out_dir`` (models, ``metadata.json``, ``parity_report.json``). ``conf`` is the typed
    ``deploy.edge`` section (plain data is checked against its schema first). Returns the report;
    raises :class:`ParityError` (report written to ``<out_dir>.rejected/``) when a variant is out
    of tolerance and :class:`EdgeExportError` when the model cannot be exported."""
    from shipyard.train.bundle import ModelBundle

    settings = edge_conf(conf)  # a config mistake fails before torch loads the bundle
    bundle = ModelBundle.load(Path(bundle_dir))
    return build_edge_bundle(bundle, out_dir, settings, project=project, version=version, test_frame=test_frame)


def edge_conf(conf: EdgeConf | dict[str, Any] | None) -> EdgeConf:
    """The typed ``deploy.edge`` section (the Python API may pass plain data)."""
    return conf if isinstance(conf, EdgeConf) else section(EdgeConf, conf, "deploy.edge")


def variants(settings: EdgeConf) -> list[str]:
    """The variants to build: fp32 first and always (the quantized ones are made from it)."""
    return [str(v) for v in EdgeVariant if v == EdgeVariant.fp32 or v in settings.variants]


def build_edge_bundle(
    bundle: ModelBundle,
    out_dir: Path,
    conf: EdgeConf | dict[str, Any] | None,
    *,
    project: str,
    version: str,
    test_frame: pd.DataFrame,
) -> dict[str, Any]:
    """:func:`build_edge` for a bundle already in memory."""
    from shipyard.deploy.edge._convert import compact_names, quantize, to_tflite
    from shipyard.deploy.edge._graph import INPUT_NAME, EdgeModule, edge_inputs, input_order, truth
    from shipyard.deploy.edge._parity import parity_report

    settings = edge_conf(conf)
    metric = _metric(settings, bundle.task)
    pre = bundle.preprocessor
    x = edge_inputs(pre, test_frame)
    y = truth(bundle, test_frame)
    if len(x) == 0:
        raise DataError("the test split is empty: the parity gate needs rows", fix="check the project's split")

    module = EdgeModule(bundle.net, pre).eval()
    fp32 = to_tflite(module, x.shape[1], INPUT_NAME, model_target=str(bundle.meta["model"]["_target_"]))
    files = {"fp32": fp32 if settings.keep_tensor_names else compact_names(fp32)}
    for variant in variants(settings)[1:]:
        files[variant] = quantize(files["fp32"], variant)

    report, io = parity_report(bundle, module, files, test_frame, x, y, settings, metric)
    report.update(project=project, model_version=version, weights_sha256=bundle.weights_sha256)
    meta = metadata(bundle, project=project, version=version, order=input_order(pre), io=io, files=files)
    if not report["passed"]:
        _write(rejected_dir(out_dir), files, meta, report)
        raise _rejection(report, rejected_dir(out_dir) / REPORT)
    _write(out_dir, files, meta, report)
    shutil.rmtree(rejected_dir(out_dir), ignore_errors=True)
    return report


def _write(target: Path, files: dict[str, bytes], meta: dict[str, Any], report: dict[str, Any]) -> None:
    with atomic_dir(target) as tmp:
        # A deployment is read by other users and services: mkdtemp's private 0700 would hide it.
        tmp.chmod(0o755)
        for variant, content in files.items():
            (tmp / model_file(variant)).write_bytes(content)
        (tmp / METADATA).write_text(_json(meta))
        (tmp / REPORT).write_text(_json(report))


def _rejection(report: dict[str, Any], path: Path) -> ParityError:
    failed = {v: e["failures"] for v, e in report["variants"].items() if not e["passed"]}
    return ParityError(
        "LiteRT variant(s) out of tolerance: " + "; ".join(f"{v}: {', '.join(why)}" for v, why in failed.items()),
        report=report,
        report_path=path,
        where=str(path),
        key="deploy.edge.tolerance." + next(iter(failed)),
        fix="the deployed edge model was left as it was; drop the failing variant from deploy.edge.variants, "
        "or loosen deploy.edge.tolerance if the loss is acceptable",
    )


def _json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"


# The metric compared when deploy.edge.metric is auto (the rules check any other name per task).
AUTO_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "r2"}


def _metric(settings: EdgeConf, task: str) -> str:
    from shipyard.core.rules import METRICS

    metric = AUTO_METRIC[task] if settings.metric == "auto" else settings.metric
    if metric not in METRICS[task]:  # composing checks this; the Python API learns the task here
        raise ConfigError(
            f"metric {metric!r} is not computed for a {task} task",
            key="deploy.edge.metric",
            value=metric,
            fix="use auto or one of: " + ", ".join(METRICS[task]),
        )
    return metric


# -- the project-level entry point ----------------------------------------------------------------


def edge_dir(root: Path, project: str) -> Path:
    """``deploy/<team>/<name>/edge`` of a project."""
    return ProjectPaths.of(root, project).deploy_dir("edge")


def run_edge(
    root: Path, project: str, conf: EdgeConf | dict[str, Any] | None, *, version: str | None = None
) -> dict[str, Any]:
    """Build a trained project's edge target from its bundle and test split: what
    ``shipyard deploy TEAM/NAME --target edge`` and the ``deploy_edge`` DVC stage run.

    Also writes the flat metrics to ``data/<team>/<name>/08_reporting/edge_metrics.json``
    (a DVC metrics file) when the gate passes."""
    import pandas as pd

    paths = ProjectPaths.of(root, project)
    bundle_dir = paths.artifact("model_bundle")
    test_file = paths.artifact("test_split")
    if not test_file.is_file():
        raise DataError(
            f"{paths.rel(test_file)} does not exist",
            where=str(test_file),
            fix=f"train the project first: make train PROJECT={project}",
        )
    from shipyard.train.bundle import ModelBundle

    bundle = ModelBundle.load(bundle_dir)
    report = build_edge_bundle(
        bundle,
        edge_dir(root, project),
        conf,
        project=project,
        version=version or bundle.weights_sha256,
        test_frame=pd.read_parquet(test_file),
    )
    write_json(paths.artifact("edge_metrics"), edge_metrics(report))
    return report
