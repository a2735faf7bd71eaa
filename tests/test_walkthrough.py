"""The README's new-team walkthrough, run word for word in a fresh clone of this repository."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from .conftest import QUIET, ROOT

pytestmark = pytest.mark.slow


def _walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- walkthrough:start -->\n```bash\n(.*?)```\n<!-- walkthrough:end -->", text, re.S)
    assert block, "README.md lost its walkthrough markers"
    return block.group(1)


def test_readme_walkthrough_works_word_for_word(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for key, value in (("user.email", "team@ads.invalid"), ("user.name", "Ads team")):
        subprocess.run(["git", "config", key, value], cwd=clone, check=True)
    # The clone shares this checkout's environment; its setup stamp must count as fresh, or
    # `make` would reinstall the environment from the clone (restored afterwards).
    os.symlink(ROOT / ".venv", clone / ".venv")
    stamp = ROOT / ".venv" / ".installed"
    saved = stamp.stat() if stamp.exists() else None
    scores = Path("/tmp/clicks-scores")
    subprocess.run(["rm", "-rf", str(scores)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("SHIPYARD_ROOT", "MAKEFLAGS", "MAKELEVEL")}
    env.update(QUIET)
    try:
        stamp.touch()
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", _walkthrough()],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        if saved is not None:
            os.utime(stamp, ns=(saved.st_atime_ns, saved.st_mtime_ns))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "registered ads/clicks v1.0.0 (candidate); gate passed" in proc.stdout
    assert "ads/clicks v1.0.0 is now production" in proc.stdout
    scored = pd.read_parquet(scores)
    assert len(scored) == 3000 and set(scored["model_version"]) == {"ads/clicks@v1.0.0"}
    assert "impression_id" in scored.columns
    subprocess.run(["rm", "-rf", str(scores)], check=True)
