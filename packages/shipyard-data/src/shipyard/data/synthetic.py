"""Example data sets generated with a documented seed (no download, same bytes every time).

``synthetic:churn``  2,000 telecom customers: numeric and categorical columns with missing
                     values; binary target ``churned``. Seed 7.
``synthetic:demand`` three years of daily electricity demand with a ``date`` column; regression
                     target ``demand_mwh``, for a time split. Seed 11.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


GENERATORS = {"churn": _churn, "demand": _demand}


def generate(name: str) -> pd.DataFrame:
    if name not in GENERATORS:
        raise ConfigError(
            f"unknown synthetic data set {name!r}{did_you_mean(name, GENERATORS)}",
            key="data.source.fetch",
            value=name,
            fix="use one of: " + ", ".join(f"synthetic:{g}" for g in GENERATORS),
        )
    return GENERATORS[name]()
