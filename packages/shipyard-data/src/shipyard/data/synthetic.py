"""Example data sets generated with a documented seed (no download, same bytes every time).

``synthetic:churn``  2,000 telecom customers: numeric and categorical columns with missing
                     values; binary target ``churned``. Seed 7.
``synthetic:demand`` three years of daily electricity demand with a ``date`` column; regression
                     target ``demand_mwh``, for a time split. Seed 11.

Shared customers (the feature-store example, conf/features/): one event stream and two label
sets drawn from it, so features computed from the events predict the labels.

``synthetic:payments``     the event stream: 1,500 customers' payments in 2024 (``customer_id``,
                           ``ts``, ``amount``, ``channel``), about 20,000 rows. Seed 13.
``synthetic:fraud_labels`` 4,000 card payments to score (``payment_id``, ``customer_id``, ``ts``,
                           ``amount``, ``is_fraud``): fraud is likelier when the payment is large
                           against the customer's last 30 days. Seed 17 (and the events' 13).
``synthetic:activity_labels`` 4,000 (customer, date) rows (``row_id``, ``customer_id``,
                           ``as_of``, ``churned``): churned = no payment in the 45 days after
                           ``as_of``. Seed 19 (and the events' 13).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shipyard.core.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GENERATORS", "generate"]


def _churn() -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    n = 2000
    contract = rng.choice(["month-to-month", "one-year", "two-year"], size=n, p=[0.55, 0.25, 0.2])
    payment = rng.choice(["card", "bank transfer", "electronic check", "mailed check"], size=n).astype(object)
    tenure = rng.gamma(2.0, 12.0, size=n).round(0)
    monthly = (rng.normal(65, 25, size=n)).clip(18, 140).round(2)
    support_calls = rng.poisson(1.5, size=n)
    logit = -1.2 + 1.6 * (contract == "month-to-month") - 0.04 * tenure + 0.015 * (monthly - 65) + 0.35 * support_calls
    logit += 0.6 * (payment == "electronic check")
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    tenure[rng.random(n) < 0.08] = np.nan  # unknown start dates
    payment[rng.random(n) < 0.05] = None  # payment method not recorded
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "tenure_months": tenure,
            "monthly_charges": monthly,
            "support_calls": support_calls,
            "contract": contract,
            "payment_method": payment,
            "churned": churned,
        }
    )


def _demand() -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(11)
    dates = pd.date_range("2022-01-01", periods=3 * 365, freq="D")
    day = np.arange(len(dates))
    temperature = 12 + 10 * np.sin(2 * np.pi * (day - 100) / 365) + rng.normal(0, 3, len(dates))
    weekday = dates.dayofweek.to_numpy()
    holiday = (rng.random(len(dates)) < 0.03).astype(int)
    demand = 900 + 0.15 * day + 6 * np.abs(temperature - 16) ** 1.3 - 120 * (weekday >= 5) - 150 * holiday
    demand += rng.normal(0, 25, len(dates))
    return pd.DataFrame(
        {
            "date": dates.strftime("%Y-%m-%d"),
            "temperature_c": temperature.round(2),
            "weekday": pd.Categorical(dates.day_name()).astype(str),
            "is_holiday": holiday,
            "days_since_start": day,
            "demand_mwh": demand.round(1),
        }
    )


_YEAR = ("2024-01-01", "2025-01-01")


def _payments() -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(13)
    n = 1500
    start, end = (pd.Timestamp(t).value // 10**9 for t in _YEAR)
    rate = rng.gamma(1.5, 0.03, size=n)  # payments per day; some customers go quiet
    stop = start + ((end - start) * rng.uniform(0.3, 1.6, size=n)).astype(np.int64)  # last active moment
    level = rng.lognormal(3.2, 0.6, size=n)
    counts = rng.poisson(rate * 366)
    who = np.repeat(np.arange(n), counts)
    seconds = rng.integers(start, end, size=len(who))
    keep = seconds < stop[who]
    who, seconds = who[keep], seconds[keep]
    amount = (level[who] * rng.lognormal(0.0, 0.5, size=len(who))).round(2)
    channel = rng.choice(["web", "app", "store"], size=len(who), p=[0.45, 0.35, 0.2])
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in who],
            "ts": pd.to_datetime(seconds, unit="s").strftime("%Y-%m-%d %H:%M:%S"),
            "amount": amount,
            "channel": channel,
        }
    )
    return frame.sort_values(["ts", "customer_id"], kind="stable").reset_index(drop=True)


def _history(events: pd.DataFrame) -> dict[str, tuple[Any, Any]]:
    """Per customer: event times (seconds, sorted) and the running sum of amounts."""
    import numpy as np

    seconds = events["ts"].astype("datetime64[s]").astype("int64").to_numpy()
    out = {}
    for customer, rows in events.groupby("customer_id").indices.items():
        order = np.argsort(seconds[rows], kind="stable")
        out[str(customer)] = (seconds[rows][order], np.cumsum(events["amount"].to_numpy()[rows][order]))
    return out


def _window(history: tuple[Any, Any] | None, at: int, before: int, after: int = 0) -> tuple[int, float]:
    """(count, sum) of a customer's events in ``[at - before, at + after]``."""
    import numpy as np

    if history is None:
        return 0, 0.0
    times, sums = history
    lo, hi = np.searchsorted(times, at - before, "left"), np.searchsorted(times, at + after, "right")
    total = (sums[hi - 1] if hi else 0.0) - (sums[lo - 1] if lo else 0.0)
    return int(hi - lo), float(total)


