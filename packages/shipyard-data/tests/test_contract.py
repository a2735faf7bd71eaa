"""The data contract: inferred from a training split, each kind of break named with its fix,
overrides per column, the schema difference between versions, and the reference profile."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from shipyard.core.compose import section
from shipyard.core.schema import ChecksConf
from shipyard.data.contract import compare_contract, infer_contract, schema_changes
from shipyard.data.profile import bin_counts, reference_profile


def frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "price": rng.uniform(10, 20, n),
            "rooms": rng.integers(1, 6, n),
            "colour": rng.choice(["red", "blue", "green", "grey", "black"], n),
            "label": rng.integers(0, 2, n),
        }
    )


def checks(**data: Any) -> ChecksConf:
    return section(ChecksConf, data, "checks")


CONTRACT = infer_contract(frame(), "label", "binary", [], None)


def test_contract_records_columns_roles_ranges_and_vocabularies() -> None:
    cols = CONTRACT["columns"]
    assert CONTRACT["key"] == "id" and cols["id"]["role"] == "key" and cols["label"]["role"] == "target"
    assert cols["price"]["kind"] == "number" and 10 <= cols["price"]["min"] < cols["price"]["max"] <= 20
    assert cols["rooms"]["kind"] == "integer" and not cols["rooms"]["nullable"]
    assert cols["colour"]["categories"] == ["black", "blue", "green", "grey", "red"]


def test_the_same_data_keeps_its_contract() -> None:
    assert compare_contract(frame(seed=1), CONTRACT, checks()) == ([], [])


# (how to break the data, the check that must fail, its column, words the fix must hold)
BREAKS = [
    (lambda f: f.drop(columns="rooms"), "contract: missing column", "rooms", "restore 'rooms'"),
    (lambda f: f.rename(columns={"rooms": "n_rooms"}), "contract: missing column", "rooms", "rename it back"),
    (lambda f: f.assign(price=f["price"].astype(str)), "contract: retyped column", "price", "convert 'price' back"),
    (
        lambda f: f.assign(colour=[f"c{i % 9}" for i in range(len(f))]),
        "contract: new categories",
        "colour",
        "new_categories",
    ),
    (lambda f: f.assign(price=f["price"] * 100), "contract: range", "price", "range_margin"),
    (lambda f: f.assign(id="same"), "contract: key not unique", "id", "deduplicate"),
]


@pytest.mark.parametrize(("breaker", "check", "column", "fix"), BREAKS)
def test_each_break_fails_naming_the_column_the_change_and_the_fix(
    breaker: Any, check: str, column: str, fix: str
) -> None:
    failures, _ = compare_contract(breaker(frame(seed=2)), CONTRACT, checks())
    named = [f for f in failures if f["check"] == check and f["column"] == column]
    assert named, failures
    assert fix in named[0]["fix"] and named[0]["observed"] and named[0]["expected"]


def test_a_renamed_column_is_guessed() -> None:
    failures, warnings = compare_contract(frame().rename(columns={"rooms": "n_rooms"}), CONTRACT, checks())
    assert "renamed to 'n_rooms'?" in failures[0]["observed"]
    assert [w["column"] for w in warnings] == ["n_rooms"]  # the new column: a warning, not a break


def test_warn_off_and_per_column_overrides() -> None:
    broken = frame().drop(columns="rooms").assign(price=lambda f: f["price"] * 100)
    failures, warnings = compare_contract(broken, CONTRACT, checks(contract="warn"))
    assert not failures and {w["column"] for w in warnings} == {"rooms", "price"}
    assert compare_contract(broken, CONTRACT, checks(contract="off")) == ([], [])
    failures, warnings = compare_contract(broken, CONTRACT, checks(contract_columns={"rooms": "off"}))
    assert [f["column"] for f in failures] == ["price"] and not warnings
    failures, _ = compare_contract(broken, CONTRACT, checks(contract="off", contract_columns={"price": "fail"}))
    assert [f["column"] for f in failures] == ["price"]


def test_limits_are_configurable() -> None:
    wider = frame().assign(price=lambda f: f["price"] + 15)  # 1.5 training widths past the top
    assert compare_contract(wider, CONTRACT, checks())[0]
    assert compare_contract(wider, CONTRACT, checks(contract_limits={"range_margin": 2.0})) == ([], [])


def test_new_nulls_are_a_warning() -> None:
    holed = frame().assign(price=lambda f: f["price"].where(f.index % 10 != 0))
    failures, warnings = compare_contract(holed, CONTRACT, checks())
    assert not failures and warnings[0]["check"] == "contract: nulls" and warnings[0]["column"] == "price"


def test_schema_changes_between_versions() -> None:
    newer = infer_contract(frame().drop(columns="rooms").assign(size=1.0), "label", "binary", [], None)
    assert schema_changes(CONTRACT, newer) == ["removed 'rooms'", "added 'size' (number)"]
    assert schema_changes(CONTRACT, CONTRACT) == []
    assert schema_changes(None, newer) == []


def test_bins_split_values_at_the_edges() -> None:
    counts = bin_counts(np.array([0.0, 1.0, 1.5, 2.0, 9.0, np.nan]), [1.0, 2.0])
    assert counts.tolist() == [1, 2, 2]


def test_reference_profile_of_features_and_predictions() -> None:
    train = frame(2000)
    profile = reference_profile(
        train, ["price", "colour"], {"colour"}, [0, 1, 1], "binary", {"val/accuracy": 0.9, "test/accuracy": 0.8}, 10
    )
    price = profile["features"]["price"]
    assert price["kind"] == "numeric" and len(price["edges"]) == 9 and sum(price["counts"]) == 2000
    assert max(price["counts"]) - min(price["counts"]) <= 2  # quantile bins hold equal shares
    assert sum(profile["features"]["colour"]["counts"].values()) == 2000
    assert profile["prediction"]["counts"] == {"1": 2, "0": 1}
    assert profile["metrics"] == {"val/accuracy": 0.9}
