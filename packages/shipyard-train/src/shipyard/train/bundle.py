"""The model bundle: everything needed to predict, loadable without pickle.

::

    bundle/
      weights.safetensors   tensors only
      bundle.json           model target and params, preprocessing state, feature schema,
                            classes, task, weights hash, lineage of the training run

Every load checks the weights against the SHA-256 that ``bundle.json`` records (the file is read
and hashed once), so a damaged or swapped file is refused by name instead of served.
:func:`verify_bundle` is that check without torch, for callers that only need to know the
bundle is whole before handing it on (a server's main process, a job builder).

Loading imports torch but never Lightning (docs/architecture.md: Lightning stays out of
inference paths); importing this module imports neither.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from shipyard.core.atomic import atomic_dir
from shipyard.core.errors import DataError
from shipyard.core.features import Preprocessor
from shipyard.core.hashing import file_sha256
from shipyard.core.registry import import_target

if TYPE_CHECKING:
    import torch

__all__ = ["BUNDLE_FORMAT", "META", "WEIGHTS", "ModelBundle", "build_network", "verify_bundle"]

BUNDLE_FORMAT = "shipyard-bundle/1"
WEIGHTS = "weights.safetensors"
META = "bundle.json"


def build_network(model: dict[str, Any], pre: Preprocessor) -> torch.nn.Module:
    """Instantiate the registered network a model config names, sized for ``pre``."""
    params = {k: v for k, v in model.items() if k != "_target_"}
    cls = import_target(model["_target_"], key="model._target_")
    return cls(n_features=pre.n_features, n_outputs=pre.n_outputs, shape=pre.shape, **params)  # type: ignore[no-any-return]


def _read_meta(path: Path) -> dict[str, Any]:
    meta_path, weights_path = path / META, path / WEIGHTS
    if not meta_path.is_file() or not weights_path.is_file():
        raise DataError(
            f"{path} is not a model bundle (needs {META} and {WEIGHTS})",
            where=str(path),
            fix="train the project first with `make train`",
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{meta_path} is not valid JSON: {exc}", where=str(meta_path), fix=_retrain(None)) from exc
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise DataError(
            f"bundle format {found!r} is not {BUNDLE_FORMAT!r}",
            where=str(path),
            fix="retrain the model with this version of Shipyard",
        )
    return meta


def _retrain(meta: dict[str, Any] | None) -> str:
    project = (meta or {}).get("project") or {}
    if isinstance(project, dict) and project.get("team") and project.get("name"):
        return f"retrain it: make train PROJECT={project['team']}/{project['name']}"
    return "retrain the project with `make train`"


def _check_weights(path: Path, meta: dict[str, Any], found: str, fix: str | None) -> None:
    """Refuse weights whose SHA-256 is not the one ``bundle.json`` records."""
    recorded = meta.get("weights_sha256")
    if recorded == found:
        return
    weights = path / WEIGHTS
    problem = (
        f"{META} records no weights hash"
        if not recorded
        else f"SHA-256 {found[:16]}… is not the {recorded[:16]}… that {META} records"
    )
    raise DataError(
        f"the model weights {weights} are damaged or were replaced ({problem}); refusing to use them",
        where=str(weights),
        fix=fix or _retrain(meta),
    )


def verify_bundle(path: Path, *, fix: str | None = None) -> dict[str, Any]:
    """``bundle.json`` of the bundle at ``path``, after checking its weights against the hash it
    records (the file is streamed through SHA-256 once; no torch). ``fix`` is the advice a
    mismatch carries (default: retrain the project)."""
    path = Path(path)
    meta = _read_meta(path)
    _check_weights(path, meta, file_sha256(path / WEIGHTS), fix)
    return meta


@dataclass
class ModelBundle:
    meta: dict[str, Any]
    preprocessor: Preprocessor
    net: torch.nn.Module

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()}
        with atomic_dir(path) as tmp:
            save_file(tensors, str(tmp / WEIGHTS), metadata={"format": BUNDLE_FORMAT})
            meta = dict(self.meta, format=BUNDLE_FORMAT, preprocessor=self.preprocessor.state())
            meta["weights_sha256"] = file_sha256(tmp / WEIGHTS)
            (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        self.meta = meta

    @classmethod
    def load(cls, path: Path, *, fix: str | None = None) -> ModelBundle:
        """Load the bundle at ``path``. The weights are read once, and that one read is both
        hashed (checked against ``bundle.json``) and parsed; ``fix`` is the advice a damaged
        bundle is refused with (default: retrain the project)."""
        from safetensors import SafetensorError
        from safetensors.torch import load as load_tensors

        path = Path(path)
        meta = _read_meta(path)
        data = (path / WEIGHTS).read_bytes()
        _check_weights(path, meta, hashlib.sha256(data).hexdigest(), fix)
        pre = Preprocessor.from_state(meta["preprocessor"])
        net = build_network(meta["model"], pre)
        try:
            net.load_state_dict(load_tensors(data))
        except (SafetensorError, RuntimeError) as exc:
            # The hash matched, so the file is the one written at training: bundle.json's model
            # section was edited since.
            raise DataError(
                f"the weights in {path / WEIGHTS} do not fit the network {META} describes: {exc}",
                where=str(path / META),
                fix=fix or _retrain(meta),
            ) from exc
        net.eval()
        return cls(meta=meta, preprocessor=pre, net=net)

    # -- prediction --------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return self.preprocessor.task

    @property
    def weights_sha256(self) -> str:
        return str(self.meta.get("weights_sha256", ""))

    def scores_from_input(self, x: np.ndarray) -> np.ndarray:
        """Model scores for already-preprocessed input: P(positive) for binary, class
        probabilities for multiclass, values in target units for regression."""
        import torch

        with torch.inference_mode():
            out = self.net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
        if self.task == "binary":
            return torch.sigmoid(out[:, 0]).numpy()
        if self.task == "multiclass":
            return torch.softmax(out, dim=1).numpy()
        return self.preprocessor.decode_regression(out[:, 0].double().numpy())

    def predict_scores(self, frame: Any) -> np.ndarray:
        return self.scores_from_input(self.preprocessor.transform(frame))

    def labels(self, scores: np.ndarray) -> list[Any]:
        """Predicted labels (original class values) from :meth:`predict_scores`."""
        classes = self.preprocessor.classes
        if self.task == "binary":
            return [classes[int(s >= 0.5)] for s in scores]
        if self.task == "multiclass":
            return [classes[int(i)] for i in scores.argmax(axis=1)]
        return [float(v) for v in scores]