def _label_rows(seed: int, n: int) -> tuple[Any, pd.DataFrame, dict[str, tuple[Any, Any]], Any, Any]:
    import numpy as np
    import pandas as pd

    events = _payments()
    rng = np.random.default_rng(seed)
    customers = np.array(sorted(events["customer_id"].unique()))
    who = rng.choice(customers, size=n)
    start = pd.Timestamp("2024-03-01").value // 10**9
    end = pd.Timestamp("2024-11-15").value // 10**9
    at = np.sort(rng.integers(start, end, size=n))
    return rng, events, _history(events), who, at


def _fraud_labels() -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    rng, _events, history, who, at = _label_rows(17, 4000)
    day = 86400
    amount = np.empty(len(who))
    logit = np.empty(len(who))
    for i, (customer, t) in enumerate(zip(who, at, strict=True)):
        count, spend = _window(history.get(customer), int(t), 30 * day)
        typical = spend / count if count else 40.0
        amount[i] = round(float(typical * rng.lognormal(0.0, 0.9)), 2)
        logit[i] = -3.2 + 1.4 * np.log(amount[i] / typical) + 0.8 * (count == 0)
    return pd.DataFrame(
        {
            "payment_id": [f"P{i:05d}" for i in range(len(who))],
            "customer_id": who,
            "ts": pd.to_datetime(at, unit="s").strftime("%Y-%m-%d %H:%M:%S"),
            "amount": amount,
            "is_fraud": (rng.random(len(who)) < 1 / (1 + np.exp(-logit))).astype(int),
        }
    )


def _activity_labels() -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    _rng, _events, history, who, at = _label_rows(19, 4000)
    churned = [_window(history.get(c), int(t) + 1, 0, 45 * 86400)[0] == 0 for c, t in zip(who, at, strict=True)]
    return pd.DataFrame(
        {
            "row_id": [f"R{i:05d}" for i in range(len(who))],
            "customer_id": who,
            "as_of": pd.to_datetime(at, unit="s").strftime("%Y-%m-%d %H:%M:%S"),
            "churned": np.asarray(churned, dtype=int),
        }
    )


GENERATORS = {
    "churn": _churn,
    "demand": _demand,
    "payments": _payments,
    "fraud_labels": _fraud_labels,
    "activity_labels": _activity_labels,
}


def generate(name: str) -> pd.DataFrame:
    if name not in GENERATORS:
        raise ConfigError(
            f"unknown synthetic data set {name!r}{did_you_mean(name, GENERATORS)}",
            key="data.source.fetch",
            value=name,
            fix="use one of: " + ", ".join(f"synthetic:{g}" for g in GENERATORS),
        )
    return GENERATORS[name]()
