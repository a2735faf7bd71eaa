from __future__ import annotations

import math

import numpy as np
import pytest
from shipyard.core.errors import DataError
from shipyard.core.features import Preprocessor


def _pre(task: str = "binary") -> Preprocessor:
    return Preprocessor(
        task=task,
        features=["a", "b"],
        target="y",
        mean=[1.0, 10.0],
        scale=[2.0, 5.0],
        fill=[3.0, 20.0],
        classes=["no", "yes"],
    )


def test_transform_imputes_then_scales() -> None:
    out = _pre().transform({"a": [1.0, math.nan], "b": [15.0, 10.0]})
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.0, 1.0], [1.0, 0.0]])


def test_state_round_trips_through_json() -> None:
    import json

    pre = _pre()
    again = Preprocessor.from_state(json.loads(json.dumps(pre.state())))
    assert again == pre


def test_missing_column_is_named() -> None:
    with pytest.raises(DataError, match="'b'"):
        _pre().transform({"a": [1.0]})


def test_non_numeric_feature_is_named() -> None:
    with pytest.raises(DataError, match="feature 'a' is not numeric"):
        _pre().transform({"a": ["x"], "b": [1.0]})


def test_target_encoding() -> None:
    assert _pre().encode_target(["yes", "no"]).tolist() == [1, 0]
    with pytest.raises(DataError, match="'maybe' was not seen"):
        _pre().encode_target(["maybe"])
    reg = Preprocessor(
        task="regression", features=["a"], target="y", mean=[0], scale=[1], fill=[0], target_mean=5, target_scale=2
    )
    np.testing.assert_allclose(reg.decode_regression(reg.encode_target([7.0, 3.0])), [7.0, 3.0])


def test_unknown_state_version_is_refused() -> None:
    state = _pre().state()
    state["version"] = 99
    with pytest.raises(DataError, match="version 99"):
        Preprocessor.from_state(state)
