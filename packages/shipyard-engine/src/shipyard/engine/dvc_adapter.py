"""The one place Shipyard reaches into DVC's internals: running stage commands in-process, and
opening a repository that waits for DVC's lock.

``dvc repro`` decides what is stale and records ``dvc.lock``; each stale stage's command goes
through ``dvc.stage.run._run(executable, cmd, **popen_kwargs)``, a private function that spawns
the shell. :func:`stage_runner` swaps it for a hook for the length of a ``with`` block, so
``make train`` can run Shipyard's own stage commands in this process (torch is imported once)
and leave every other command to DVC. DVC has no public API for this; :func:`check` verifies
the private function still has the shape this module expects and fails loudly, naming the DVC
version, when it does not (``tests`` run it, so a DVC upgrade that moves it is caught in CI).
"""

from __future__ import annotations

import contextlib
import inspect
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from shipyard.core.errors import StageError

__all__ = ["Hook", "check", "open_repo", "stage_runner"]

# hook(cmd, cwd, spawn): run ``cmd`` (its working folder ``cwd``) in this process, or call
# ``spawn()`` to let DVC start it as a subprocess as it normally would.
Hook = Callable[[str, str, Callable[[], None]], None]


def _target() -> Any:
    import dvc.stage.run as dvc_run

    return dvc_run


def _names(function: Any) -> tuple[str, ...]:
    """The global names ``function``'s code refers to (what it calls), or () for no function."""
    code = getattr(function, "__code__", None)
    return tuple(code.co_names) if code is not None else ()


