"""The configuration reference is generated from the schema and committed current."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_configuration_reference_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, "tools/config_reference.py", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_reference_names_the_keys_users_need() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for key in ("data.drop", "data.features", "preprocess.max_categories", "deploy.batch.rejects.unknown_category"):
        assert f"`{key}`" in text, key
    assert "`stratified`" in text and "| `trainer.max_epochs` | integer | `30` | >= 1 |" in text
