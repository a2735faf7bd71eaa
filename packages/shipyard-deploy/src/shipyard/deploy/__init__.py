"""Shipyard deploy: ship a model bundle as a BentoML service, a batch job or a LiteRT edge model.

Each target lives in its own subpackage (``service``, ``batch``, ``edge``); none imports
Lightning, and each imports its heavy library (bentoml, dask, litert) only when used.
"""

from __future__ import annotations

__all__: list[str] = []
