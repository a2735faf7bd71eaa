"""``build_service``: a model bundle and the ``deploy.service`` config in, a service folder
(and a Bento, carrying the bundle as a BentoML model, in the local BentoML store) out."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.core.atomic import atomic_dir, write_json
from shipyard.core.compose import dump
from shipyard.core.errors import ConfigError, DataError, ShipyardError
from shipyard.core.schema import ServiceConf
from shipyard.deploy._paths import repo_relative, repo_root
from shipyard.deploy.service import _templates as tpl
from shipyard.deploy.service._app import BUNDLE_DIR, PREDICT_ROUTE, SERVICE_JSON, settings_from
from shipyard.deploy.service._schema import build_schema, example_request
from shipyard.deploy.service._store import CANDIDATE_DIR, MODEL_FILES, candidate_spec, store_model

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BUILD_JSON", "ENDPOINTS", "REQUEST_JSON", "build_service"]

BUILD_JSON = "build.json"
REQUEST_JSON = "request.json"
ENDPOINTS = {
    "predict": f"POST {PREDICT_ROUTE}",
    "livez": "GET /livez",
    "readyz": "GET /readyz",
    "metrics": "GET /metrics",
    "openapi": "GET /docs.json",
    "docs": "GET /",
}
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+:@/-]{0,127}$")  # e.g. tabular/breast_cancer@v3.0.0


def _tag_part(text: str) -> str:
    """``text`` as a valid Bento name or version: lower case, [a-z0-9._-], no edge punctuation."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return cleaned or "model"


def _read_meta(bundle_dir: Path) -> dict[str, Any]:
    # ModelBundle.load checks the bundle fully (format, weights against the network) below;
    # this read only needs to fail clearly when the folder is not a bundle at all.
    path = bundle_dir / "bundle.json"
    if not path.is_file() or not (bundle_dir / "weights.safetensors").is_file():
        raise DataError(
            f"{bundle_dir} is not a model bundle (needs bundle.json and weights.safetensors)",
            where=str(bundle_dir),
            fix="train the project first: make train PROJECT=<team>/<name>",
        )
    return dict(json.loads(path.read_text()))


def _check_bundle(bundle_dir: Path) -> None:
    from shipyard.train.bundle import ModelBundle

    ModelBundle.load(bundle_dir)


def _version(version: str | None, meta: Mapping[str, Any]) -> str:
    if version is None or version == "":
        sha = str(meta.get("weights_sha256", ""))
        if not sha:
            raise DataError("the bundle records no weights_sha256 to name its version", fix="retrain the model")
        return sha[:12]
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ConfigError(
            "the model version must be 1 to 128 letters, digits and . _ + : @ / -, starting with a letter or digit",
            key="version",
            value=version,
            fix="pass the registry's version string (e.g. v3) or leave it out to use the weights hash",
        )
    return version


def _rollout_plan(
    settings: ServiceConf,
    meta: Mapping[str, Any],
    name: str,
    candidate: tuple[Path, str] | None,
    key_field: str | None,
) -> dict[str, Any] | None:
    """What the service needs of a rollout: the candidate model, how to route, where to log."""
    from shipyard.deploy.service._rollout import STICKY_FIELD

    rollout = settings.rollout
    if rollout.mode is None and candidate is None:
        return None
    if rollout.mode is None or candidate is None:
        raise ConfigError(
            "a rollout needs both deploy.service.rollout.mode and a candidate model",
            key="deploy.service.rollout",
            fix="use `shipyard rollout PROJECT VERSION --mode shadow|canary`, which passes both",
        )
    cand_dir, cand_version = Path(candidate[0]), _version(candidate[1], {})
    cand_meta = _read_meta(cand_dir)
    _check_bundle(cand_dir)  # the candidate's weights are checked against their hash like production's
    task, cand_task = meta["preprocessor"]["task"], cand_meta["preprocessor"]["task"]
    if cand_task != task:
        raise DataError(
            f"the candidate {cand_version} is a {cand_task} model and production a {task} model",
            where=str(cand_dir),
            fix="roll out a version of the same project",
        )
    header = rollout.sticky_header
    field = STICKY_FIELD if header else (rollout.sticky_key or key_field)
    if rollout.mode == "canary" and not field:
        raise ConfigError(
            "a canary needs a sticky key: the row key field or a request header",
            key="deploy.service.rollout.sticky_key",
            fix="set deploy.service.rollout.sticky_key (or data.key), or sticky_header: X-Client-Id",
        )
    from datetime import UTC, datetime

    return {
        "mode": str(rollout.mode),
        # compare reads the traffic logged since: an earlier rollout of the same pair is not this one
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "share": rollout.share,
        "header": header,
        "key_field": field,
        "shadow_queue": rollout.shadow_queue,
        "candidate": {
            "model_version": cand_version,
            "model_tag": f"{name}:{_tag_part(cand_version)}",
            "weights_sha256": cand_meta.get("weights_sha256"),
        },
    }


