from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from shipyard.core.errors import ConfigError, DataError
from shipyard.core.features import Preprocessor
from shipyard.train.bundle import ModelBundle, build_network
from shipyard.train.data import EpochShuffle
from shipyard.train.metrics import compute_metrics

MLP = {"_target_": "shipyard.train.models.MLP", "hidden": [8], "dropout": 0.0, "activation": "relu"}
CNN = {"_target_": "shipyard.train.models.CNN", "channels": [4], "kernel_size": 3, "hidden": 8, "dropout": 0.0}


def _pre(task: str = "multiclass", n: int = 4, shape: list[int] | None = None) -> Preprocessor:
    return Preprocessor(
        task=task,
        features=[f"f{i}" for i in range(n)],
        target="y",
        mean=[0.0] * n,
        scale=[1.0] * n,
        fill=[0.0] * n,
        classes=[0, 1, 2] if task == "multiclass" else [0, 1],
        shape=shape,
    )


@pytest.mark.parametrize(("model", "shape"), [(MLP, None), (CNN, [1, 2, 2])])
def test_networks_map_rows_to_outputs(model: dict[str, object], shape: list[int] | None) -> None:
    net = build_network(model, _pre(shape=shape))
    assert net(torch.zeros(5, 4)).shape == (5, 3)


def test_cnn_needs_a_shape() -> None:
    with pytest.raises(ConfigError, match=r"data\.shape"):
        build_network(CNN, _pre(shape=None))


def test_unregistered_target_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a registered component"):
        build_network({"_target_": "torch.nn.Linear"}, _pre())


def test_bundle_round_trip_without_pickle(tmp_path: Path) -> None:
    pre = _pre()
    torch.manual_seed(0)
    bundle = ModelBundle(meta={"model": MLP, "task": "multiclass"}, preprocessor=pre, net=build_network(MLP, pre))
    bundle.save(tmp_path / "b")
    files = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert files == ["bundle.json", "weights.safetensors"]
    header_len = int.from_bytes((tmp_path / "b" / "weights.safetensors").read_bytes()[:8], "little")
    assert header_len < 10_000, "safetensors starts with its JSON header length, pickle does not"
    loaded = ModelBundle.load(tmp_path / "b")
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(6, 4)), columns=pre.features)
    np.testing.assert_array_equal(loaded.predict_scores(frame), bundle.predict_scores(frame))
    assert json.loads((tmp_path / "b" / "bundle.json").read_text())["weights_sha256"] == loaded.weights_sha256
    np.testing.assert_allclose(loaded.predict_scores(frame).sum(axis=1), 1.0, rtol=1e-5)


def test_loading_something_else_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a model bundle"):
        ModelBundle.load(tmp_path)


@pytest.mark.parametrize("damage", ["same-size", "truncated", "no-hash"])
def test_loading_checks_the_weights_against_their_hash(tmp_path: Path, damage: str) -> None:
    """A bundle whose weights are not the ones bundle.json records is refused by every load,
    naming the file and the caller's fix; verify_bundle, the same check, needs no torch."""
    from shipyard.train.bundle import verify_bundle

    pre = _pre()
    bundle = ModelBundle(
        meta={"model": MLP, "task": "multiclass", "project": {"team": "t", "name": "p"}},
        preprocessor=pre,
        net=build_network(MLP, pre),
    )
    bundle.save(tmp_path / "b")
    weights, meta_path = tmp_path / "b" / "weights.safetensors", tmp_path / "b" / "bundle.json"
    assert verify_bundle(tmp_path / "b")["weights_sha256"] == bundle.weights_sha256
    data = weights.read_bytes()
    if damage == "same-size":
        weights.write_bytes(data[:-16] + bytes(16))
    elif damage == "truncated":
        weights.write_bytes(data[: len(data) // 2])
    else:
        meta_path.write_text(json.dumps({k: v for k, v in bundle.meta.items() if k != "weights_sha256"}))
    for load in (lambda **kw: ModelBundle.load(tmp_path / "b", **kw), lambda **kw: verify_bundle(tmp_path / "b", **kw)):
        with pytest.raises(DataError, match="are damaged or were replaced") as info:
            load()
        assert info.value.where == str(weights) and info.value.exit_code == 2
        assert info.value.fix == "retrain it: make train PROJECT=t/p"
        with pytest.raises(DataError) as info:
            load(fix="rebuild it")
        assert info.value.fix == "rebuild it"


def test_epoch_shuffle_depends_on_seed_and_epoch_only() -> None:
    a, b = EpochShuffle(50, seed=3), EpochShuffle(50, seed=3)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    b.set_epoch(1)
    assert first != second and list(b) == second and sorted(first) == list(range(50))


def test_metrics_per_task() -> None:
    y = np.array([0, 1, 1, 0])
    binary = compute_metrics("binary", y, np.array([0.1, 0.9, 0.4, 0.2]), 2)
    assert binary["accuracy"] == pytest.approx(0.75) and binary["recall"] == pytest.approx(0.5)
    assert binary["roc_auc"] == pytest.approx(1.0)
    multi = compute_metrics("multiclass", np.array([0, 1, 2]), np.eye(3), 3)
    assert multi["accuracy"] == pytest.approx(1.0) and multi["f1"] == pytest.approx(1.0)
    reg = compute_metrics("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]), 0)
    assert reg["mae"] == pytest.approx(2 / 3) and reg["rmse"] == pytest.approx((4 / 3) ** 0.5)


def test_metrics_tell_the_truth_on_imbalanced_data() -> None:
    """Against scikit-learn: balanced accuracy and macro F1 beside accuracy; a multiclass ROC-AUC
    over the classes present in the split only, and how many that was."""
    import warnings

    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    rng = np.random.default_rng(1)
    y = np.array([0] * 90 + [1] * 10)
    p = np.clip(np.where(y == 1, 0.45, 0.2) + rng.normal(0, 0.15, 100), 0, 1)
    binary = compute_metrics("binary", y, p, 2)
    labels = (p >= 0.5).astype(int)
    assert binary["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, labels))
    assert binary["f1_macro"] == pytest.approx(f1_score(y, labels, average="macro"))
    assert binary["accuracy"] > binary["balanced_accuracy"]
    # Four classes trained, class 3 absent from this split: the AUC is over classes 0..2.
    y3 = rng.integers(0, 3, 60)
    scores = rng.dirichlet(np.ones(4), 60)
    scores[np.arange(60), y3] += 0.5
    scores /= scores.sum(axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torchmetrics' absent-class warnings are not shown
        multi = compute_metrics("multiclass", y3, scores, 4)
    present = roc_auc_score(y3, scores[:, :3] / scores[:, :3].sum(axis=1, keepdims=True), multi_class="ovr")
    aucs = [roc_auc_score(y3 == c, scores[:, c]) for c in range(3)]
    assert multi["roc_auc"] == pytest.approx(np.mean(aucs)) and multi["roc_auc_classes"] == 3
    assert abs(multi["roc_auc"] - present) < 0.1
    assert multi["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y3, scores.argmax(axis=1)))
