"""The retraining trigger: the ``monitor.trigger`` rule over successive windows, with a cooldown
and a persisted state (a JSON file), judged at a time the caller gives (a fake clock in tests).

It fires when the share of drifted features reached ``drift_share`` in ``windows`` consecutive
judged windows, or the live metric fell more than ``max_drop`` below validation, or production
is older than ``max_age``; not again before ``cooldown`` has passed since it last fired. Every
firing is recorded with its reasons; what it does (alert, retrain) is the caller's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from shipyard.core.rules import parse_duration
from shipyard.core.schema import TriggerConf

__all__ = ["Decision", "TriggerState", "decide"]

_KEEP_WINDOWS = 50
_KEEP_FIRINGS = 100


@dataclass
class TriggerState:
    windows: list[dict[str, Any]] = field(default_factory=list)  # judged windows, oldest first
    last_fired: str | None = None
    firings: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> TriggerState:
        if not path.is_file():
            return cls()
        from shipyard.core.errors import DataError

        try:
            data = json.loads(path.read_text())
            return cls(list(data["windows"]), data.get("last_fired"), list(data.get("firings", [])))
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(
                f"the trigger's state {path} is damaged: {exc}",
                where=str(path),
                fix="delete it (the trigger then starts counting windows afresh)",
            ) from exc

    def save(self, path: Path) -> None:
        from shipyard.core.atomic import write_json

        write_json(
            path,
            {
                "windows": self.windows[-_KEEP_WINDOWS:],
                "last_fired": self.last_fired,
                "firings": self.firings[-_KEEP_FIRINGS:],
            },
        )


@dataclass
class Decision:
    fired: bool
    reasons: list[str]  # why the rule holds now (empty: it does not)
    cooling_until: str | None  # the rule holds but the cooldown keeps it from firing
    summary: str
    consecutive: int


def _consecutive(windows: list[dict[str, Any]], share: float) -> int:
    count = 0
    for window in reversed(windows):
        if window["drift_share"] < share:
            break
        count += 1
    return count


def decide(
    state: TriggerState,
    window: dict[str, Any],
    conf: TriggerConf,
    *,
    now: datetime,
    production_age: timedelta | None,
    max_age: str | None,
) -> Decision:
    """Record ``window`` (its verdict: ``judged``, ``drift_share``, ``labels``; keyed by its
    ``since``/``until``, so judging the same window twice counts it once) and decide."""
    key = f"{window['window']['since']}/{window['window']['until']}"
    if window.get("judged"):
        entry = {"window": key, "drift_share": float(window["drift_share"]), "at": now.isoformat()}
        state.windows = [w for w in state.windows if w["window"] != key] + [entry]
    reasons: list[str] = []
    consecutive = 0
    if conf.drift_share is not None:
        consecutive = _consecutive(state.windows, conf.drift_share)
        if window.get("judged") and consecutive >= conf.windows:
            reasons.append(
                f"drifted features reached {conf.drift_share:.0%} in {consecutive} consecutive window(s) "
                f"(rule: {conf.windows}); this window: {window['drift_share']:.0%}"
            )
    drops = (window.get("labels") or {}).get("drops", {})
    if conf.metric is not None and conf.max_drop is not None and conf.metric in drops:
        if drops[conf.metric] > conf.max_drop:
            reasons.append(f"live {conf.metric} is {drops[conf.metric]:.4f} below validation (rule: {conf.max_drop})")
    limit = conf.max_age or max_age
    if limit and production_age is not None and production_age.total_seconds() > parse_duration(limit, "max_age"):
        reasons.append(f"production is {production_age.days} day(s) old (rule: max_age {limit})")
    if not reasons:
        return Decision(False, [], None, f"quiet ({consecutive} drifted window(s) in a row)", consecutive)
    cooldown = timedelta(seconds=parse_duration(conf.cooldown, "monitor.trigger.cooldown"))
    if state.last_fired is not None:
        until = datetime.fromisoformat(state.last_fired) + cooldown
        if now < until:
            return Decision(
                False, reasons, until.isoformat(), f"holds, cooling down until {until.isoformat()}", consecutive
            )
    state.last_fired = now.isoformat()
    state.firings.append({"at": now.isoformat(), "window": key, "reasons": reasons, "action": str(conf.action)})
    # A firing starts the count afresh: the same drifted windows do not fire it again.
    state.windows = []
    return Decision(True, reasons, None, f"FIRED ({conf.action}): " + "; ".join(reasons), consecutive)
