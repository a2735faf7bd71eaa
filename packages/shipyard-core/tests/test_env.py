"""env_default: a setting for one block, never left in the caller's environment."""

from __future__ import annotations

import os

import pytest
from shipyard.core.env import env_default

NAME = "SHIPYARD_TEST_ENV_DEFAULT"


def test_unset_variable_is_set_for_the_block_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)
    with env_default(NAME, "quiet"):
        assert os.environ[NAME] == "quiet"
    assert NAME not in os.environ


def test_unset_variable_is_removed_even_when_the_block_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)
    with pytest.raises(RuntimeError), env_default(NAME, "quiet"):
        raise RuntimeError("boom")
    assert NAME not in os.environ


def test_a_value_the_caller_set_wins_and_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, "mine")
    with env_default(NAME, "quiet"):
        assert os.environ[NAME] == "mine"
    assert os.environ[NAME] == "mine"
