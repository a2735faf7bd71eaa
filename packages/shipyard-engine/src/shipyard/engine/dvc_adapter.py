"""The one place Shipyard reaches into DVC's internals: running stage commands in-process.

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
from collections.abc import Callable, Iterator
from typing import Any

from shipyard.core.errors import StageError

__all__ = ["Hook", "check", "stage_runner"]

# hook(cmd, cwd, spawn): run ``cmd`` (its working folder ``cwd``) in this process, or call
# ``spawn()`` to let DVC start it as a subprocess as it normally would.
Hook = Callable[[str, str, Callable[[], None]], None]


def _target() -> Any:
    import dvc.stage.run as dvc_run

    return dvc_run


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
    if shape != expected or "_run(" not in inspect.getsource(module.cmd_run):
        raise StageError(
            f"DVC {dvc.__version__} changed dvc.stage.run._run, which Shipyard wraps to run stages in-process "
            f"(found {shape or 'nothing'})",
            where="packages/shipyard-engine/src/shipyard/engine/dvc_adapter.py",
            fix="pin the DVC version in requirements.lock that this adapter was written for, or update the "
            "adapter; `shipyard train --subprocess` runs every stage as DVC does meanwhile",
        )


@contextlib.contextmanager
def stage_runner(hook: Hook) -> Iterator[None]:
    """Within the block, every stage command DVC runs goes through ``hook``."""
    check()
    module = _target()
    original = module._run

    def _run(executable: Any, cmd: str, **kwargs: Any) -> None:
        hook(cmd, str(kwargs.get("cwd") or "."), lambda: original(executable, cmd, **kwargs))

    module._run = _run
    try:
        yield
    finally:
        module._run = original
