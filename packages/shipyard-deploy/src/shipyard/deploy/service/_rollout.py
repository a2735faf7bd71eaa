"""A rollout inside one service worker: production and one candidate, side by side.

``canary``: each row goes to the candidate when the hash of its sticky key (the row key, or a
request header the front door copies into the rows) falls in the candidate's share, so one
caller always meets one model; the answer's ``model_version`` says which model answered. A
candidate that fails on a batch gives those rows back to production: a request never fails
because of the candidate.

``shadow``: production answers; the candidate scores the same rows afterwards on one background
thread at the lowest CPU priority, off the answer path, through a bounded queue: its latency
never delays an answer, its exceptions are counted and logged, and batches that find the queue
full are dropped and counted (``shipyard_rollout_shadow_dropped_rows_total`` in ``/metrics``).

Both models' predictions go to the project's prediction log through :func:`record`, the one
place this module writes the log, with the rollout's own columns (request id, role, latency,
whether the row was answered) that ``shipyard compare`` reads back.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = [
    "ANSWERED",
    "LATENCY_MS",
    "REQUEST",
    "ROLE",
    "STICKY_FIELD",
    "Rollout",
    "canary_share",
    "in_candidate_share",
    "open_logs",
]

log = logging.getLogger("bentoml.shipyard")

# The rollout's columns in the prediction log, beside the log's own (predlog.META_COLUMNS).
REQUEST = "_request"  # one id per scored row, the same in the production and candidate records
ROLE = "_role"  # production | candidate
LATENCY_MS = "_latency_ms"  # the model's time on the batch the row was scored in
ANSWERED = "_answered"  # whether this record is the answer the caller got
# The row field a header-sticky canary copies the header's value into (the front door does it).
STICKY_FIELD = "_sticky_key"
_BUCKETS = 10_000


def in_candidate_share(key: Any, share: float) -> bool:
    """Whether a row with this sticky key goes to the candidate: a stable hash of the key (the
    same in every worker, process and restart), not a random draw per request."""
    digest = hashlib.blake2b(str(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % _BUCKETS < round(share * _BUCKETS)


def canary_share(keys: Sequence[Any], share: float) -> float:
    """The share of ``keys`` the candidate would answer (for reports and tests)."""
    return sum(in_candidate_share(k, share) for k in keys) / max(len(keys), 1)


def _take(columns: Mapping[str, Any], index: Sequence[int]) -> dict[str, Any]:
    return {name: [values[i] for i in index] for name, values in columns.items()}


class _Counters:
    """Prometheus counters in BentoML's /metrics (its multiprocess registry collects them)."""

    def __init__(self) -> None:
        from prometheus_client import Counter

        self.dropped = Counter(
            "shipyard_rollout_shadow_dropped_rows", "shadow rows the candidate never scored: its queue was full"
        )
        self.failed = Counter("shipyard_rollout_candidate_failed_rows", "rows the candidate failed on", ["mode"])
        self.rows = Counter(
            "shipyard_rollout_rows", "rows scored in the rollout, by the model that scored them", ["role"]
        )


_COUNTERS: list[_Counters] = []


def _counters() -> _Counters:
    # One set per process: Prometheus refuses a second registration of the same name.
    if not _COUNTERS:
        _COUNTERS.append(_Counters())
    return _COUNTERS[0]


