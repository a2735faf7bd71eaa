"""The model bundle: everything needed to predict, loadable without pickle.

::

    bundle/
      weights.safetensors   tensors only
      bundle.json           model target and params, preprocessing state, feature schema,
                            classes, task, weights hash, lineage of the training run

Loading imports torch but never Lightning (docs/architecture.md: Lightning stays out of inference paths).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from shipyard.core.atomic import atomic_dir
from shipyard.core.errors import DataError
from shipyard.core.features import Preprocessor
from shipyard.core.hashing import file_sha256
from shipyard.core.registry import import_target

__all__ = ["BUNDLE_FORMAT", "ModelBundle", "build_network"]

BUNDLE_FORMAT = "shipyard-bundle/1"
WEIGHTS = "weights.safetensors"
META = "bundle.json"


def build_network(model: dict[str, Any], pre: Preprocessor) -> torch.nn.Module:
    """Instantiate the registered network a model config names, sized for ``pre``."""
    params = {k: v for k, v in model.items() if k != "_target_"}
    cls = import_target(model["_target_"], key="model._target_")
    return cls(n_features=pre.n_features, n_outputs=pre.n_outputs, shape=pre.shape, **params)  # type: ignore[no-any-return]


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
    def load(cls, path: Path) -> ModelBundle:
        from safetensors.torch import load_file

        meta_path, weights_path = path / META, path / WEIGHTS
        if not meta_path.is_file() or not weights_path.is_file():
            raise DataError(
                f"{path} is not a model bundle (needs {META} and {WEIGHTS})",
                where=str(path),
                fix="train the project first with `make train`",
            )
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != BUNDLE_FORMAT:
            raise DataError(
                f"bundle format {meta.get('format')!r} is not {BUNDLE_FORMAT!r}",
                where=str(path),
                fix="retrain the model with this version of Shipyard",
            )
        pre = Preprocessor.from_state(meta["preprocessor"])
        net = build_network(meta["model"], pre)
        net.load_state_dict(load_file(str(weights_path)))
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
