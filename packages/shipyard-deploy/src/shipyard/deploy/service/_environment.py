"""The Python environment a Bento is built with: pinned requirements and Shipyard's wheels.

The pins come from the environment the service was built and tested in (the installed
distributions and their declared requirements, closed transitively), so the image runs the same
versions, and nothing reaches the network at build time. A pin names the public version: a local
label such as torch's ``+cpu`` names a build no public index serves (the CPU index goes into the
bentofile instead, where pip finds ``2.13.0+cpu`` for ``torch==2.13.0``). Shipyard's own layer packages are not
on any index: they travel as wheels, built from a copy of their source (the repository is never
written to). Everything installs with ``--no-deps``: the training stack those packages declare
(Lightning, torchmetrics, pandas) stays out of the image.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from shipyard.core.errors import ShipyardError

__all__ = ["RUNTIME_ROOTS", "SHIPYARD_WHEELS", "build_wheels", "pinned_requirements", "torch_index"]

# What the service imports at run time; their requirements are followed transitively.
RUNTIME_ROOTS = ("bentoml", "torch", "numpy", "safetensors", "pydantic", "sqlalchemy", "pyarrow", "pandas")
# Shipyard's layer packages the service imports (shipyard.deploy.service, .train.bundle, .core.features,
# .features for the online-store lookup, .predlog for the prediction log).
SHIPYARD_WHEELS = ("shipyard-core", "shipyard-train", "shipyard-features", "shipyard-predlog", "shipyard-deploy")
_TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(roots: tuple[str, ...] = RUNTIME_ROOTS) -> list[str]:
    """``name==version`` for ``roots`` and everything they require, as installed here (public
    versions: ``torch==2.13.0`` for an installed ``2.13.0+cpu``)."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    pins: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[str, frozenset[str]]] = [(r, frozenset()) for r in roots]
    while todo:
        name, extras = todo.pop()
        if (_canonical(name), extras) in seen:
            continue
        seen.add((_canonical(name), extras))
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement this environment does not have: the image need not either
        pins[_canonical(dist.metadata["Name"])] = Version(dist.version).public
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in {"", *extras}):
                continue
            todo.append((req.name, frozenset(req.extras)))
    return [f"{name}=={version}" for name, version in sorted(pins.items()) if not name.startswith("shipyard-")]


def torch_index() -> list[str]:
    """Extra index URLs the pinned torch build needs (the CPU build is not on PyPI)."""
    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        return []
    return [_TORCH_CPU_INDEX] if version.endswith("+cpu") else []


def _source_dir(dist_name: str) -> Path:
    """The source folder a Shipyard package was installed from (editable or local install)."""
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError as exc:
        raise ShipyardError(f"{dist_name} is not installed", fix="run `make setup`") from exc
    direct = dist.read_text("direct_url.json")
    url = json.loads(direct).get("url", "") if direct else ""
    path = Path(unquote(urlparse(url).path)) if url.startswith("file://") else None
    if path is None or not (path / "pyproject.toml").is_file():
        raise ShipyardError(
            f"cannot find the source of {dist_name} to build its wheel (installed from {url or 'an index'})",
            fix="install the Shipyard packages from the repository (`make setup` does, editable)",
        )
    return path


def build_wheels(dest: Path, names: tuple[str, ...] = SHIPYARD_WHEELS) -> list[Path]:
    """Build a wheel of each Shipyard package into ``dest``, from a scratch copy of its source."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="shipyard-wheels-") as scratch:
        copies = []
        for name in names:
            source = _source_dir(name)
            copy = Path(scratch) / name
            # setuptools writes build/ and *.egg-info beside the source: let it write in the copy.
            shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests"))
            copies.append(str(copy))
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--disable-pip-version-check",
            "-w",
            str(dest),
            *copies,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise ShipyardError(
                "building the Shipyard wheels for the Bento failed",
                where=" ".join(names),
                fix=f"check that `pip wheel` works in this environment:\n{done.stderr[-2000:]}",
            )
    return sorted(dest.glob("*.whl"))
