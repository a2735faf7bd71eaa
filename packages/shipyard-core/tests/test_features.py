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


# -- date/time features ------------------------------------------------------------------------


def test_datetime_parts_match_the_python_calendar() -> None:
    """Every part against Python's own calendar, over four years every 37 hours (leap day included)."""
    from datetime import datetime, timedelta

    from shipyard.core.features import DATETIME_PARTS, datetime_parts, parse_datetimes

    stamps = [datetime(2023, 1, 1) + timedelta(hours=37 * i) for i in range(950)]
    out = datetime_parts(parse_datetimes(np.array(stamps, dtype="datetime64[s]")), DATETIME_PARTS)
    col = {p: out[:, i] for i, p in enumerate(DATETIME_PARTS)}
    np.testing.assert_array_equal(col["year"], [t.year for t in stamps])
    np.testing.assert_array_equal(col["month"], [t.month for t in stamps])
    np.testing.assert_array_equal(col["day"], [t.day for t in stamps])
    np.testing.assert_array_equal(col["dayofweek"], [t.weekday() for t in stamps])
    np.testing.assert_array_equal(col["dayofyear"], [t.timetuple().tm_yday for t in stamps])
    np.testing.assert_array_equal(col["hour"], [t.hour for t in stamps])
    np.testing.assert_allclose(col["timestamp"], [(t - datetime(1970, 1, 1)).total_seconds() / 86400 for t in stamps])
    months = np.array([t.month for t in stamps])
    np.testing.assert_allclose(col["month_sin"], np.sin(2 * np.pi * (months - 1) / 12), atol=1e-12)
    days = np.array([t.weekday() for t in stamps])
    np.testing.assert_allclose(col["dayofweek_cos"], np.cos(2 * np.pi * days / 7), atol=1e-12)
    np.testing.assert_allclose(col["hour_sin"] ** 2 + col["hour_cos"] ** 2, 1.0)
    assert max(t.timetuple().tm_yday for t in stamps) == 366


def test_datetime_feature_is_parsed_imputed_and_scaled() -> None:
    """ISO strings (with an offset: converted to UTC), datetime objects and nulls all work; a
    missing date imputes each part's fill value; the state round-trips through JSON."""
    import json
    from datetime import datetime

    pre = Preprocessor(
        task="binary",
        features=["a", "when"],
        target="y",
        mean=[0.0, 2000.0, 0.0],
        scale=[1.0, 10.0, 1.0],
        fill=[0.0, 2020.0, 3.0],
        classes=["no", "yes"],
        datetime={"when": ["year", "dayofweek"]},
    )
    assert pre.numeric_inputs == ["a", "when.year", "when.dayofweek"] and pre.n_features == 3
    out = pre.transform({"a": [1.0, 2.0, 3.0], "when": ["2024-12-31T23:30:00-02:00", datetime(2010, 1, 4), None]})
    # 2024-12-31T23:30-02:00 is 2025-01-01T01:30 UTC, a Wednesday (2); 2010-01-04 a Monday (0).
    np.testing.assert_allclose(out, [[1.0, 2.5, 2.0], [2.0, 1.0, 0.0], [3.0, 2.0, 3.0]])
    assert Preprocessor.from_state(json.loads(json.dumps(pre.state()))) == pre
    with pytest.raises(DataError, match=r"feature 'when': '03/05/2024' is not an ISO 8601 date/time"):
        pre.transform({"a": [1.0], "when": ["03/05/2024"]})
