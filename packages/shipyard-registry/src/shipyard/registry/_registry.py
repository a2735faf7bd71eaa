"""Versions and stages on git tags, through GTO."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.core.atomic import write_json
from shipyard.core.errors import ConfigError, ShipyardError
from shipyard.core.paths import ProjectPaths

__all__ = ["STAGES", "Registry", "RegistryError", "Version"]

STAGES = ("candidate", "staging", "production", "archived")
CARD = "model_card.json"
_VERSION_RE = re.compile(r"^v?(\d+)(?:\.0\.0)?$")


class RegistryError(ShipyardError):
    exit_code = 2
    kind = "registry error"


@dataclass
class Version:
    version: str
    commit: str
    created_at: str
    card: dict[str, Any]
    stages: list[str] = field(default_factory=list)

    @property
    def number(self) -> int:
        return int(self.version.lstrip("v").split(".")[0])

    @property
    def gate_passed(self) -> bool:
        """Passed a gate that ran: a skipped gate (gate.enabled=false) passes nothing."""
        gate = self.card.get("gate", {})
        return bool(gate.get("passed")) and not gate.get("skipped")


def normalise_version(text: str) -> str:
    """``3``, ``v3`` and ``v3.0.0`` all name version ``v3.0.0``."""
    match = _VERSION_RE.match(text.strip())
    if not match:
        raise ConfigError(
            f"bad version {text!r}", value=text, fix="name a version as v3 or v3.0.0 (see `shipyard status`)"
        )
    return f"v{int(match.group(1))}.0.0"


def _git(root: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RegistryError(
            f"git {' '.join(args[:3])} failed: {proc.stderr.strip() or proc.stdout.strip()}",
            fix="the registry keeps versions as git tags: run inside a git repository with a user.name and user.email",
        )
    return proc.stdout.strip()


@contextlib.contextmanager
def repo_lock(root: Path, timeout: float = 120.0) -> Iterator[None]:
    """Serialise git writes (commit + tag) of concurrent registrations in one repository."""
    git_dir = Path(_git(root, "rev-parse", "--absolute-git-dir"))
    with open(git_dir / "shipyard-registry.lock", "w") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RegistryError("another registration holds the repository lock", fix="try again") from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Registry:
    """The versions and stages of one project."""

    def __init__(self, paths: ProjectPaths) -> None:
        self.paths = paths
        self.root = paths.root
        self.name = paths.project

    # -- reading -----------------------------------------------------------------------------
    def _tags(self) -> list[tuple[str, str, str]]:
        """(tag, commit, creator date) of this project's tags, oldest first."""
        out = _git(
            self.root,
            "for-each-ref",
            "--sort=creatordate",
            "--format=%(refname:strip=2)\t%(*objectname)%(objectname)\t%(creatordate:iso-strict)",
            f"refs/tags/{self.name}@*",
            f"refs/tags/{self.name}#*",
        )
        rows = []
        for line in out.splitlines():
            tag, sha, date = line.split("\t")
            rows.append((tag, sha[:40], date))  # the peeled commit comes first for annotated tags
        return rows

    def _card_at(self, commit: str) -> dict[str, Any]:
        path = self.paths.rel(self.paths.pipeline_dir / CARD)
        text = _git(self.root, "show", f"{commit}:{path}", check=False)
        return json.loads(text) if text else {}

    def assignments(self) -> list[tuple[int, str, str]]:
        """(assignment number, stage, version) in order: GTO's ``name#stage#N`` tags, each on
        the commit of the version it assigns."""
        tags = self._tags()
        version_at = {commit: tag.split("@", 1)[1] for tag, commit, _ in tags if "@" in tag}
        events = []
        for tag, commit, _ in tags:
            if "#" in tag and commit in version_at:
                _, stage, number = tag.rsplit("#", 2)
                events.append((int(number), stage, version_at[commit]))
        return sorted(events)

    def stage_of(self) -> dict[str, str]:
        """Each version's stage: its latest assignment (GTO's kanban view)."""
        stages: dict[str, str] = {}
        for _, stage, version in self.assignments():
            stages[version] = stage
        return stages

    def holder(self, stage: str) -> str | None:
        """The version most recently assigned to ``stage`` that is still there."""
        stages = self.stage_of()
        for _, assigned, version in reversed(self.assignments()):
            if assigned == stage and stages.get(version) == stage:
                return version
        return None

    def versions(self) -> list[Version]:
        stages = self.stage_of()
        out = []
        for tag, commit, date in self._tags():
            if "@" not in tag:
                continue
            version = tag.split("@", 1)[1]
            current = [stages[version]] if version in stages else []
            out.append(Version(version, commit, date, self._card_at(commit), current))
        return sorted(out, key=lambda v: v.number)

    def get(self, version: str) -> Version:
        wanted = normalise_version(version)
        for item in self.versions():
            if item.version == wanted:
                return item
        known = ", ".join(v.version for v in self.versions()) or "none yet"
        raise RegistryError(
            f"{self.name} has no version {wanted}",
            value=version,
            fix=f"pick one of: {known} (`shipyard status {self.name}`)",
        )

    def production(self) -> Version | None:
        version = self.holder("production")
        return self.get(version) if version else None

    # -- writing -----------------------------------------------------------------------------
    def _pipeline_files(self) -> list[str]:
        files = [self.paths.pipeline_dir / n for n in ("dvc.yaml", "params.yaml", "dvc.lock", CARD)]
        files += sorted(self.paths.data_dir.rglob("*.dvc")) + sorted(self.paths.data_dir.rglob(".gitignore"))
        return [self.paths.rel(f) for f in files if f.exists()]

    def register(self, card: dict[str, Any]) -> tuple[Version, bool]:
        """Commit the project's pipeline files and model card, tag a new version.

        Returns (version, created). A model identical to the latest version (same bundle hash)
        is not registered twice. Killed half-way, a registration leaves a commit without a tag,
        never a tag without its commit: nothing that looks like a complete version.
        """
        import gto.api

        with repo_lock(self.root):
            versions = self.versions()
            latest = versions[-1] if versions else None
            if latest and latest.card.get("model", {}).get("bundle_md5") == card.get("model", {}).get("bundle_md5"):
                return latest, False
            number = (latest.number if latest else 0) + 1
            version = f"v{number}.0.0"
            card = dict(card, version=version, project=self.name)
            write_json(self.paths.pipeline_dir / CARD, card)
            files = self._pipeline_files()
            _git(self.root, "add", "--", *files)
            staged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", *files], cwd=self.root)
            if staged.returncode != 0:
                name, email = self._identity()
                _git(
                    self.root,
                    *("-c", f"user.name={name}", "-c", f"user.email={email}"),
                    *("commit", "-q", "-m", f"{self.name}: register {version}", "--", *files),
                )
            gate = card.get("gate", {})
            verdict = "skipped" if gate.get("skipped") else "passed" if gate.get("passed") else "failed"
            name, email = self._identity()
            gto.api.register(
                self.root,
                self.name,
                "HEAD",
                version=version,
                message=f"{version} gate {verdict}",
                author=name,
                author_email=email,
            )
            if verdict == "passed":
                self._assign("candidate", version)
        return self.get(version), True

    def _assign(self, stage: str, version: str) -> None:
        import gto.api

        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r}", value=stage, fix="use one of: " + ", ".join(STAGES))
        name, email = self._identity()
        gto.api.assign(
            self.root,
            self.name,
            stage,
            version=version,
            message=f"{version} to {stage}",
            force=True,
            author=name,
            author_email=email,
        )

    def _identity(self) -> tuple[str, str]:
        """The user's git identity; on a machine without one, registrations are signed by
        Shipyard rather than failing after a whole training run."""
        name = _git(self.root, "config", "user.name", check=False)
        email = _git(self.root, "config", "user.email", check=False)
        return name or "Shipyard", email or "shipyard@localhost"

    def promote(self, version: str, stage: str = "production") -> tuple[Version, Version | None]:
        """Assign ``stage`` to a version that passed its gate; the previous holder is archived."""
        with repo_lock(self.root):
            target = self.get(version)
            if not target.gate_passed:
                gate = target.card.get("gate", {})
                failed = [c["name"] for c in gate.get("checks", []) if not c.get("passed")]
                why = " (its gate was skipped: gate.enabled=false)" if gate.get("skipped") else ""
                raise RegistryError(
                    f"{self.name} {target.version} did not pass its gate"
                    + (f" (failed: {', '.join(failed)})" if failed else why),
                    fix="train a model that passes (`make train`), then promote that version",
                )
            previous = self.production() if stage == "production" else None
            if previous and previous.version == target.version:
                return target, None
            self._assign(stage, target.version)
            if previous:
                self._assign("archived", previous.version)
        return self.get(target.version), previous

    def rollback(self) -> tuple[Version, Version]:
        """Put the production version before the current one back into production."""
        with repo_lock(self.root):
            history = [v for _, s, v in self.assignments() if s == "production"]
            if not history:
                raise RegistryError(f"{self.name} has no production version", fix="promote one first: make promote")
            current = history[-1]
            earlier = [v for v in history[:-1] if v != current]
            if not earlier:
                raise RegistryError(
                    f"{self.name} has no earlier production version to roll back to (production is {current})",
                    fix="promote another version instead",
                )
            self._assign("production", earlier[-1])
            self._assign("archived", current)
        return self.get(earlier[-1]), self.get(current)


def project_lock_path(paths: ProjectPaths) -> Path:
    return paths.data_dir / ".shipyard.lock"


@contextlib.contextmanager
def project_lock(paths: ProjectPaths, *, wait: bool, say: Any = print) -> Iterator[None]:
    """One training of a project at a time: wait for the other or stop, as asked."""
    lock = project_lock_path(paths)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            if not wait:
                raise RegistryError(
                    f"another training of {paths.project} is running ({holder})",
                    fix="wait for it to finish, or run again with --wait",
                ) from None
            say(f"waiting for another training of {paths.project} ({holder}) to finish ...")
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)
