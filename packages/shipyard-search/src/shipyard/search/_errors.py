"""The search package's errors (config mistakes are :class:`shipyard.core.errors.ConfigError`)."""

from __future__ import annotations

from shipyard.core.errors import ShipyardError

__all__ = ["SearchError", "TrialFailed"]


class SearchError(ShipyardError):
    """A search could not run, or no trial can be chosen (not a config mistake)."""

    exit_code = 1
    kind = "search error"


class TrialFailed(SearchError):
    """One trial produced no usable result (NaN metrics, diverged weights): it is recorded as
    failed and the search goes on."""
