"""Shipyard search: multi-objective Optuna studies declared in ``conf/search/<name>.yaml``.

Objectives are metrics the evaluate stage produces (validation quality, latency, size), each
with a direction; constraints (``latency_p95_ms <= 5``) reach the sampler through Optuna's
``constraints_func``; the space ranges over model, optimiser and trainer keys and over model or
trainer options. Each trial trains and evaluates in-process through the same code as
``make train``, on the training and validation splits only. A selection rule picks one trial,
written as the experiment layer ``conf/experiment/search/<team>/<name>.yaml``, which is then
trained once more and evaluated once on the test split.

Importing this package is cheap: Optuna, torch and Lightning load when a search runs.
"""

from __future__ import annotations

from shipyard.search._api import SearchResult, prepare, run_search, search_folder
from shipyard.search._dashboard import dashboard, study_storage
from shipyard.search._errors import SearchError, TrialFailed
from shipyard.search._results import TrialRecord, pareto_front, select_trial
from shipyard.search._spec import SearchSpec, known_metrics, search_spec
from shipyard.search._trial import load_search_data, load_test_split

__all__ = [
    "SearchError",
    "SearchResult",
    "SearchSpec",
    "TrialFailed",
    "TrialRecord",
    "dashboard",
    "known_metrics",
    "load_search_data",
    "load_test_split",
    "pareto_front",
    "prepare",
    "run_search",
    "search_folder",
    "search_spec",
    "select_trial",
    "study_storage",
]