def _spec(
    project: str, version: str, name: str, tag: str, settings: ServiceConf, meta: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "project": project,
        "model_version": version,
        "service_name": name,
        "model_tag": tag,  # the BentoML model: the same name and version as the Bento
        "task": meta["preprocessor"]["task"],
        "weights_sha256": meta.get("weights_sha256"),
        "settings": dump(settings),
        "endpoints": ENDPOINTS,
    }


def _bentofile(project: str, version: str, name: str, wheels: list[Path], indexes: list[str]) -> str:
    index_lines = "".join(["  extra_index_url:\n", *[f"    - {u}\n" for u in indexes]]) if indexes else ""
    return tpl.BENTOFILE.substitute(
        project=project,
        project_json=json.dumps(project),
        version_json=json.dumps(version),
        name=name,
        index_lines=index_lines,
        wheel_lines="\n".join(f"    - wheels/{w.name}" for w in wheels),
        python=f"{sys.version_info.major}.{sys.version_info.minor}",
    )


def _k8s_name(name: str) -> str:
    """A Bento name as a Kubernetes object name (DNS-1123: no '_' or '.')."""
    return re.sub(r"[^a-z0-9-]+", "-", name).strip("-")[:53] or "model"


def _secret(name: str, settings: ServiceConf) -> str:
    return settings.kubernetes.secret or f"{_k8s_name(name)}-api-key"


def _kubernetes(project: str, version: str, name: str, tag: str, settings: ServiceConf) -> str:
    secret = _secret(name, settings)
    env = tpl.K8S_AUTH_ENV.substitute(env_var=settings.auth.env_var, secret=secret) if settings.auth.enabled else ""
    note = (
        f"# API-key auth is on: create the Secret first (README.md): kubectl create secret generic {secret} "
        f"--from-literal=api-key=...\n"
        if settings.auth.enabled
        else ""
    )
    return tpl.K8S.substitute(
        project=project,
        version=version,
        name=_k8s_name(name),
        tag=tag,
        label=project.replace("/", "."),
        version_label=_tag_part(version)[:63].strip("-._") or "model",
        replicas=settings.kubernetes.replicas,
        env_block=env,
        secret_note=note,
        cpu=settings.kubernetes.cpu,
        memory=settings.kubernetes.memory,
    )


def _readme(project: str, version: str, name: str, tag: str, settings: ServiceConf) -> str:
    secret = _secret(name, settings)
    auth = (
        tpl.README_AUTH.substitute(env_var=settings.auth.env_var, min_length=settings.auth.min_length, secret=secret)
        if settings.auth.enabled
        else "API-key auth is off (`deploy.service.auth.enabled: false`).\n"
    )
    return tpl.README.substitute(
        project=project,
        version=version,
        name=name,
        tag=tag,
        auth=auth,
        max_rows=settings.max_rows_per_request,
        max_bytes=settings.max_request_bytes,
        max_batch=settings.batching.max_batch_size,
        max_latency=settings.batching.max_latency_ms,
        docker_env=f"-e {settings.auth.env_var} " if settings.auth.enabled else "",
        curl_auth=f' -H "Authorization: Bearer ${settings.auth.env_var}"' if settings.auth.enabled else "",
    )


