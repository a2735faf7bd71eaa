"""Data checks: the tests a data scientist would otherwise do by eye, codified.

Schema (required columns, dtypes, allowed values, ranges, unique keys) runs through pandera;
nulls, duplicates, distributions, class balance, correlated pairs and single-feature target
leakage are computed here. :func:`run_checks` returns a report; the caller decides to stop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.core.schema import Action, ChecksConf, ColumnCheckConf

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["format_summary", "non_finite_values", "non_numeric_values", "run_checks"]
# A text column whose non-empty values are at least this share numbers is a numeric column with
# a few typos, not a categorical one (a categorical of numeric codes has no stray words).
MOSTLY_NUMERIC = 0.9
# Text that means "no value" in a text column (pandas reads these as missing in a CSV already).
_MISSING_TEXT = frozenset({"", "nan", "na", "n/a", "null", "none", "<na>"})


def _fail(check: str, column: str | None, observed: Any, expected: Any) -> dict[str, Any]:
    return {"check": check, "column": column, "observed": observed, "expected": expected}


def _dtype_ok(series: pd.Series, dtype: str) -> bool:
    import pandas as pd

    api = pd.api.types
    return {
        "int": api.is_integer_dtype,
        "float": api.is_float_dtype,
        "number": api.is_numeric_dtype,
        "bool": api.is_bool_dtype,
        "str": lambda s: api.is_string_dtype(s) or api.is_object_dtype(s),
        "category": lambda s: (
            isinstance(s.dtype, pd.CategoricalDtype) or api.is_string_dtype(s) or api.is_object_dtype(s)
        ),
    }[dtype](series)


def non_finite_values(frame: pd.DataFrame, columns: list[str]) -> dict[str, pd.Series]:
    """The infinite values of each numeric column that has any (index -> value).

    NaN is a missing value (imputed later); +-inf is not a number any model or baseline can use.
    """
    import numpy as np
    import pandas as pd

    found = {}
    for name in columns:
        series = frame[name]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isinf(values)
        if bad.any():
            found[name] = series[bad]
    return found


def non_numeric_values(frame: pd.DataFrame, columns: list[str]) -> dict[str, tuple[pd.Series, int]]:
    """Text columns that are numbers but for a few values: the stray values (index -> value)
    and how many values are numbers. Such a column would otherwise become a categorical with
    one category per number."""
    import pandas as pd

    found = {}
    for name in columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        present = series.dropna()
        sample = present.iloc[:: max(1, len(present) // 1000)]
        if present.empty or not all(isinstance(v, str) for v in sample):
            continue
        if pd.to_numeric(sample, errors="coerce").notna().mean() < 0.5:
            continue  # mostly words: a categorical (checked on an even sample, to stay cheap)
        numbers = pd.to_numeric(present, errors="coerce")
        missing_text = present.astype(str).str.strip().str.lower().isin(_MISSING_TEXT)
        stray = present[numbers.isna() & ~missing_text]
        counted = int(numbers.notna().sum())
        if len(stray) and counted >= MOSTLY_NUMERIC * (counted + len(stray)):
            found[name] = (stray, counted)
    return found


def _schema_failures(frame: pd.DataFrame, columns: dict[str, ColumnCheckConf]) -> list[dict[str, Any]]:
    """Required columns, allowed values, ranges and uniqueness, through pandera."""
    failures: list[dict[str, Any]] = []
    if not columns:
        return failures
    import pandera.pandas as pa
    from pandera.errors import SchemaErrors

    spec = {}
    for name, rule in columns.items():
        if name not in frame.columns:
            if rule.required:
                failures.append(_fail("required column", name, "missing", "present"))
            continue
        if rule.dtype and not _dtype_ok(frame[name], str(rule.dtype)):
            failures.append(_fail("dtype", name, str(frame[name].dtype), str(rule.dtype)))
        checks = []
        if rule.allowed is not None:
            checks.append(pa.Check.isin(list(rule.allowed)))
        if rule.min is not None:
            checks.append(pa.Check.ge(rule.min))
        if rule.max is not None:
            checks.append(pa.Check.le(rule.max))
        spec[name] = pa.Column(checks=checks, nullable=True, unique=rule.unique, required=False)
    if not spec:
        return failures
    try:
        pa.DataFrameSchema(spec).validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
        for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=True):
            rule = columns.get(str(column), ColumnCheckConf())
            values = group["failure_case"].astype(str).unique().tolist()
            name = str(check).split("(")[0]
            label = {
                "isin": "allowed values",
                "greater_than_or_equal_to": "min",
                "less_than_or_equal_to": "max",
                "field_uniqueness": "unique",
            }.get(name, "unique" if "unique" in name else name)
            expected = {
                "allowed values": f"one of {rule.allowed}",
                "min": f">= {rule.min}",
                "max": f"<= {rule.max}",
                "unique": "no repeated value",
            }.get(label, str(check))
            failures.append(_fail(label, str(column), f"{len(group)} row(s), e.g. {values[:3]}", expected))
    return failures


def _distribution_failures(frame: pd.DataFrame, columns: dict[str, ColumnCheckConf]) -> list[dict[str, Any]]:
    failures = []
    for name, rule in columns.items():
        if name not in frame.columns:
            continue
        series = frame[name]
        if rule.max_null_fraction is not None:
            share = float(series.isna().mean())
            if share > rule.max_null_fraction:
                failures.append(_fail("nulls", name, round(share, 4), f"<= {rule.max_null_fraction}"))
        if rule.mean is not None:
            low, high = rule.mean
            mean = float(series.mean())
            if not low <= mean <= high:
                failures.append(_fail("mean", name, round(mean, 6), f"in [{low}, {high}]"))
        for q, (low, high) in rule.quantiles.items():
            value = float(series.quantile(float(q)))
            if not low <= value <= high:
                failures.append(_fail(f"quantile {q}", name, round(value, 6), f"in [{low}, {high}]"))
        if rule.most_frequent is not None:
            top = series.mode(dropna=True)
            observed = str(top.iloc[0]) if len(top) else None
            if observed != str(rule.most_frequent):
                failures.append(_fail("most frequent value", name, observed, str(rule.most_frequent)))
    return failures


def _numeric(frame: pd.DataFrame, features: list[str]) -> list[str]:
    import pandas as pd

    return [c for c in features if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]


def _correlated_pairs(frame: pd.DataFrame, features: list[str], threshold: float) -> list[tuple[str, str, float]]:
    import numpy as np

    numeric = _numeric(frame, features)
    if len(numeric) < 2:
        return []
    corr = frame[numeric].corr().abs().to_numpy()
    pairs = []
    rows, cols = np.nonzero(np.triu(corr >= threshold, k=1))
    for i, j in zip(rows, cols, strict=True):
        pairs.append((numeric[i], numeric[j], round(float(corr[i, j]), 4)))
    return sorted(pairs, key=lambda p: -p[2])


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """sklearn's ``balanced_accuracy_score``: the mean recall over the classes in ``y_true``."""
    import numpy as np

    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """sklearn's ``r2_score`` (its finite convention: a constant ``y_true`` scores 1.0 when
    predicted exactly, else 0.0)."""
    import numpy as np

    truth, pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    residual = float(np.sum((truth - pred) ** 2))
    total = float(np.sum((truth - truth.mean()) ** 2))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


