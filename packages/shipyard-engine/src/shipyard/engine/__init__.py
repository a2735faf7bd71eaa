"""Shipyard engine: Kedro pipelines, the DVC compiler and the ``shipyard`` CLI.

Kept import-light: ``shipyard --help`` must answer in well under half a second.
"""

from __future__ import annotations

__all__: list[str] = []