def _schemathesis(settings: ServiceConf) -> str:
    # ${NAME} is schemathesis's own placeholder for an environment variable: the key stays out of the file.
    auth = settings.auth
    headers = f'headers = {{ Authorization = "Bearer ${{{auth.env_var}}}" }}\n' if auth.enabled else ""
    return tpl.SCHEMATHESIS.substitute(port=settings.port, max_bytes=settings.max_request_bytes, headers=headers)


def _write_folder(
    tmp: Path,
    bundle_dir: Path,
    spec: dict[str, Any],
    settings: ServiceConf,
    request: dict[str, Any],
    candidate_dir: Path | None = None,
) -> None:
    from shipyard.deploy.service._environment import build_wheels, pinned_requirements, torch_index

    project, version, name, tag = spec["project"], spec["model_version"], spec["service_name"], spec["model_tag"]
    (tmp / BUNDLE_DIR).mkdir()
    for file in MODEL_FILES:
        shutil.copy2(bundle_dir / file, tmp / BUNDLE_DIR / file)
    if candidate_dir is not None:
        (tmp / CANDIDATE_DIR).mkdir()
        for file in MODEL_FILES:
            shutil.copy2(candidate_dir / file, tmp / CANDIDATE_DIR / file)
    write_json(tmp / SERVICE_JSON, spec)
    # Rows keep the model's feature order (write_json would sort the keys).
    (tmp / REQUEST_JSON).write_text(json.dumps(request, indent=2) + "\n")
    (tmp / "schemathesis.toml").write_text(_schemathesis(settings))
    (tmp / "service.py").write_text(tpl.SERVICE_PY.substitute(project=project, version=version))
    wheels = build_wheels(tmp / "wheels")
    (tmp / "requirements.txt").write_text("\n".join(pinned_requirements()) + "\n")
    (tmp / "bentofile.yaml").write_text(_bentofile(project, version, name, wheels, torch_index()))
    (tmp / "kubernetes.yaml").write_text(_kubernetes(project, version, name, tag, settings))
    (tmp / "README.md").write_text(_readme(project, version, name, tag, settings))


def _build_bento(folder: Path, tag: str) -> str:
    """Build the Bento of ``folder`` into the local store (``$BENTOML_HOME``), replacing one of
    the same tag.

    Runs ``bentoml build`` in a child process from a scratch copy of the folder: BentoML resolves
    the bentofile's paths against the working directory and refuses any path with a hidden part
    (the atomic write's ``.tmp-*`` folder has one), and a child keeps the generated ``service``
    module out of this process's module cache.
    """
    import os
    import subprocess
    import tempfile

    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True"}
    bentoml = [sys.executable, "-m", "bentoml"]
    name, _, version = tag.partition(":")
    with tempfile.TemporaryDirectory(prefix="shipyard-bento-") as scratch:
        ctx = Path(scratch) / "service"
        shutil.copytree(folder, ctx)
        # A rebuild of the same model version replaces the old Bento rather than failing.
        subprocess.run([*bentoml, "delete", "-y", tag], cwd=ctx, env=env, capture_output=True, timeout=120, check=False)
        cmd = [*bentoml, "build", ".", "-f", "bentofile.yaml", "--name", name, "--version", version, "-o", "tag"]
        done = subprocess.run(cmd, cwd=ctx, env=env, capture_output=True, text=True, timeout=600, check=False)
    found = re.search(r"__tag__:(\S+)", done.stdout)
    if done.returncode != 0 or not found:
        raise ShipyardError(
            f"`bentoml build` failed for {tag}",
            where=str(folder / "bentofile.yaml"),
            fix="see BentoML's output:\n" + (done.stderr or done.stdout)[-3000:],
        )
    return found.group(1)


def _logged_key(key_field: str | None, meta: Mapping[str, Any], prediction_log: Any) -> str | None:
    """The row key a request may carry for the prediction log: none without a log, and none
    when the name is already a request field (a feature, or a shared feature's entity key)."""
    from shipyard.features import lookup_columns

    taken = {*meta["preprocessor"]["features"], *lookup_columns(meta.get("features"))}
    return key_field if prediction_log and key_field and key_field not in taken else None


