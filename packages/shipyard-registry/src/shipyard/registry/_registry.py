"""Versions and stages on git tags, through GTO.

Every read goes through GTO's own parser of its tags (``gto.api.history``), so what GTO's CLI
did by hand reads here as it does in ``gto show``: a deregistered version (``gto deprecate NAME
VERSION``) is gone, an unassigned stage (``gto deprecate NAME VERSION STAGE``) is no longer held,
a deprecated artifact has no versions, and a ``gto assign`` to production makes that version the
one production version. Events are replayed in the order they were made: tag time, then GTO's
per-artifact counter (tags made within one second share a time).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.core.atomic import write_json
from shipyard.core.errors import ConfigError, ShipyardError
from shipyard.core.paths import ProjectPaths

__all__ = ["STAGES", "Registry", "RegistryError", "Version", "registration_paths"]

STAGES = ("candidate", "staging", "production", "archived")
PRODUCTION = "production"
CARD = "model_card.json"
# The message of a rollback's production assignment starts with this: replaying the history, a
# rollback returns to an earlier entry instead of adding one, so the next rollback walks further back.
ROLLBACK = "rollback"
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
        return _number(self.version)

    @property
    def gate_passed(self) -> bool:
        """Passed a gate that ran: a skipped gate (gate.enabled=false) passes nothing."""
        gate = self.card.get("gate", {})
        return bool(gate.get("passed")) and not gate.get("skipped")


def _number(version: str) -> int:
    return int(version.lstrip("v").split(".")[0])


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


def registration_paths(paths: ProjectPaths) -> list[str]:
    """What a registration commits, relative to the root (folders end with ``/``): the project's
    pipeline folder (dvc.yaml, params.yaml, dvc.lock, model card), the DVC pointers and
    .gitignore files of its data and deployments, its own YAML and its team's YAML."""
    deploy = paths.root / "deploy" / paths.team / paths.name
    return [
        paths.rel(paths.pipeline_dir) + "/",
        paths.rel(paths.data_dir) + "/",
        paths.rel(deploy) + "/",
        paths.rel(paths.config_file),
        paths.rel(paths.root / "conf" / "team" / f"{paths.team}.yaml"),
    ]


# -- GTO's state ------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Event:
    kind: str  # registration, deregistration, assignment, unassignment, deprecation, ...
    version: str | None
    stage: str | None
    commit: str
    message: str
    at: datetime


_CACHE: dict[str, tuple[str, dict[str, list[_Event]]]] = {}


def _order(row: dict[str, Any]) -> tuple[datetime, int, int]:
    import gto.api
    from gto.exceptions import InvalidTagName

    try:
        counter = int(gto.api.parse_tag(str(row["ref"])).get("counter", 0))
    except InvalidTagName:
        counter = 0
    return row["timestamp"], counter, int(row.get("priority") or 0)


def _tag_listing(root: Path) -> list[str]:
    """``<sha> refs/tags/<name>`` for every tag: one cheap git call."""
    return _git(root, "for-each-ref", "--format=%(objectname) %(refname)", "refs/tags").splitlines()


_EVENTS_FILE = "shipyard-registry-events.json"  # in the git folder, beside GTO's tags


def _read_gto(root: Path) -> dict[str, list[_Event]]:
    import gto.api

    events: dict[str, list[_Event]] = {}
    for row in sorted(gto.api.history(str(root), ascending=True), key=_order):
        events.setdefault(str(row["artifact"]), []).append(
            _Event(
                kind=str(row["event"]),
                version=row.get("version"),
                stage=row.get("stage"),
                commit=str(row["commit"]),
                message=str(row.get("message") or ""),
                at=row["timestamp"],
            )
        )
    return events


def _events(root: Path, listing: list[str]) -> dict[str, list[_Event]]:
    """Each artifact's events in the order they were made, as GTO reads its tags.

    Kept, in memory and in the git folder, for as long as the repository's tags stay exactly the
    same (any tag GTO or anyone adds or deletes changes the listing), so ``status`` and ``list``
    need not start GTO again."""
    fingerprint = hashlib.sha256("\n".join(listing).encode()).hexdigest()
    key = str(root.resolve())
    cached = _CACHE.get(key)
    if cached and cached[0] == fingerprint:
        return cached[1]
    saved = Path(_git(root, "rev-parse", "--absolute-git-dir")) / _EVENTS_FILE
    try:
        data = json.loads(saved.read_text())
        if data["fingerprint"] != fingerprint:
            raise ValueError("stale")
        events = {
            artifact: [_Event(**dict(e, at=datetime.fromisoformat(e["at"]))) for e in rows]
            for artifact, rows in data["events"].items()
        }
    except (OSError, ValueError, KeyError, TypeError):
        events = _read_gto(root)
        rows = {a: [dict(e.__dict__, at=e.at.isoformat()) for e in evs] for a, evs in events.items()}
        with contextlib.suppress(OSError):
            write_json(saved, {"fingerprint": fingerprint, "events": rows})
    _CACHE[key] = (fingerprint, events)
    return events


