"""Kedro's project settings for a Shipyard repository (see :mod:`shipyard.engine.kedro_project`).

``conf/`` holds Hydra's config groups, not Kedro's ``base``/``local`` environments: the config
loader here builds the catalog and the parameters from the compiled pipelines instead.
"""

from __future__ import annotations

from shipyard.engine.kedro_project._project import DvcNotice, ShipyardConfigLoader, ShipyardContext

CONFIG_LOADER_CLASS = ShipyardConfigLoader
CONTEXT_CLASS = ShipyardContext
HOOKS = (DvcNotice(),)
