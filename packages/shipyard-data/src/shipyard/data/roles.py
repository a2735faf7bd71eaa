"""What each column of a table is: the one place Shipyard decides a column's role.

Roles: ``numeric``, ``categorical``, ``datetime`` (ISO 8601 text or a date/time type),
``text`` (free text: many distinct values of several words), ``identifier`` (one distinct value
per row) and ``constant`` (one value in every row). Ingest uses them to parse dates and to leave
free text and identifiers out of the features (with a warning naming them), ``shipyard new`` to
write a project's first YAML, and the data report to say what happened to every column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ISO_DATETIME", "Role", "column_profile", "infer_role", "parse_datetime_column"]

ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$")
# A text column is dates when this share of its values is ISO 8601 dates/times.
DATES_SHARE = 0.99
# Free text: more distinct values than a categorical may have, and this many words on average
# (or this many characters).
TEXT_WORDS = 3.0
TEXT_CHARS = 30.0
# Below this many rows, "one value per row" says nothing (five rows are five distinct values).
IDENTIFIER_ROWS = 20


@dataclass(frozen=True)
class Role:
    role: str
    reason: str


def _is_text(series: pd.Series) -> bool:
    import pandas as pd

    api = pd.api.types
    return not (api.is_numeric_dtype(series) or api.is_bool_dtype(series) or api.is_datetime64_any_dtype(series))


def iso_share(values: pd.Series) -> float:
    """The share of non-empty values that are ISO 8601 dates/times."""
    present = values.dropna().astype(str).str.strip()
    if present.empty:
        return 0.0
    return float(present.str.match(ISO_DATETIME).mean())


def infer_role(series: pd.Series, max_categories: int = 50) -> Role:
    """The role of one column, with the reason in words."""
    import pandas as pd

    api = pd.api.types
    present = series.dropna()
    n = len(present)
    if api.is_datetime64_any_dtype(series):
        return Role("datetime", "a date/time column")
    if api.is_bool_dtype(series):
        return Role("categorical", "true/false values")
    distinct = int(present.nunique())
    if n and distinct == 1:
        return Role("constant", f"one value ({present.iloc[0]!r}) in every row")
    if api.is_numeric_dtype(series):
        return Role("numeric", "numbers")
    texts = present.astype(str)
    if n and iso_share(texts) >= DATES_SHARE:
        return Role("datetime", "ISO 8601 dates/times")
    words = float(texts.str.split().str.len().mean()) if n else 0.0
    chars = float(texts.str.len().mean()) if n else 0.0
    if distinct > max_categories and (words >= TEXT_WORDS or chars >= TEXT_CHARS):
        return Role("text", f"free text ({distinct} distinct values, {words:.1f} words on average)")
    if n >= IDENTIFIER_ROWS and distinct == n:
        return Role("identifier", f"one value per row ({distinct} distinct values in {n} rows)")
    if distinct > max_categories:
        # Too many to one-hot encode, too short to be prose: a code or a name, not a category.
        return Role(
            "identifier",
            f"{distinct} distinct values in {n} rows (more than preprocess.max_categories={max_categories})",
        )
    return Role("categorical", f"{distinct} categories")


def parse_datetime_column(series: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``series`` as naive UTC datetime64 (an offset is converted to UTC), and the values that
    are not ISO 8601 dates/times (index -> value; they become missing)."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        parsed = series
        bad = series.iloc[0:0]
    else:
        text = series.astype("string").str.strip()
        ok = text.str.match(ISO_DATETIME).fillna(False).astype(bool)
        bad = series[~ok & series.notna() & (text != "")]
        parsed = pd.to_datetime(text.where(ok), format="ISO8601", utc=True, errors="coerce")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.astype("datetime64[ns]"), bad


def column_profile(series: pd.Series, role: str, action: str) -> dict[str, Any]:
    """One line of the data report: dtype, nulls, distinct values, range or top values, and what
    Shipyard does with the column."""
    import pandas as pd

    api = pd.api.types
    present = series.dropna()
    entry: dict[str, Any] = {
        "name": str(series.name),
        "dtype": str(series.dtype),
        "role": role,
        "nulls": int(series.isna().sum()),
        "null_fraction": round(float(series.isna().mean()), 4) if len(series) else 0.0,
        "distinct": int(present.nunique()),
        "action": action,
    }
    if len(present) and api.is_datetime64_any_dtype(series):
        entry["range"] = [str(present.min()), str(present.max())]
    elif len(present) and api.is_numeric_dtype(series) and not api.is_bool_dtype(series):
        entry["range"] = [_number(present.min()), _number(present.max())]
    elif len(present):
        top = present.astype(str).value_counts().head(5)
        entry["top"] = [[str(k)[:40], int(v)] for k, v in top.items()]
    return entry


def _number(value: Any) -> float | int:
    value = value.item() if hasattr(value, "item") else value
    return int(value) if isinstance(value, int) else round(float(value), 6)