class Rollout:
    """Routing, shadow scoring and logging for one worker; see the module's description."""

    def __init__(
        self,
        plan: Mapping[str, Any],
        production: Any,
        candidate: Any,
        versions: tuple[str, str],
        results: Callable[[Any, Any, str], list[Any]],
        logs: Mapping[str, Any] | None,
    ) -> None:
        self.mode = str(plan["mode"])
        self.share = float(plan["share"])
        self.production, self.candidate = production, candidate
        self.versions = versions
        self.results = results
        self.logs = logs or {}
        self.counters = _counters()
        self._slots = threading.BoundedSemaphore(int(plan["shadow_queue"]))
        self._shadow = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="shipyard-shadow", initializer=_yield_to_answers
        )

    # -- the answer path ---------------------------------------------------------------------
    def score(self, columns: Mapping[str, Any], keys: Sequence[Any]) -> list[Any]:
        if self.mode == "canary":
            return self._canary(columns, keys)
        started = time.perf_counter()
        scores = self.production.predict_scores(columns)
        latency = (time.perf_counter() - started) * 1000
        answers = self.results(self.production, scores, self.versions[0])
        requests = [uuid.uuid4().hex for _ in keys]
        self.counters.rows.labels("production").inc(len(keys))
        self.record("production", columns, scores, keys, requests, latency, answered=True)
        if self._slots.acquire(blocking=False):
            self._shadow.submit(self._score_shadow, columns, keys, requests)
        else:
            self.counters.dropped.inc(len(keys))
        return answers

    def _canary(self, columns: Mapping[str, Any], keys: Sequence[Any]) -> list[Any]:
        chosen = [k is not None and in_candidate_share(k, self.share) for k in keys]
        answers: list[Any] = [None] * len(keys)
        to_candidate = [i for i, c in enumerate(chosen) if c]
        if to_candidate:
            failed = self._answer("candidate", columns, keys, to_candidate, answers)
            if failed:
                self.counters.failed.labels("canary").inc(len(to_candidate))
                to_candidate = []
        taken = set(to_candidate)
        rest = [i for i in range(len(keys)) if i not in taken]
        if rest:
            self._answer("production", columns, keys, rest, answers)
        return answers

    def _answer(
        self, role: str, columns: Mapping[str, Any], keys: Sequence[Any], index: list[int], out: list[Any]
    ) -> bool:
        """Score rows ``index`` with one model into ``out``; True when the candidate failed."""
        bundle, version = (
            (self.candidate, self.versions[1]) if role == "candidate" else (self.production, self.versions[0])
        )
        part = _take(columns, index) if len(index) < len(keys) else dict(columns)
        started = time.perf_counter()
        try:
            scores = bundle.predict_scores(part)
        except Exception as exc:
            # The candidate must never fail a request; production's errors propagate as always.
            if role != "candidate":
                raise
            log.warning("rollout: candidate %s failed on %d row(s), production answered: %s", version, len(index), exc)
            return True
        latency = (time.perf_counter() - started) * 1000
        for i, answer in zip(index, self.results(bundle, scores, version), strict=True):
            out[i] = answer
        part_keys = [keys[i] for i in index]
        self.counters.rows.labels(role).inc(len(index))
        self.record(role, part, scores, part_keys, [uuid.uuid4().hex for _ in index], latency, answered=True)
        return False

    # -- off the answer path -----------------------------------------------------------------
    def _score_shadow(self, columns: Mapping[str, Any], keys: Sequence[Any], requests: list[str]) -> None:
        try:
            started = time.perf_counter()
            scores = self.candidate.predict_scores(columns)
            latency = (time.perf_counter() - started) * 1000
            self.counters.rows.labels("candidate").inc(len(keys))
            self.record("candidate", columns, scores, keys, requests, latency, answered=False)
        except Exception as exc:  # noqa: BLE001 - a failing shadow candidate is counted and reported, never raised
            self.counters.failed.labels("shadow").inc(len(keys))
            log.warning("rollout: shadow candidate %s failed on %d row(s): %s", self.versions[1], len(keys), exc)
        finally:
            self._slots.release()

    def record(
        self,
        role: str,
        columns: Mapping[str, Any],
        scores: Any,
        keys: Sequence[Any],
        requests: list[str],
        latency_ms: float,
        *,
        answered: bool,
    ) -> None:
        """Both models' predictions into the prediction log, with the rollout's columns."""
        sink = self.logs.get(role)
        if sink is None:
            return
        bundle = self.candidate if role == "candidate" else self.production
        labels = bundle.labels(scores)
        rows = len(labels)
        extra = {
            REQUEST: requests,
            ROLE: [role] * rows,
            LATENCY_MS: [float(latency_ms)] * rows,
            ANSWERED: [answered] * rows,
        }
        score = _score_column(bundle.task, scores)
        sink.log(columns, labels, score, keys=[None if k is None else str(k) for k in keys], extra=extra)

    def close(self) -> None:
        """Finish the shadow batch in progress (queued ones are dropped), then flush the logs."""
        self._shadow.shutdown(wait=True, cancel_futures=True)
        for sink in self.logs.values():
            sink.close()


def _yield_to_answers() -> None:
    """Run the shadow thread at the lowest CPU priority (Linux nices threads one by one): when
    cores are scarce, production's answers get the CPU and the candidate takes what is left."""
    import os

    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux, or not allowed: the bounded queue still protects answers
        log.info("rollout: could not lower the shadow thread's priority")


def _score_column(task: str, scores: Any) -> Any:
    """One number per row: the positive class's probability, the top class's, or the value."""
    import numpy as np

    values = np.asarray(scores, dtype=np.float64)
    return values.max(axis=1) if values.ndim == 2 else values


def open_logs(spec: Mapping[str, Any], out_dir: Path, features: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The prediction logs of a rollout: one per model, both into the project's log (the
    location the build recorded, or ``$SHIPYARD_PREDICTION_LOG``). Empty when logging is off."""
    settings = spec.get("prediction_log")
    rollout = spec.get("rollout")
    if not settings or not rollout or not settings.get("enabled", True):
        return {}
    # Imported here, before the worker serves: the writer thread would otherwise import them
    # while BentoML's batching looks pandas up in sys.modules (a half-imported module there).
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401
    from shipyard.deploy._paths import repo_root
    from shipyard.predlog import open_log, resolve_location

    location = resolve_location(settings.get("path"), settings.get("url"), repo_root(out_dir) or out_dir)
    # Every row of a rollout is logged (no sampling): compare pairs each production record with
    # the candidate's record of the same row, and two independent draws would rarely pair.
    options = {k: settings[k] for k in ("flush_rows", "flush_seconds", "queue_rows") if k in settings}
    dropped = _counters()
    versions = {"production": str(spec["model_version"]), "candidate": str(rollout["candidate"]["model_version"])}

    def count(rows: int) -> None:
        dropped.failed.labels("log").inc(rows)

    return {
        role: open_log(
            location,
            features,
            task=str(spec["task"]),
            source="service",
            model_version=version,
            block=False,
            on_drop=count,
            **options,
        )
        for role, version in versions.items()
    }