def check() -> None:
    """Raise :class:`StageError` naming the DVC version when ``dvc.stage.run._run`` is not the
    function this adapter wraps: ``_run(executable, cmd, **kwargs)`` called by ``cmd_run``."""
    import dvc

    module = _target()
    run = getattr(module, "_run", None)
    params = list(inspect.signature(run).parameters.values()) if callable(run) else []
    shape = [(p.name, p.kind) for p in params]
    expected = [
        ("executable", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("cmd", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("kwargs", inspect.Parameter.VAR_KEYWORD),
    ]
    from dvc.repo import Repo

    waits = "_wait_for_lock" in inspect.signature(Repo.__init__).parameters
    # The names cmd_run's code refers to, not its source text: reading the source costs a
    # linecache scan of the module on every run (about 50 ms), the code object is at hand.
    calls = "_run" in _names(getattr(module, "cmd_run", None))
    if shape != expected or not calls or not waits:
        raise StageError(
            f"DVC {dvc.__version__} changed dvc.stage.run._run or Repo(_wait_for_lock=...), which Shipyard "
            f"uses to run stages in-process and to wait for the repository lock (found {shape or 'nothing'})",
            where="packages/shipyard-engine/src/shipyard/engine/dvc_adapter.py",
            fix="pin the DVC version in requirements.lock that this adapter was written for, or update the "
            "adapter; `shipyard train --subprocess` runs every stage as DVC does meanwhile",
        )


@contextlib.contextmanager
def stage_runner(hook: Hook) -> Iterator[None]:
    """Within the block, every stage command DVC runs goes through ``hook``, and DVC updates
    ``dvc.lock`` files with its fast loader (:func:`_fast_lock_updates`)."""
    check()
    module = _target()
    original = module._run

    def _run(executable: Any, cmd: str, **kwargs: Any) -> None:
        hook(cmd, str(kwargs.get("cwd") or "."), lambda: original(executable, cmd, **kwargs))

    module._run = _run
    try:
        with _parsed_once(), _fast_lock_updates(), _lock_dumped_by_stage():
            yield
    finally:
        module._run = original


# Parses kept by :func:`_parsed_once`: (text) -> data, the few most recent texts; the store
# itself while its block is open, so that a dvc.lock just written is not parsed back.
_PARSES_KEPT = 8
_KEPT: dict[str, Any] | None = None


@contextlib.contextmanager
def _parsed_once() -> Iterator[None]:
    """Within the block, DVC parses each distinct YAML text once (safe loader only).

    In one run DVC reads the project's ``params.yaml`` three times per stage (saving its params,
    the stage's run-cache entry, its lock entry), each a fresh parse of the same text with
    ruamel. The parse of a text is a function of the text, so it is kept, keyed by the text
    itself, and every caller gets its own deep copy (DVC edits what it loads). A file that
    changes has a new text and is parsed again. Round-trip parses (``dvc.yaml`` kept with its
    comments) are not kept. When a DVC release no longer parses through these names, nothing is
    swapped and DVC runs as is.
    """
    import copy

    from dvc.utils import strictyaml
    from dvc.utils.serialize import _yaml

    original = getattr(_yaml, "parse_yaml", None)
    if original is None or getattr(strictyaml, "parse_yaml", None) is not original:
        yield
        return
    global _KEPT
    kept: dict[str, Any] = {}

    def parse_yaml(text: str, path: str, typ: str = "safe") -> Any:
        if typ != "safe":
            return original(text, path, typ=typ)
        if text not in kept:
            if len(kept) >= _PARSES_KEPT:
                kept.pop(next(iter(kept)))
            kept[text] = original(text, path, typ=typ)
        return copy.deepcopy(kept[text])

    _yaml.parse_yaml = strictyaml.parse_yaml = parse_yaml
    _KEPT = kept
    try:
        yield
    finally:
        _yaml.parse_yaml = strictyaml.parse_yaml = original
        _KEPT = None


def _as_parsed(value: Any) -> Any:
    """Plain data as a safe parse of its YAML gives it back (mappings as plain dicts)."""
    if isinstance(value, dict):
        return {k: _as_parsed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_parsed(v) for v in value]
    return value


@contextlib.contextmanager
def _fast_lock_updates() -> Iterator[None]:
    """Within the block, DVC reads a ``dvc.lock`` it is about to update with its plain (libyaml)
    loader instead of the round-trip one.

    DVC rewrites the lock after every stage (so a killed run keeps what finished): it parses the
    whole file with ruamel's pure-Python round-trip loader, which keeps comments and quoting, then
    dumps it. ``dvc.lock`` is written by DVC's own dumper from plain data, so loading it as plain
    data and dumping it again gives the same text (tests compare the bytes with DVC's own), for a
    third of the cost. Only ``dvc.lock`` files: a ``dvc.yaml`` a person wrote keeps its comments.
    When a DVC release no longer updates files this way, nothing is swapped and DVC runs as is.
    """
    from dvc.utils.serialize import _yaml

    modify = getattr(getattr(_yaml, "modify_yaml", None), "__wrapped__", None)
    original = getattr(_yaml, "parse_yaml_for_update", None)
    plain = getattr(_yaml, "parse_yaml", None)
    if original is None or plain is None or "parse_yaml_for_update" not in _names(modify):
        yield
        return

    def parse_yaml_for_update(text: str, path: str) -> Any:
        return plain(text, path) if Path(path).name == "dvc.lock" else original(text, path)

    _yaml.parse_yaml_for_update = parse_yaml_for_update
    try:
        yield
    finally:
        _yaml.parse_yaml_for_update = original


_PLAIN_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> bool:
    """Only builtin containers and scalars: ruamel's own scalar types carry formatting that their
    ``repr`` does not show, so the text of such an entry is never kept."""
    kind = type(value)
    if kind in (dict, OrderedDict, list):
        items = value.items() if kind is not list else enumerate(value)
        return all(type(k) in _PLAIN_SCALARS and _plain(v) for k, v in items)
    return kind in _PLAIN_SCALARS


@contextlib.contextmanager
def _lock_dumped_by_stage() -> Iterator[None]:
    """Within the block, DVC's dump of a whole ``dvc.lock`` emits only the stages that changed.

    DVC rewrites the lock after every stage with ruamel's pure-Python round-trip emitter, all of
    it each time (about 55 ms for a project's nine stages). In block style the text of
    ``{schema, stages: {a, b, ...}}`` is the text of ``{schema}``, then ``stages:``, then each
    stage's own block, each emitted the same wherever it stands; so each stage's block is kept,
    keyed by its name and content, and only a new or changed stage is emitted. An entry that is
    not plain data, or whose text holds an anchor, and any other file or shape, is dumped by
    DVC as is (tests compare the bytes with DVC's own). The data written is also what the next
    update's parse of that text returns (:func:`_parsed_once`), so it is not parsed back.
    """
    import io

    from dvc.utils.serialize import _yaml

    original = getattr(_yaml, "_dump", None)
    if original is None:
        yield
        return
    blocks: dict[tuple[str, str], str] = {}

    def text_of(data: Any) -> str:
        buffer = io.StringIO()
        original(data, buffer)
        return buffer.getvalue()

    def block(name: str, entry: Any) -> str | None:
        key = (name, repr(entry))
        if key not in blocks:
            text = text_of({"stages": {name: entry}})
            if not text.startswith("stages:\n  ") or "&id" in text:
                return None
            if len(blocks) > 256:
                blocks.clear()
            blocks[key] = text.removeprefix("stages:\n")
        return blocks[key]

    def _dump(data: Any, stream: Any) -> Any:
        stages = data.get("stages") if type(data) is dict and list(data) == ["schema", "stages"] else None
        if type(stages) is not dict or not stages or not _plain(data):
            return original(data, stream)
        parts = [block(str(name), entry) for name, entry in stages.items()]
        if any(part is None for part in parts):
            return original(data, stream)
        text = text_of({"schema": data["schema"]}) + "stages:\n" + "".join(p for p in parts if p)
        stream.write(text)
        if _KEPT is not None:
            # DVC reads the lock back before its next update: what it wrote is what it will read.
            _KEPT[text] = _as_parsed(data)
        return None

    _yaml._dump = _dump
    try:
        yield
    finally:
        _yaml._dump = original


def open_repo(root: Path) -> Any:
    """DVC's ``Repo`` at ``root``, waiting for the repository lock as ``dvc repro --wait-for-lock``
    does. Two projects train at once: each run holds DVC's lock only for the bookkeeping between
    stages (stage commands run unlocked), and on a busy machine that can outlast DVC's default
    3-second wait, which would fail the other run."""
    from dvc.repo import Repo

    return Repo(str(root), _wait_for_lock=True)


def track_file(root: Path, path: Path) -> None:
    """``dvc add`` one file: DVC caches it and writes ``<path>.dvc`` (git keeps the pointer) and
    the folder's ``.gitignore`` entry."""
    repo = open_repo(root)
    try:
        # DVC would log its own "to track the changes with git, run ..." hint; the caller says it.
        repo.scm_context.quiet = True
        repo.add(str(path.relative_to(root)))
    finally:
        repo.close()
