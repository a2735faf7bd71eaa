"""The advice every deployment target gives when its copy of a model bundle is damaged."""

from __future__ import annotations

__all__ = ["rebuild_fix"]


def rebuild_fix(project: str, target: str) -> str:
    """How to replace a deployed bundle whose weights fail their hash: build it again from the
    registry's copy (DVC's cache at the version's commit), never by hand."""
    return f"rebuild it from the registry: make deploy PROJECT={project} TARGET={target}"
