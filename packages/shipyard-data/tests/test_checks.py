"""Each check fails on a crafted bad data set and passes on the good one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from shipyard.core.compose import section
from shipyard.core.schema import ChecksConf
from shipyard.data.checks import format_summary, run_checks

NO_EXTRAS: dict[str, Any] = {"correlation": {"threshold": None}, "leakage": {"threshold": None}}


def good() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "price": rng.uniform(10, 20, n).round(2),
            "size": rng.normal(50, 5, n),
            "colour": rng.choice(["red", "red", "red", "blue", "green"], n),
            "label": rng.integers(0, 2, n),
        }
    )


# (checks config, how to break the good frame, the check that must fail, its column)
CASES: list[tuple[dict[str, Any], Any, str, str | None]] = [
    ({"columns": {"price": {"required": True}}}, lambda f: f.drop(columns="price"), "required column", "price"),
    ({"columns": {"size": {"dtype": "float"}}}, lambda f: f.assign(size=f["size"].astype(int)), "dtype", "size"),
    (
        {"columns": {"colour": {"allowed": ["red", "blue", "green"]}}},
        lambda f: f.assign(colour="purple"),
        "allowed values",
        "colour",
    ),
    ({"columns": {"price": {"min": 0}}}, lambda f: f.assign(price=-f["price"]), "min", "price"),
    ({"columns": {"price": {"max": 100}}}, lambda f: f.assign(price=f["price"] * 10), "max", "price"),
    ({"columns": {"id": {"unique": True}}}, lambda f: f.assign(id="same"), "unique", "id"),
    (
        {"columns": {"size": {"max_null_fraction": 0.1}}},
        lambda f: f.assign(size=np.where(f.index % 4 == 0, np.nan, f["size"])),
        "nulls",
        "size",
    ),
    ({"max_null_fraction": 0.2}, lambda f: f.assign(price=np.nan), "nulls", "price"),
    (
        {"max_duplicate_fraction": 0.0},
        lambda f: pd.concat([f, f.iloc[:5].assign(id=lambda d: d["id"] + "x")]),
        "duplicates",
        None,
    ),
    ({"columns": {"size": {"mean": [45, 55]}}}, lambda f: f.assign(size=f["size"] + 20), "mean", "size"),
    (
        {"columns": {"size": {"quantiles": {"0.5": [45, 55]}}}},
        lambda f: f.assign(size=f["size"] * 2),
        "quantile 0.5",
        "size",
    ),
    (
        {"columns": {"colour": {"most_frequent": "red"}}},
        lambda f: f.assign(colour="blue"),
        "most frequent value",
        "colour",
    ),
    ({"class_balance": [0.2, 0.8]}, lambda f: f.assign(label=(f.index < 10).astype(int)), "class balance", "label"),
]


@pytest.mark.parametrize(("checks", "breaks", "check", "column"), CASES, ids=[c[2] for c in CASES])
def test_check_passes_good_and_fails_bad(checks: dict[str, Any], breaks: Any, check: str, column: str | None) -> None:
    conf = {**NO_EXTRAS, **checks}
    assert run_checks(good(), section(ChecksConf, conf), "label", "binary", [])["passed"]
    report = run_checks(breaks(good()), section(ChecksConf, conf), "label", "binary", [])
    assert not report["passed"]
    assert any(f["check"] == check and f["column"] == column for f in report["failures"]), report["failures"]
    failure = next(f for f in report["failures"] if f["check"] == check)
    assert failure["observed"] is not None and failure["expected"]
    assert check in format_summary(report, "t/p")


def test_correlated_features_warn_or_fail_as_configured() -> None:
    frame = good().assign(price_with_tax=lambda f: f["price"] * 1.2)

    def checks(**correlation: Any) -> ChecksConf:
        return section(ChecksConf, {"correlation": correlation, "leakage": {"threshold": None}})

    warn = run_checks(frame, checks(threshold=0.98, action="warn"), "label", "binary", [])
    assert warn["passed"] and warn["warnings"][0]["column"] == "price ~ price_with_tax"
    fail = run_checks(frame, checks(threshold=0.98, action="fail"), "label", "binary", [])
    assert not fail["passed"] and fail["failures"][0]["check"] == "correlated features"
    assert run_checks(good(), checks(threshold=0.98), "label", "binary", [])["passed"]


def test_aux_columns_are_not_features() -> None:
    frame = good().assign(day=lambda f: f["label"])  # would leak if it were a feature
    conf = {"correlation": {"threshold": None}, "leakage": {"threshold": 0.99, "action": "fail"}}
    assert run_checks(frame, section(ChecksConf, conf), "label", "binary", ["day"])["passed"]
