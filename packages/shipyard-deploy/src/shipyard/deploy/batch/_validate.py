"""Row checks against the bundle's feature schema: the rows that fail go to the rejects file.

Checks run vectorised per column; a reason is formatted only for the (few) rejected rows. The
first failing check of a row is its reason. A missing column is not a row problem: the planner
fails the whole job before any part is scored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from shipyard.core.features import Preprocessor
    from shipyard.core.schema import RejectConf

__all__ = ["Checked", "RowChecks"]

Reason = Callable[[int], str]


@dataclass
class Checked:
    numeric: dict[str, np.ndarray]  # numeric features as float64 (text converted)
    bad: np.ndarray | None  # rejected rows (bool mask), None when every row passed
    reasons: list[str]  # one per rejected row, in row order


class RowChecks:
    """The checks of one bundle's feature schema under one reject policy."""

    def __init__(self, schema: list[dict[str, Any]], pre: Preprocessor, rules: RejectConf) -> None:
        self.pre = pre
        self.rules = rules
        self.numeric = [f for f in schema if f.get("dtype") not in ("category", "datetime")]
        self.categorical = [f["name"] for f in schema if f.get("dtype") == "category"]
        self.datetime = [f["name"] for f in schema if f.get("dtype") == "datetime"]

    def check(self, columns: dict[str, np.ndarray], rows: int, key: str | None) -> Checked:
        import numpy as np

        failures: list[tuple[np.ndarray, Reason]] = []
        if key is not None:
            failures.append((_missing(columns[key]), lambda i: f"{key}: the row key is missing"))
        numeric = {}
        for spec in self.numeric:
            values, found = self._numeric(spec, columns[spec["name"]])
            numeric[spec["name"]] = values
            failures.extend(found)
        if self.rules.unknown_category == "reject" and self.categorical:
            failures.extend(self._categories(columns))
        for name in self.datetime:
            failures.extend(_dates(name, columns[name]))
        bad = np.zeros(rows, dtype=bool)
        for mask, _ in failures:
            bad |= mask
        if not bad.any():
            return Checked(numeric, None, [])
        reasons = [next(reason(int(i)) for mask, reason in failures if mask[i]) for i in np.flatnonzero(bad)]
        return Checked(numeric, bad, reasons)

    def _numeric(self, spec: dict[str, Any], raw: np.ndarray) -> tuple[np.ndarray, list[tuple[np.ndarray, Reason]]]:
        import numpy as np

        name = spec["name"]
        found: list[tuple[np.ndarray, Reason]] = []
        holes = None
        if raw.dtype.kind in "fiub":
            values = raw.astype(np.float64, copy=False)
        else:
            import pandas as pd

            values = np.asarray(pd.to_numeric(raw, errors="coerce"), dtype=np.float64)
            holes = _missing(raw)
            text = np.isnan(values) & ~holes
            if text.any():
                found.append((text, lambda i: f"{name}: {_show(raw[i])} is not a number"))
        if not spec.get("nullable", True):
            # Text that is not a number has its own reason; only true holes count as missing.
            lost = np.isnan(values) if holes is None else holes
            if lost.any():
                found.append(
                    (lost, lambda i: f"{name}: missing value (the model was trained without missing values here)")
                )
        infinite = np.isinf(values)
        if infinite.any():
            found.append((infinite, lambda i: f"{name}: {values[i]} is not finite"))
        margin = self.rules.range_margin
        if margin is not None and "min" in spec and "max" in spec:
            low, high = float(spec["min"]), float(spec["max"])
            width = (high - low) or max(abs(high), 1.0)
            lo, hi = low - margin * width, high + margin * width
            with np.errstate(invalid="ignore"):
                outside = ((values < lo) | (values > hi)) & ~infinite
            if outside.any():
                found.append(
                    (
                        outside,
                        lambda i: (
                            f"{name}: {values[i]:g} is outside the training range [{low:g}, {high:g}] "
                            f"by more than {margin:g} range widths"
                        ),
                    )
                )
        return values, found

    def _categories(self, columns: dict[str, np.ndarray]) -> list[tuple[np.ndarray, Reason]]:
        codes = self.pre.category_codes({f: columns[f] for f in self.pre.features})
        found: list[tuple[np.ndarray, Reason]] = []
        for j, name in enumerate(self.pre.categorical):
            raw = columns[name]
            unknown = (codes[:, j] < 0) & ~_missing(raw)
            if unknown.any():
                found.append((unknown, _unknown_category(name, raw, self.pre.categorical[name])))
        return found


def _dates(name: str, raw: np.ndarray) -> list[tuple[np.ndarray, Reason]]:
    """Values of a date/time feature that are neither missing nor ISO 8601 dates/times."""
    import numpy as np
    from shipyard.core.errors import DataError
    from shipyard.core.features import parse_datetimes

    if raw.dtype.kind == "M":
        return []
    bad = np.zeros(len(raw), dtype=bool)
    for i, value in enumerate(raw):
        try:
            parse_datetimes([value], name)
        except DataError:
            bad[i] = True
    if not bad.any():
        return []
    return [(bad, lambda i: f"{name}: {_show(raw[i])} is not an ISO 8601 date/time")]


def _unknown_category(name: str, raw: np.ndarray, vocabulary: list[str]) -> Reason:
    known = ", ".join(vocabulary[:8]) + (", ..." if len(vocabulary) > 8 else "")
    return lambda i: f"{name}: unknown category {_show(raw[i])} (known: {known})"


def _missing(values: np.ndarray) -> np.ndarray:
    import numpy as np
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


def _show(value: Any) -> str:
    text = repr(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= 60 else text[:57] + "..."
