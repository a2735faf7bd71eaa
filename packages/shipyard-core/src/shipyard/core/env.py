"""The process environment, changed for a block only: Shipyard runs in-process too (a notebook,
a search worker, a test), and what it sets there must not leak into the caller's later
subprocesses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def env_default(name: str, value: str) -> Iterator[None]:
    """``name`` set to ``value`` for the block unless the environment already sets it; afterwards
    the environment is as it was."""
    if name in os.environ:
        yield
        return
    os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)