def build_service(
    bundle_dir: Path,
    out_dir: Path,
    conf: ServiceConf | Mapping[str, Any] | None,
    *,
    project: str,
    version: str | None = None,
    example: pd.DataFrame | None = None,
    feature_store: Path | None = None,
    candidate: tuple[Path, str] | None = None,
    key_field: str | None = None,
    prediction_log: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write everything the service needs into ``out_dir`` (atomically) and build its Bento.

    A rollout (``deploy.service.rollout.mode``) also takes ``candidate`` (its bundle folder and
    version) and ``key_field`` (the row field a canary's sticky key arrives in: the project's row
    key). ``prediction_log``: where and how the service records what it scores (see
    :func:`shipyard.deploy._predlog.log_spec`); None records nothing.

    ``conf`` is the ``deploy.service`` section; ``version`` the model version responses carry
    (default: the first 12 hex digits of the bundle's weights hash); ``example`` rows (the test
    split) give ``request.json`` a real row. Returns a small report, paths relative to the
    repository: folder, Bento tag, endpoints. ``feature_store``: a folder holding the online store
    of a model with shared features (``features.json``, ``features.db``), copied into the service.
    """
    from shipyard.features import SPEC_FILE, STORE_FILE, open_lookup

    settings = settings_from(conf)
    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    meta = _read_meta(bundle_dir)
    lookup = open_lookup(feature_store, meta.get("features")) if feature_store else None
    _check_bundle(bundle_dir)
    version = _version(version, meta)
    name = settings.name or _tag_part(project.replace("/", "-"))
    tag = f"{name}:{_tag_part(version)}"
    spec = _spec(project, version, name, tag, settings, meta)
    plan = _rollout_plan(settings, meta, name, candidate, key_field)
    if plan is not None:
        spec["rollout"] = plan
    spec["prediction_log"] = dict(prediction_log) if prediction_log else None
    # The row key: a canary's sticky key, and what the prediction log records so that labels
    # arriving later join by it (`shipyard monitor --labels`, `shipyard compare --labels`).
    key = plan["key_field"] if plan is not None else _logged_key(key_field, meta, prediction_log)
    spec["key_field"] = key
    schema = build_schema(meta, settings, lookup, key)  # fails here, not at serve time, if it cannot be generated
    request = example_request(meta, schema, example)
    folder = repo_relative(out_dir, repo_root(out_dir.parent))
    with atomic_dir(out_dir) as tmp:
        _write_folder(tmp, bundle_dir, spec, settings, request, candidate[0] if candidate else None)
        for name in (SPEC_FILE, STORE_FILE) if lookup is not None else ():
            if (feature_store / name).is_file():  # type: ignore[operator]
                shutil.copy2(feature_store / name, tmp / name)  # type: ignore[operator]
        # The model goes into BentoML's model store afresh (`make deploy` is the fix for a damaged
        # copy there), then the Bento is built from the scratch folder, before it replaces
        # out_dir: a failed build leaves the previous service folder as it was.
        store_model(tmp / BUNDLE_DIR, spec)
        if plan is not None:
            store_model(tmp / CANDIDATE_DIR, candidate_spec(spec) or {})
        bento_tag = _build_bento(tmp, tag) if settings.bento.build else None
        report = {
            "project": project,
            "model_version": version,
            "service": name,
            "bento_tag": bento_tag,
            "model_tag": tag,
            "out_dir": folder,
            "files": [*sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file()), BUILD_JSON],
            "endpoints": ENDPOINTS,
            "serve": f"python -m shipyard.deploy.service serve {folder} --port {settings.port}",
            "containerize": f"bentoml containerize {bento_tag}" if bento_tag else None,
            "rollout": {k: plan[k] for k in ("mode", "share")} | {"candidate": plan["candidate"]["model_version"]}
            if plan is not None
            else None,
        }
        write_json(tmp / BUILD_JSON, report)
    return report