@dataclass
class _State:
    """One artifact's registry, replayed from its events."""

    active: dict[str, _Event] = field(default_factory=dict)  # version -> its registration
    deregistered: set[str] = field(default_factory=set)
    numbers: set[int] = field(default_factory=set)  # every number ever registered
    assigned: dict[tuple[str, str], int] = field(default_factory=dict)  # (version, stage) -> when
    touched: set[str] = field(default_factory=set)  # versions that ever had a stage event
    history: list[str] = field(default_factory=list)  # production, walked back by rollbacks

    @classmethod
    def replay(cls, events: list[_Event]) -> _State:
        state = cls()
        for position, event in enumerate(events):
            state._apply(position, event)
        if events and events[-1].kind == "deprecation":
            # GTO: an artifact whose latest event is a deprecation is inactive, versions and all.
            state.active.clear()
        return state

    def _apply(self, position: int, event: _Event) -> None:
        version, stage = event.version, event.stage
        if version is None:
            return
        if event.kind == "registration":
            self.active[version] = event
            self.deregistered.discard(version)
            with contextlib.suppress(ValueError):
                self.numbers.add(_number(version))
        elif event.kind == "deregistration":
            self.active.pop(version, None)
            self.deregistered.add(version)
            self.history = [v for v in self.history if v != version]
        elif event.kind == "assignment" and stage:
            self.touched.add(version)
            self.assigned[(version, stage)] = position
            if stage == PRODUCTION:
                if event.message.startswith(ROLLBACK) and version in self.history:
                    while self.history[-1] != version:
                        self.history.pop()
                else:
                    self.history.append(version)
        elif event.kind == "unassignment" and stage:
            # A version leaving production stays in its history: a rollback may return to it.
            self.touched.add(version)
            self.assigned.pop((version, stage), None)

    def holder(self) -> str | None:
        """The production version: the latest production assignment still in effect (GTO's view)."""
        held = [(at, v) for (v, s), at in self.assigned.items() if s == PRODUCTION and v in self.active]
        return max(held)[1] if held else None

    def stage_of(self, version: str, holder: str | None) -> str | None:
        """A version's stage: production for the production version, else its latest stage in effect."""
        if version == holder:
            return PRODUCTION
        held = [(at, s) for (v, s), at in self.assigned.items() if v == version and s != PRODUCTION]
        return max(held)[1] if held else None


