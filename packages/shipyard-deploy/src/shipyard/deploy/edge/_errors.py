"""Errors of the edge target. Both are :class:`ShipyardError`, so the CLI prints one message
(where, key, value, fix) and exits non-zero without a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.core.errors import ShipyardError

__all__ = ["EdgeError", "EdgeExportError", "ParityError"]


class EdgeError(ShipyardError):
    """Base class of the edge target's errors."""

    kind = "edge error"


class EdgeExportError(EdgeError):
    """The model cannot be converted to LiteRT (an op without a lowering, a quantizer failure)."""

    exit_code = 2
    kind = "edge export error"


class ParityError(EdgeError):
    """A LiteRT variant does not compute what the torch bundle computes, within tolerance.

    ``report`` is the parity report (also written to ``report_path``)."""

    exit_code = 1
    kind = "edge parity gate failed"

    def __init__(self, message: str, *, report: dict[str, Any], report_path: Path, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.report = report
        self.report_path = report_path