def _leakage(frame: pd.DataFrame, features: list[str], target: str, task: str) -> list[tuple[str, float]]:
    """How well each feature alone predicts the target: 3-fold cross-validated balanced
    accuracy (classification) or R² (regression, or r² when larger) of a depth-3 tree on that
    one feature."""
    import numpy as np
    from sklearn.base import clone
    from sklearn.model_selection import check_cv
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    y = frame[target]
    if task == "regression":
        model, score_of = DecisionTreeRegressor(max_depth=3, random_state=0), _r2
    else:
        if y.value_counts().min() < 3:
            return []
        model, score_of = DecisionTreeClassifier(max_depth=3, random_state=0), _balanced_accuracy
    # cross_val_score(model, x, y, cv=3) per feature, with its folds made once: they depend on y
    # only, and for a depth-3 tree on one column cross_val_score's own set-up per call (splitting,
    # joblib, scorer checks) cost more than the fits. The scores are computed here too: sklearn's
    # scorers re-validate their inputs on every call, which cost more than the trees.
    folds = list(check_cv(3, y, classifier=task != "regression").split(np.zeros((len(y), 1)), y))
    labels = y.to_numpy()
    scores = []
    for name in features:
        column = frame[name]
        x = column.astype("category").cat.codes.replace(-1, np.nan) if name not in _numeric(frame, [name]) else column
        values = x.to_numpy(dtype=np.float64).reshape(-1, 1)
        fold_scores = [
            score_of(labels[held], clone(model).fit(values[fit], labels[fit]).predict(values[held]))
            for fit, held in folds
        ]
        score = float(np.mean(fold_scores))
        if task == "regression" and np.isfinite(values).all():
            # A tree of depth 3 approximates a straight line coarsely; r² catches linear leaks.
            score = max(score, float(np.corrcoef(values[:, 0], y.to_numpy(dtype=float))[0, 1] ** 2))
        scores.append((name, round(score, 4)))
    return sorted(scores, key=lambda s: -s[1])


