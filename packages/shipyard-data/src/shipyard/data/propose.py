"""A first project config proposed from a table (``shipyard new``): the task, a key, each
column's role (:mod:`shipyard.data.roles`) and the split, every choice with its reason in words
so that the YAML it becomes can say why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shipyard.core.errors import DataError, did_you_mean
from shipyard.data.roles import Role, infer_role

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MAX_CLASSES", "Proposal", "propose"]

# A target with at most this many distinct whole-number values is classes, not a quantity.
MAX_CLASSES = 20


@dataclass
class Proposal:
    target: str
    task: str
    task_reason: str
    rows: int
    key: str | None = None
    key_reason: str = ""
    roles: dict[str, Role] = field(default_factory=dict)
    unlabeled: int = 0
    classes: dict[str, int] = field(default_factory=dict)
    split: dict[str, object] = field(default_factory=dict)
    split_reason: str = ""
    # Columns emptier than checks.max_null_fraction allows: the default data check would fail.
    sparse: dict[str, str] = field(default_factory=dict)

    def columns(self, role: str) -> list[str]:
        return [c for c, r in self.roles.items() if r.role == role]


def _task(y: pd.Series, target: str) -> tuple[str, str]:
    import pandas as pd

    api = pd.api.types
    present = y.dropna()
    distinct = int(present.nunique())
    if distinct < 2:
        raise DataError(
            f"target column {target!r} has {distinct} distinct value(s): nothing to learn",
            key="--target",
            value=target,
            fix="pick the column that holds the label",
        )
    if distinct == 2:
        return "binary", f"the target has two values ({', '.join(sorted(map(str, present.unique())))})"
    whole = api.is_integer_dtype(present) or (api.is_float_dtype(present) and bool((present == present.round()).all()))
    if api.is_numeric_dtype(present) and not api.is_bool_dtype(present) and not (whole and distinct <= MAX_CLASSES):
        return "regression", f"the target is numbers with {distinct} distinct values"
    return "multiclass", f"the target has {distinct} classes"


def _key(frame: pd.DataFrame, roles: dict[str, Role]) -> tuple[str | None, str]:
    """An identifier column without nulls, preferring one whose name says id or key."""
    candidates = [
        c for c, r in roles.items() if r.role == "identifier" and not frame[c].isna().any() and frame[c].is_unique
    ]
    named = [c for c in candidates if any(w in str(c).lower() for w in ("id", "key", "ref", "number"))]
    chosen = (named or candidates or [None])[0]
    if chosen is None:
        return None, "no column has one value per row: Shipyard numbers the rows (row_id)"
    return chosen, f"one distinct value per row, no missing values ({roles[chosen].reason})"


def propose(
    frame: pd.DataFrame,
    target: str,
    *,
    task: str | None = None,
    time_split: bool = False,
    time_column: str | None = None,
    max_categories: int = 50,
) -> Proposal:
    """The proposal for ``frame`` with label ``target``. ``time_split`` (or a ``time_column``)
    asks for a time split on the (first) date/time column."""
    columns = [str(c) for c in frame.columns]
    if target not in frame.columns:
        raise DataError(
            f"--target {target!r} is not a column of the data{did_you_mean(target, columns)}",
            key="--target",
            value=target,
            fix="pass one of: " + ", ".join(columns[:20]),
        )
    found_task, reason = _task(frame[target], target)
    if task is not None and task != found_task:
        reason = f"--task {task} (the data alone suggests {found_task}: {reason})"
    proposal = Proposal(target=target, task=task or found_task, task_reason=reason, rows=len(frame))
    proposal.roles = {c: infer_role(frame[c], max_categories) for c in frame.columns if c != target}
    proposal.key, proposal.key_reason = _key(frame, proposal.roles)
    from shipyard.core.schema import ChecksConf

    limit = ChecksConf().max_null_fraction
    for column in proposal.roles:
        share = float(frame[column].isna().mean())
        if share > limit:
            proposal.sparse[column] = f"{share:.0%} empty (the data check allows {limit:.0%}: checks.max_null_fraction)"
    proposal.unlabeled = int(frame[target].isna().sum())
    if proposal.task != "regression":
        counts = frame[target].dropna().astype(str).value_counts()
        proposal.classes = {str(k): int(v) for k, v in counts.items()}
    dates = proposal.columns("datetime")
    if time_column is not None and time_column not in proposal.roles:
        raise DataError(
            f"--time-column {time_column!r} is not a column of the data{did_you_mean(time_column, columns)}",
            key="--time-column",
            value=time_column,
            fix="pass a date/time column: " + (", ".join(dates) or "the data has none"),
        )
    if time_split or time_column:
        column = time_column or (dates[0] if dates else None)
        if column is None:
            raise DataError(
                "a time split needs a date/time column, and the data has none",
                key="--time-split",
                fix="drop --time-split (the split is then "
                + ("random" if proposal.task == "regression" else "stratified")
                + "), or name an ordered column with --time-column",
            )
        proposal.split = {"kind": "time", "time_column": column}
        proposal.split_reason = f"asked for: train on the earliest rows of {column!r}, test on the latest"
    else:
        kind = "random" if proposal.task == "regression" else "stratified"
        proposal.split_reason = f"auto: {kind} for {proposal.task}" + (
            f"; {dates[0]!r} holds dates: `--time-split` would test on the latest rows instead" if dates else ""
        )
    return proposal
