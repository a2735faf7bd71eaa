"""Shipyard registry: versions, stages, lineage, promote and rollback.

A model version is a git tag made with DVC's GTO (``<team>/<name>@vN.0.0``) on a commit that
holds the project's compiled pipeline, its ``dvc.lock`` (content hashes of data, code and the
model bundle) and its model card (``pipelines/<team>/<name>/model_card.json``: lineage, metrics,
gate verdict). Stages are GTO assignment tags (``<team>/<name>#production#N``), read through
GTO, so edits made with GTO's own CLI are honoured; the history of every promotion and rollback
stays in git, and a rollback walks back through it.
"""

from __future__ import annotations

from shipyard.registry._registry import (
    STAGES,
    Registry,
    RegistryError,
    Version,
    registration_paths,
)

__all__ = ["STAGES", "Registry", "RegistryError", "Version", "registration_paths"]