def run_checks(frame: pd.DataFrame, checks: ChecksConf, target: str, task: str, aux: list[str]) -> dict[str, Any]:
    """Run every configured check on the ingested frame; return the report."""
    key = str(frame.columns[0])
    features = [c for c in frame.columns[1:] if c != target and c not in aux]
    columns = {str(k): v for k, v in checks.columns.items()}
    failures: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    failures += _schema_failures(frame, columns)
    failures += _distribution_failures(frame, columns)

    limit = checks.max_null_fraction
    for name in frame.columns:
        share = float(frame[name].isna().mean())
        if share > limit and (name not in columns or columns[name].max_null_fraction is None):
            failures.append(_fail("nulls", name, round(share, 4), f"<= {limit}"))

    duplicated = float(frame.drop(columns=[key]).duplicated().mean()) if len(frame) else 0.0
    if duplicated > checks.max_duplicate_fraction:
        expected = f"<= {checks.max_duplicate_fraction:.2%}"
        failures.append(_fail("duplicates", None, f"{duplicated:.2%} of rows", expected))

    balance = checks.class_balance
    if balance and task != "regression":
        low, high = balance
        shares = frame[target].value_counts(normalize=True)
        for cls, share in shares.items():
            if not low <= share <= high:
                failures.append(
                    _fail("class balance", target, f"class {cls!r}: {share:.2%}", f"in [{low:.2%}, {high:.2%}]")
                )

    corr = checks.correlation
    if corr.threshold is not None:
        for a, b, value in _correlated_pairs(frame, features, corr.threshold):
            entry = _fail("correlated features", f"{a} ~ {b}", value, f"|r| < {corr.threshold}")
            (failures if corr.action == Action.fail else warnings).append(entry)

    leak = checks.leakage
    if leak.threshold is not None and len(frame) >= 30:
        for name, score in _leakage(frame, features, target, task):
            if score >= leak.threshold:
                entry = _fail("target leakage", name, score, f"single-feature score < {leak.threshold}")
                (failures if leak.action == Action.fail else warnings).append(entry)

    return {
        "passed": not failures,
        "rows": len(frame),
        "columns": len(frame.columns),
        "failures": failures,
        "warnings": warnings,
    }


def format_summary(report: dict[str, Any], project: str) -> str:
    """The report as lines a person reads: the verdict, each failure and warning, then the data
    report (every column: dtype, nulls, distinct values, range or top values, what was done)."""
    from shipyard.data.report import profile_lines

    status = "PASSED" if report["passed"] else "FAILED"
    lines = [f"data checks for {project}: {status} ({report['rows']} rows, {report['columns']} columns)"]
    for title, entries in (("failed", report["failures"]), ("warning", report["warnings"])):
        for e in entries:
            column = f" [{e['column']}]" if e["column"] else ""
            lines.append(f"  {title}: {e['check']}{column}: observed {e['observed']}, expected {e['expected']}")
    lines += profile_lines(report)
    return "\n".join(lines) + "\n"
