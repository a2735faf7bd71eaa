"""The BentoML service, built at import time from a service folder written by ``build_service``.

``<out_dir>/service.py`` (the Bento's entry point, ``service:ShipyardService``) calls
:func:`load_service`. Importing it reads ``service.json`` and the model's ``bundle.json`` and
generates the pydantic models: no torch. The model is a BentoML model in the model store
(:mod:`._store`: put there from the folder's ``bundle/`` if the store lacks it; a Bento names its
own), declared on the service class so that BentoML packs and resolves it. Before any worker
starts, the server's main process checks the API key and the model's weights hash once
(BentoML's ``on_deployment`` hook) and refuses to start, exit code 2, if either is wrong: a
restart loop of workers answering 500 is never the result. Each worker then loads the model
(safetensors, no pickle, no Lightning; the loader checks the hash again) and warms it up before
it reports ready.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.core.errors import ConfigError, DataError, ShipyardError
from shipyard.core.schema import ServiceConf
from shipyard.deploy._bundles import rebuild_fix
from shipyard.deploy.service._schema import ServiceSchema, build_schema

__all__ = ["BUNDLE_DIR", "PREDICT_ROUTE", "SERVICE_JSON", "api_key", "load_service", "settings_from"]

SERVICE_JSON = "service.json"
BUNDLE_DIR = "bundle"
PREDICT_ROUTE = "/predict"

# A child of BentoML's logger: BentoML configures that one (format, level) in every worker.
log = logging.getLogger("bentoml.shipyard")


def settings_from(data: ServiceConf | Mapping[str, Any] | None) -> ServiceConf:
    """The typed ``deploy.service`` section: given, or read back from plain data (a built
    folder's ``service.json``, the Python API), checked against the schema."""
    from shipyard.core.compose import section

    return data if isinstance(data, ServiceConf) else section(ServiceConf, data, "deploy.service")


def api_key(settings: ServiceConf) -> str | None:
    """The API key from the environment (never from a file), or None when auth is off."""
    if not settings.auth.enabled:
        return None
    key = os.environ.get(settings.auth.env_var, "")
    if len(key) < settings.auth.min_length:
        problem = "is not set" if not key else f"is shorter than {settings.auth.min_length} characters"
        raise ConfigError(
            f"API-key auth is on but ${settings.auth.env_var} {problem}",
            key="deploy.service.auth",
            fix=f"export {settings.auth.env_var}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
            "or set deploy.service.auth.enabled: false",
        )
    return key


def read_spec(out_dir: Path) -> dict[str, Any]:
    path = out_dir / SERVICE_JSON
    if not path.is_file():
        raise DataError(
            f"{out_dir} is not a built service (no {SERVICE_JSON})",
            where=str(out_dir),
            fix="build it first: make deploy PROJECT=<team>/<name> TARGET=service",
        )
    return dict(json.loads(path.read_text()))


def load_service(out_dir: Path) -> Any:
    """The ``bentoml.Service`` for a built service folder (or a Bento's copy of one)."""
    from shipyard.deploy.service._store import CANDIDATE_DIR, candidate_spec
    from shipyard.train.bundle import META

    spec = read_spec(out_dir)
    settings = settings_from(spec["settings"])
    model = _model_of(out_dir, spec, BUNDLE_DIR)
    candidate = candidate_spec(spec)
    if candidate is not None:
        _model_of(out_dir, candidate, CANDIDATE_DIR)
    meta = json.loads(Path(model.path_of(META)).read_text())
    from shipyard.features import open_lookup

    # Shared features come from the folder's online store: one lookup (connection pool) per worker.
    lookup = open_lookup(out_dir, meta.get("features"))
    rollout = spec.get("rollout") or {}
    schema = build_schema(meta, settings, lookup, rollout.get("key_field") or spec.get("key_field"))
    # The folder it runs from: a repository-relative prediction log resolves against its repository.
    return _make_service({**spec, "folder": str(out_dir)}, settings, schema, out_dir)


def _model_of(out_dir: Path, spec: dict[str, Any], folder: str) -> Any:
    from shipyard.deploy.service._store import stored_model, sync_model

    if (out_dir / folder).is_dir():
        return sync_model(out_dir, spec, verify=False, folder_name=folder)
    model = stored_model(str(spec["model_tag"]))  # a Bento: it carries the model in its own store
    if model is None:
        raise DataError(
            f"the BentoML model {spec['model_tag']} is missing",
            where=str(out_dir),
            fix=rebuild_fix(str(spec["project"]), "service"),
        )
    return model


def _service_config(spec: dict[str, Any], settings: ServiceConf) -> dict[str, Any]:
    traffic: dict[str, Any] = {"timeout": settings.timeout_s}
    if settings.max_concurrency:
        traffic["max_concurrency"] = settings.max_concurrency
    config: dict[str, Any] = {
        "name": spec["service_name"],
        "workers": settings.workers,
        "traffic": traffic,
        "metrics": {"enabled": settings.metrics},
        "logging": {"access": {"enabled": settings.access_log}},
        # BentoML opens OpenTelemetry spans for every request even with no exporter configured;
        # with tracing off, every path is excluded, which saves a large share of the per-request CPU.
        **({} if settings.tracing else {"tracing": {"excluded_urls": [".*"]}}),
        "endpoints": {"livez": "/livez", "readyz": "/readyz"},
    }
    if settings.auth.enabled:
        # Declared so that `bentoml containerize` / BentoCloud know the key must come from the
        # environment at run time; the value itself is never written anywhere.
        config["envs"] = [{"name": settings.auth.env_var, "stage": "runtime"}]
    return config


def _make_service(spec: dict[str, Any], settings: ServiceConf, schema: ServiceSchema, out_dir: Path) -> Any:
    import bentoml

    version = str(spec["model_version"])
    service = bentoml.service(**_service_config(spec, settings))(_service_class(spec, settings, schema, out_dir))
    service.add_asgi_middleware(
        _guard_from_env,  # type: ignore[arg-type]
        settings=settings,
        max_request_bytes=settings.max_request_bytes,
        api_paths=frozenset({PREDICT_ROUTE}),
        model_version=version,
        sticky=_sticky_header(spec),
    )
    return service


def _sticky_header(spec: dict[str, Any]) -> tuple[bytes, str] | None:
    """A header-sticky canary: the header the front door copies into each row, and the field."""
    rollout = spec.get("rollout") or {}
    if rollout.get("mode") != "canary" or not rollout.get("header"):
        return None
    return str(rollout["header"]).lower().encode("latin-1"), str(rollout["key_field"])


def _preflight(model: Any, spec: dict[str, Any], settings: ServiceConf, candidate: Any = None) -> Any:
    """BentoML's ``on_deployment`` hook: runs once in the server's main process, before any
    worker starts (``make serve`` and ``bentoml serve`` alike). A wrong key or damaged weights
    end the server with the one message and exit code 2."""
    import bentoml

    def preflight() -> None:
        from shipyard.train.bundle import verify_bundle

        try:
            api_key(settings)
            for each in (model, candidate):
                if each is not None:
                    verify_bundle(Path(each.resolve().path), fix=rebuild_fix(str(spec["project"]), "service"))
        except ShipyardError as exc:
            # BentoML would print a traceback and start nothing useful; say why, once, and stop.
            print(exc.render(), file=sys.stderr, flush=True)
            raise SystemExit(exc.exit_code) from None

    return bentoml.on_deployment(preflight)


_COUNTERS: dict[str, Any] = {}


def _log_counters() -> tuple[Any, Any]:
    """Prometheus counters of the prediction log (on ``/metrics``): rows written, rows dropped
    (the writer's queue was full or a write failed). Made once per process."""
    import bentoml

    if not _COUNTERS:
        _COUNTERS["written"] = bentoml.metrics.Counter(
            name="shipyard_prediction_log_written_rows", documentation="scored rows written to the prediction log"
        )
        _COUNTERS["dropped"] = bentoml.metrics.Counter(
            name="shipyard_prediction_log_dropped_rows",
            documentation="scored rows the prediction log dropped (its queue was full, or a write failed)",
        )
    return _COUNTERS["written"], _COUNTERS["dropped"]


def _open_log(spec: dict[str, Any], bundle: Any, version: str, out_dir: Path) -> Any:
    from shipyard.deploy._predlog import feature_kinds, open_target_log

    if not spec.get("prediction_log"):
        return None
    written, dropped = _log_counters()
    plog = open_target_log(
        spec["prediction_log"],
        out_dir,
        feature_kinds(bundle.meta),
        task=bundle.task,
        source="service",
        model_version=version,
        block=False,  # a request never waits for the log: rows that do not fit are dropped, counted
        on_drop=lambda n: dropped.inc(n),
        on_write=lambda n: written.inc(n),
    )
    log.info("prediction log: %s (sample rate %s)", plog.sink.display, plog.sample_rate)
    return plog


def _logged_scores(scores: Any, task: str) -> Any:
    # One number per row: P(positive) for binary, the top probability for multiclass; a
    # regression's prediction is its value already.
    if task == "binary":
        return scores
    if task == "multiclass":
        return scores.max(axis=1)
    return None


def _service_class(spec: dict[str, Any], settings: ServiceConf, schema: ServiceSchema, out_dir: Path) -> type:
    """The class BentoML wraps: its model, model loading, readiness, the batchable ``/predict``
    API, and the prediction log (flushed when the worker shuts down)."""
    import bentoml
    from shipyard.deploy.service._store import candidate_spec

    version = str(spec["model_version"])
    prediction = schema.prediction
    model = bentoml.models.BentoModel(str(spec["model_tag"]))
    candidate_of = candidate_spec(spec)
    candidate = bentoml.models.BentoModel(str(candidate_of["model_tag"])) if candidate_of else None
    fix = rebuild_fix(str(spec["project"]), "service")

    def __init__(self: Any) -> None:
        import anyio

        _quiet_rejections()
        self.bundle = _load_bundle(Path(self.model.path), settings, fix)
        self.version = version
        self.rollout = _start_rollout(self, spec, schema, settings, fix) if candidate is not None else None
        self.inline = _inline(self.bundle, settings) and self.rollout is None
        self.limiter = anyio.CapacityLimiter(1)
        self.plog = _open_log(spec, self.bundle, version, out_dir) if self.rollout is None else None
        # BentoML binds an API method anew on every attribute access (inspect.signature and
        # functools.wraps), and looks `predict` up twice a request: about 6 % of a small model's
        # CPU per request. Bound once here, the instance attribute shadows the (non-data)
        # descriptor with the very callable the descriptor returns.
        self.predict = vars(type(self))["predict"].__get__(self, type(self))
        # Everything loaded so far (torch, BentoML, the model) lives as long as the worker. Frozen,
        # the garbage collector's full passes skip it: without this, each full pass over the
        # framework's millions of objects stalls every request in flight (~0.3 s on 2 cores).
        gc.collect()
        gc.freeze()

    def __is_ready__(self: Any) -> bool:
        return hasattr(self, "bundle")

    @bentoml.on_shutdown
    def finish_rollout(self: Any) -> None:
        """A clean shutdown lets the shadow candidate finish and flushes both prediction logs."""
        if getattr(self, "rollout", None) is not None:
            self.rollout.close()

    def score(self: Any, rows: Any) -> list[Any]:
        columns = schema.columns(rows)
        if self.rollout is not None:  # the rollout logs both models' predictions itself
            return list(self.rollout.score(columns, schema.keys(rows)))
        scores = self.bundle.predict_scores(columns)
        labels = self.bundle.labels(scores)
        if self.plog is not None:
            keys = schema.keys(rows) if schema.key_attr is not None else None
            self.plog.log(columns, labels, _logged_scores(scores, self.bundle.task), keys)
        return _results(self.bundle, scores, labels, self.version, prediction)

    def close_log(self: Any) -> None:
        """A clean shutdown writes what the log still holds."""
        plog = getattr(self, "plog", None)
        if plog is not None:
            plog.close()

    async def predict(self: Any, rows: Any) -> Any:
        """Score rows: the predicted class (or value), class probabilities (or the score) and
        the model version, one result per row, in order."""
        if self.inline:
            return score(self, rows)
        import anyio.to_thread

        return await anyio.to_thread.run_sync(score, self, rows, limiter=self.limiter)

    # BentoML reads the API's output type from the signature; the row model is generated, so
    # the annotations are set here rather than written in the source.
    predict.__annotations__ = {"rows": list[schema.row], "return": list[prediction]}  # type: ignore[name-defined]
    api = bentoml.api(
        route=PREDICT_ROUTE,
        input_spec=schema.request,
        batchable=settings.batching.enabled,
        max_batch_size=settings.batching.max_batch_size,
        max_latency_ms=settings.batching.max_latency_ms,
    )(predict)
    # BentoML derives an undeclared media type by generating the output's JSON schema on every
    # response (milliseconds each); the answer is always JSON.
    api.output_spec.media_type = "application/json"
    doc = (
        f'{spec["project"]} model {version}: POST {PREDICT_ROUTE} with {{"rows": [...]}}; '
        f"health /livez, readiness /readyz, metrics /metrics, OpenAPI /docs.json."
    )
    namespace = {
        "model": model,  # BentoML packs it into the Bento and resolves it where the service runs
        **({"candidate_model": candidate} if candidate is not None else {}),
        "preflight": _preflight(model, spec, settings, candidate),
        "__init__": __init__,
        "__is_ready__": __is_ready__,
        **({"finish_rollout": finish_rollout} if candidate is not None else {}),
        "close_log": bentoml.on_shutdown(close_log),
        "predict": api,
        "__doc__": doc,
        "__module__": __name__,
    }
    return type("ShipyardService", (), namespace)


def _guard_from_env(app: Any, *, settings: ServiceConf, **options: Any) -> Any:
    """The :class:`Guard`, built when a worker builds its app: the key is read from the
    environment then, so a ``bentoml build`` on a machine without the key still works."""
    from functools import partial

    from shipyard.deploy.service._guard import Guard
    from shipyard.deploy.service._openapi import describe

    document = partial(
        describe,
        api_paths=options["api_paths"],
        auth=settings.auth.enabled,
        max_request_bytes=settings.max_request_bytes,
    )
    return Guard(app, api_key=api_key(settings), document=document, **options)


def _start_rollout(service: Any, spec: dict[str, Any], schema: ServiceSchema, settings: ServiceConf, fix: str) -> Any:
    """Load the candidate beside production (once per worker) and report what both hold."""
    from shipyard.deploy.service._rollout import Rollout, open_logs

    plan = spec["rollout"]
    before = _rss_mb()
    candidate = _load_bundle(Path(service.candidate_model.path), settings, fix)
    cand_version = str(plan["candidate"]["model_version"])
    log.info(
        "rollout %s: production %s (%.3f MB of weights), candidate %s (%.3f MB of weights); "
        "the candidate added %.1f MB to this worker (now %.1f MB resident)",
        plan["mode"],
        service.version,
        _weights_mb(service.bundle),
        cand_version,
        _weights_mb(candidate),
        _rss_mb() - before,
        _rss_mb(),
    )
    kinds = {s["name"]: s["dtype"] for s in service.bundle.meta.get("feature_schema", [])}
    features = [(name, "category" if kinds.get(name) == "category" else "number") for name in schema.features]
    logs = open_logs(spec, Path(spec["folder"]), features)

    def results(bundle: Any, scores: Any, version: str) -> list[Any]:
        return _results(bundle, scores, bundle.labels(scores), version, schema.prediction)

    return Rollout(plan, service.bundle, candidate, (service.version, cand_version), results, logs)


def _weights_mb(bundle: Any) -> float:
    return sum(p.numel() * p.element_size() for p in bundle.net.parameters()) / 2**20


def _rss_mb() -> float:
    """This process's resident memory now (Linux /proc; elsewhere the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_bundle(bundle_dir: Path, settings: ServiceConf, fix: str) -> Any:
    import torch
    from shipyard.train.bundle import ModelBundle

    started = time.perf_counter()
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    bundle = ModelBundle.load(bundle_dir, fix=fix)
    # One forward pass before reporting ready, so the first real request pays no lazy set-up.
    bundle.scores_from_input(torch.zeros(1, bundle.preprocessor.n_features).numpy())
    log.info(
        "model loaded and warmed up in %.3f s (lightning imported: %s)",
        time.perf_counter() - started,
        "lightning" in sys.modules,
    )
    return bundle


class _RejectionFilter(logging.Filter):
    """BentoML logs every rejected request as an ERROR with a traceback and the offending input;
    a bad request is the client's mistake, not the server's: one INFO line, without the data."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if type(exc).__name__ == "ValidationError" and hasattr(exc, "error_count"):
            record.msg, record.args = (
                "rejected a bad request to %s: %d validation error(s)",
                (
                    record.args[0] if isinstance(record.args, tuple) and record.args else "?",
                    exc.error_count(),
                ),
            )
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _quiet_rejections() -> None:
    # Installed when the worker creates the service, after BentoML has configured its logging.
    target = logging.getLogger("bentoml._internal.server.http_app")
    if not any(isinstance(f, _RejectionFilter) for f in target.filters):
        target.addFilter(_RejectionFilter())


def _inline(bundle: Any, settings: ServiceConf) -> bool:
    """Whether to run the model on the event loop (no thread hand-off per batch) or in a thread
    (the event loop keeps parsing requests while torch computes, without the GIL)."""
    if settings.inference != "auto":
        return settings.inference == "inline"
    import numpy as np

    x = np.zeros((settings.batching.max_batch_size, bundle.preprocessor.n_features), dtype=np.float32)
    bundle.scores_from_input(x)
    started = time.perf_counter()
    bundle.scores_from_input(x)
    seconds = time.perf_counter() - started
    # A full batch under a millisecond: handing it to a thread costs more than it frees.
    inline = seconds < 0.001
    log.info(
        "a batch of %d takes %.2f ms: inference runs %s",
        settings.batching.max_batch_size,
        seconds * 1000,
        "inline on the event loop" if inline else "in a worker thread",
    )
    return inline


def _results(bundle: Any, scores: Any, labels: list[Any], version: str, prediction: Any) -> list[Any]:
    task = bundle.task
    make = prediction.model_construct  # the values are ours, already typed: skip re-validation
    if task == "regression":
        return [make(prediction=float(v), model_version=version) for v in labels]
    classes = [str(c) for c in bundle.preprocessor.classes]
    if task == "binary":
        return [
            make(
                prediction=label,
                score=float(p),
                probabilities={classes[0]: 1.0 - float(p), classes[1]: float(p)},
                model_version=version,
            )
            for label, p in zip(labels, scores, strict=True)
        ]
    return [
        make(prediction=label, probabilities=dict(zip(classes, map(float, row), strict=True)), model_version=version)
        for label, row in zip(labels, scores, strict=True)
    ]
