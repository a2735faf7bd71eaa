"""Kedro's pipeline registry: one pipeline per compiled project, plus ``__default__`` (all)."""

from __future__ import annotations

from shipyard.engine.kedro_project._project import register_pipelines

__all__ = ["register_pipelines"]