def _same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """The same model: every content hash both cards give agrees (bundle md5, weights sha256)."""
    ma, mb = a.get("model", {}), b.get("model", {})
    keys = [k for k in ("bundle_md5", "weights_sha256") if ma.get(k) and mb.get(k)]
    return bool(keys) and all(ma[k] == mb[k] for k in keys)


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
    def _state(self) -> _State:
        listing = _tag_listing(self.root)
        mine = (f" refs/tags/{self.name}@", f" refs/tags/{self.name}#")
        if not any(mine[0] in line or mine[1] in line for line in listing):
            return _State()  # never registered: no need to start GTO
        return _State.replay(_events(self.root, listing).get(self.name, []))

    def _card_at(self, commit: str) -> dict[str, Any]:
        path = self.paths.rel(self.paths.pipeline_dir / CARD)
        text = _git(self.root, "show", f"{commit}:{path}", check=False)
        return json.loads(text) if text else {}

    def _versions(self, state: _State) -> list[Version]:
        holder = state.holder()
        out = []
        for version, event in state.active.items():
            stage = state.stage_of(version, holder)
            created = event.at.isoformat()
            out.append(Version(version, event.commit, created, self._card_at(event.commit), [stage] if stage else []))
        return sorted(out, key=lambda v: (v.number, v.version))

    def versions(self) -> list[Version]:
        return self._versions(self._state())

    def stage_of(self) -> dict[str, str]:
        """Each version's stage (versions without one left out)."""
        return {v.version: v.stages[0] for v in self.versions() if v.stages}

    def holder(self, stage: str) -> str | None:
        """The version in ``stage`` (for a stage several versions hold, the latest assigned)."""
        state = self._state()
        if stage == PRODUCTION:
            return state.holder()
        holder = state.holder()
        held = [(at, v) for (v, s), at in state.assigned.items() if s == stage and v in state.active]
        held = [(at, v) for at, v in held if state.stage_of(v, holder) == stage]
        return max(held)[1] if held else None

    def _find(self, version: str, state: _State) -> Version:
        wanted = normalise_version(version)
        versions = self._versions(state)
        for item in versions:
            if item.version == wanted:
                return item
        if wanted in state.deregistered:
            raise RegistryError(
                f"{self.name} {wanted} was deregistered (`gto deprecate`)",
                value=version,
                fix="pick a registered version (`shipyard status`), or train a new one",
            )
        known = ", ".join(v.version for v in versions) or "none yet"
        raise RegistryError(
            f"{self.name} has no version {wanted}",
            value=version,
            fix=f"pick one of: {known} (`shipyard status {self.name}`)",
        )

    def get(self, version: str) -> Version:
        return self._find(version, self._state())

    def production(self) -> Version | None:
        version = self._state().holder()
        return self.get(version) if version else None

    # -- writing -----------------------------------------------------------------------------
    def _registration_files(self) -> list[str]:
        deploy = self.root / "deploy" / self.paths.team / self.paths.name
        names = ("dvc.yaml", "params.yaml", "dvc.lock", CARD, "reference_contract.json")
        files = [self.paths.pipeline_dir / n for n in names]
        files += [self.paths.config_file, self.root / "conf" / "team" / f"{self.paths.team}.yaml"]
        files += sorted(self.paths.data_dir.rglob("*.dvc")) + sorted(self.paths.data_dir.rglob(".gitignore"))
        # Only the pointers beside the built folders: the folders themselves are DVC's.
        files += [*sorted(deploy.glob("*.dvc")), deploy / ".gitignore"]
        return [self.paths.rel(f) for f in files if f.is_file()]

    def _require_branch(self) -> None:
        """A version's commit must be on a branch: on a detached HEAD it would belong to none."""
        if _git(self.root, "symbolic-ref", "-q", "HEAD", check=False):
            return
        head = _git(self.root, "rev-parse", "--short", "HEAD", check=False) or "an unborn commit"
        raise RegistryError(
            f"HEAD is detached (at {head}): {self.name} would be registered on a commit that no branch contains",
            fix="put HEAD on a branch and run again: `git switch -c <new-branch>` keeps this commit, "
            "`git switch <branch>` returns to a branch; or train with --no-register",
        )

    def _repair(self, state: _State, versions: list[Version]) -> bool:
        """A version that passed its gate but never got a stage was killed between its tag and
        its candidate assignment: finish that registration now. (A stage someone unassigned on
        purpose leaves an event behind and is left alone.)"""
        stranded = [v for v in versions if v.gate_passed and not v.stages and v.version not in state.touched]
        for version in stranded:
            self._assign("candidate", version.version)
        return bool(stranded)

    def register(self, card: dict[str, Any]) -> tuple[Version, bool]:
        """Commit the project's pipeline files, model card and config, tag a new version.

        Returns (version, created). A model identical to any registered version (same bundle
        and weights hashes) is not registered twice. Killed half-way, a registration leaves a
        commit without a tag (never a tag without its commit), or a tag without its stage, which
        the next registration completes.
        """
        import gto.api

        with repo_lock(self.root):
            state = self._state()
            versions = self._versions(state)
            if self._repair(state, versions):
                state = self._state()
                versions = self._versions(state)
            same = next((v for v in versions if _same_model(v.card, card)), None)
            if same is not None:
                return same, False
            self._require_branch()
            version = f"v{max(state.numbers, default=0) + 1}.0.0"
            card = dict(card, version=version, project=self.name)
            write_json(self.paths.pipeline_dir / CARD, card)
            files = self._registration_files()
            _git(self.root, "add", "--", *files)
            staged = subprocess.run(["git", "diff", "--cached", "--quiet", "--", *files], cwd=self.root)
            name, email = self._identity()
            if staged.returncode != 0:
                _git(
                    self.root,
                    *("-c", f"user.name={name}", "-c", f"user.email={email}"),
                    *("commit", "-q", "-m", f"{self.name}: register {version}", "--", *files),
                )
            gate = card.get("gate", {})
            verdict = "skipped" if gate.get("skipped") else "passed" if gate.get("passed") else "failed"
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

    def _assign(self, stage: str, version: str, message: str | None = None) -> None:
        import gto.api

        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r}", value=stage, fix="use one of: " + ", ".join(STAGES))
        name, email = self._identity()
        gto.api.assign(
            self.root,
            self.name,
            stage,
            version=version,
            message=message or f"{version} to {stage}",
            force=True,
            author=name,
            author_email=email,
        )

    def _leave_production(self, version: str) -> None:
        """GTO's unassignment, so that GTO's own view (`gto show`) agrees the version left."""
        import gto.api

        name, email = self._identity()
        gto.api.unassign(
            self.root,
            self.name,
            version=version,
            stage=PRODUCTION,
            message=f"{version} leaves {PRODUCTION}",
            force=True,
            author=name,
            author_email=email,
        )

    def _retire(self, version: str) -> None:
        self._leave_production(version)
        self._assign("archived", version)

    def _identity(self) -> tuple[str, str]:
        """The user's git identity; on a machine without one, registrations are signed by
        Shipyard rather than failing after a whole training run."""
        name = _git(self.root, "config", "user.name", check=False)
        email = _git(self.root, "config", "user.email", check=False)
        return name or "Shipyard", email or "shipyard@localhost"

    def _check_gate(self, target: Version) -> None:
        if target.gate_passed:
            return
        gate = target.card.get("gate", {})
        failed = [c["name"] for c in gate.get("checks", []) if not c.get("passed")]
        why = " (its gate was skipped: gate.enabled=false)" if gate.get("skipped") else ""
        detail = f" (failed: {', '.join(failed)})" if failed else why
        raise RegistryError(
            f"{self.name} {target.version} did not pass its gate{detail}",
            fix="train a model that passes (`make train`), then promote that version",
        )

    def promotable(self, version: str) -> Version:
        """The version, if it may be promoted (registered, gate passed); else the reason why not."""
        target = self.get(version)
        self._check_gate(target)
        return target

    def promote(self, version: str, stage: str = PRODUCTION) -> tuple[Version, Version | None]:
        """Assign ``stage`` to a version that passed its gate; the previous production version
        leaves production and is archived."""
        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r}", value=stage, fix="use one of: " + ", ".join(STAGES))
        with repo_lock(self.root):
            state = self._state()
            target = self._find(version, state)
            self._check_gate(target)
            holder = state.holder()
            previous = None
            if stage == PRODUCTION:
                if holder == target.version:
                    return target, None
                self._assign(PRODUCTION, target.version)
                if holder:
                    self._retire(holder)
                    previous = holder
            else:
                if holder == target.version:
                    self._leave_production(holder)
                self._assign(stage, target.version)
        return self.get(target.version), (self.get(previous) if previous else None)

    def _rollback_plan(self, state: _State) -> tuple[Version, Version]:
        current = state.holder()
        if current is None:
            raise RegistryError(f"{self.name} has no production version", fix="promote one first: make promote")
        versions = {v.version: v for v in self._versions(state)}
        history = [v for v in state.history if v in versions]
        if current in history:
            history = history[: len(history) - 1 - history[::-1].index(current)]
        for version in reversed(history):
            if version != current and versions[version].gate_passed:
                return versions[version], versions[current]
        raise RegistryError(
            f"{self.name} has no earlier production version that passed its gate to roll back to "
            f"(production is {current})",
            fix="promote another version instead (make status lists them)",
        )

    def rollback_plan(self) -> tuple[Version, Version]:
        """(the version a rollback reinstates, the production version it replaces), writing nothing.

        Rollback walks back through the production history: each rollback returns one step
        further, never to a version that did not pass its gate or was deregistered."""
        return self._rollback_plan(self._state())

    def rollback(self, expected: str | None = None) -> tuple[Version, Version]:
        """Put the previous production version back; ``expected``: the version the caller
        prepared for (refused if someone changed production meanwhile)."""
        with repo_lock(self.root):
            target, current = self._rollback_plan(self._state())
            if expected is not None and target.version != expected:
                raise RegistryError(
                    f"{self.name}'s production changed while rolling back (now {current.version})",
                    fix="run the rollback again",
                )
            message = f"{ROLLBACK}: {target.version} back to {PRODUCTION}, replacing {current.version}"
            self._assign(PRODUCTION, target.version, message=message)
            self._retire(current.version)
        return self.get(target.version), self.get(current.version)


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
