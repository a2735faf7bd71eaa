"""The service's model in BentoML's model store, where BentoML's own tooling sees it.

The model bundle's two files become a BentoML model tagged like the Bento
(``examples-churn:v3.0.0``), labelled with the project and model version, the weights hash in its
metadata: ``bentoml models list`` shows it, ``bentoml build`` packs it into the Bento (which then
carries the model, not a copy hidden in its source), and the service loads it from the store.

The service folder's ``bundle/`` (DVC-tracked) is where the model comes from: a build stores it
afresh (:func:`store_model`), and :func:`sync_model` puts it into the local store when the store
lacks it or holds other weights, so a folder checked out on another machine serves as it is. A
Bento has no ``bundle/`` and uses the model it names.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from shipyard.core.errors import DataError
from shipyard.deploy._bundles import rebuild_fix
from shipyard.train.bundle import META, WEIGHTS

__all__ = ["CANDIDATE_DIR", "MODEL_FILES", "candidate_spec", "store_model", "stored_model", "sync_model"]

CANDIDATE_DIR = "candidate"

MODEL_FILES = (WEIGHTS, META)


def candidate_spec(spec: dict[str, Any]) -> dict[str, Any] | None:
    """A rollout's candidate model as a spec of its own (tag, weights hash, version), or None."""
    rollout = spec.get("rollout")
    if not rollout:
        return None
    return {**spec, **{k: rollout["candidate"][k] for k in ("model_tag", "weights_sha256", "model_version")}}


def stored_model(tag: str) -> Any:
    """The model ``tag`` in the current BentoML model store (a Bento's own when serving one), or None."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return bentoml.models.get(tag)
    except NotFound:
        return None


def sync_model(out_dir: Path, spec: dict[str, Any], *, verify: bool, folder_name: str = "bundle") -> Any:
    """The store's model of the service built in ``out_dir``, put there from ``out_dir/bundle``
    when the store lacks it or holds other weights. ``verify`` checks the folder's bundle against
    its weights hash even when the store already holds the model (``make serve`` does).
    ``folder_name``: ``candidate`` for a rollout's candidate (with its own ``spec``)."""
    tag, sha, project = str(spec["model_tag"]), str(spec["weights_sha256"]), str(spec["project"])
    folder = out_dir / folder_name
    fix = rebuild_fix(project, "service")
    if verify and folder.is_dir():
        _verified(folder, sha, fix)
    stored = stored_model(tag)
    if stored is not None and stored.info.metadata.get("weights_sha256") == sha:
        return stored
    if not folder.is_dir():
        raise DataError(
            f"the BentoML model {tag} is not in the model store, and {out_dir} has no {folder_name}/ to make it from",
            where=str(out_dir),
            fix=fix,
        )
    if not verify:
        _verified(folder, sha, fix)
    return store_model(folder, spec)


def _verified(folder: Path, sha: str, fix: str) -> None:
    from shipyard.train.bundle import verify_bundle

    meta = verify_bundle(folder, fix=fix)
    if meta.get("weights_sha256") != sha:
        raise DataError(
            f"{folder} holds another model than the one {folder.parent / 'service.json'} names",
            where=str(folder),
            fix=fix,
        )


def store_model(folder: Path, spec: dict[str, Any]) -> Any:
    """Store the (checked) bundle in ``folder`` as the service's BentoML model, replacing a model
    of that tag: a rebuild of the same version, or a copy in the store that was damaged."""
    import bentoml

    tag = str(spec["model_tag"])
    if stored_model(tag) is not None:
        bentoml.models.delete(tag)
    labels = {"project": str(spec["project"]), "model_version": str(spec["model_version"]), "framework": "shipyard"}
    metadata = {"weights_sha256": str(spec["weights_sha256"]), "bundle_files": list(MODEL_FILES)}
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as model:
        for name in MODEL_FILES:
            shutil.copy2(folder / name, model.path_of(name))
    return bentoml.models.get(tag)
