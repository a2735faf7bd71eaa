"""Error types shared by every Shipyard package.

Every mistake a user can make (config, data, request, CLI argument) is raised as a
:class:`ShipyardError` carrying *where* (file or override), *what* (key and bad value) and
*how to fix it*. The CLI prints :meth:`ShipyardError.render` and exits with ``exit_code``;
a traceback is shown only with ``--verbose``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ConfigError",
    "DataError",
    "ShipyardError",
    "StageError",
    "did_you_mean",
    "report",
]


class ShipyardError(Exception):
    """Base class of every error Shipyard raises on purpose."""

    exit_code = 1
    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        key: str | None = None,
        value: object = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.key = key
        self.value = value
        self.fix = fix

    def render(self) -> str:
        lines = [f"{self.kind}: {self.message}"]
        if self.where:
            lines.append(f"  in: {self.where}")
        if self.key:
            lines.append(f"  key: {self.key}")
        if self.value is not None:
            lines.append(f"  value: {self.value!r}")
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


class ConfigError(ShipyardError):
    """A project's configuration (YAML, override or CLI argument) is wrong."""

    exit_code = 2
    kind = "config error"


class DataError(ShipyardError):
    """Input data is missing, unreadable or does not match what the config declares."""

    exit_code = 2
    kind = "data error"


class StageError(ShipyardError):
    """A pipeline stage failed for a reason that is not the user's input."""

    exit_code = 1
    kind = "stage error"


def report(exc: BaseException, *, verbose: bool) -> int:
    """Print ``exc`` the way every Shipyard command does and return the exit code: a user's
    mistake as its one rendered message, anything else as an internal error; the traceback
    only with ``--verbose``."""
    import sys
    import traceback

    if verbose:
        traceback.print_exception(exc)
    if isinstance(exc, ShipyardError):
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    print(f"internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
    if not verbose:
        print("  rerun with --verbose for the traceback", file=sys.stderr)
    return 1


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ``' (did you mean "x"?)'`` for the closest choice, or an empty string."""
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{matches[0]}"?)' if matches else ""
