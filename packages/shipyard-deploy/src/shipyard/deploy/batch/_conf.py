"""The ``deploy.batch`` config section: its schema and validation.

The dataclasses are the schema (Hydra style); ``conf/deploy/batch/default.yaml`` spells out the
same defaults as YAML. Validation is plain Python so that a config mistake costs no heavy import.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.core.errors import ConfigError, did_you_mean

__all__ = ["ENGINES", "UNKNOWN_CATEGORY", "BatchConf", "DaskConf", "RejectConf", "ScheduleConf", "batch_conf"]

ENGINES = ("local", "dask")
UNKNOWN_CATEGORY = ("accept", "reject")
WHERE = "deploy.batch (conf/deploy/batch/default.yaml, or the project's deploy.batch)"
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?LW#]+$")
_CRON_ALIASES = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight")


@dataclass(frozen=True)
class DaskConf:
    scheduler: str | None = None  # address of a running scheduler; None = a LocalCluster here
    n_workers: int = 2
    parts_per_task: int = 4


@dataclass(frozen=True)
class RejectConf:
    max_fraction: float = 0.01
    range_margin: float | None = 1.0
    unknown_category: str = "accept"


@dataclass(frozen=True)
class ScheduleConf:
    cron: str = "0 2 * * *"
    airflow: bool = True


@dataclass(frozen=True)
class BatchConf:
    chunk_size: int = 10000
    engine: str = "local"
    dask: DaskConf = field(default_factory=DaskConf)
    key: str | None = None
    passthrough: tuple[str, ...] = ()
    rejects: RejectConf = field(default_factory=RejectConf)
    input: str | None = None
    output: str | None = None
    schedule: ScheduleConf = field(default_factory=ScheduleConf)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["passthrough"] = list(self.passthrough)
        return out


def batch_conf(section: Mapping[str, Any] | None, prefix: str = "deploy.batch") -> BatchConf:
    """Validate a ``deploy.batch`` mapping (missing keys take the defaults) into a :class:`BatchConf`."""
    raw = dict(section or {})
    _known(raw, BatchConf, prefix)
    base = BatchConf()
    dask = _dask(raw.get("dask"), f"{prefix}.dask")
    rejects = _rejects(raw.get("rejects"), f"{prefix}.rejects")
    schedule = _schedule(raw.get("schedule"), f"{prefix}.schedule")
    passthrough = raw.get("passthrough", base.passthrough) or ()
    if isinstance(passthrough, str) or not all(isinstance(c, str) for c in passthrough):
        raise _bad(f"{prefix}.passthrough", passthrough, "a list of column names, e.g. [order_date]")
    return BatchConf(
        chunk_size=_int(raw.get("chunk_size", base.chunk_size), f"{prefix}.chunk_size", low=1),
        engine=_choice(raw.get("engine", base.engine), ENGINES, f"{prefix}.engine"),
        dask=dask,
        key=_opt_str(raw.get("key", base.key), f"{prefix}.key"),
        passthrough=tuple(passthrough),
        rejects=rejects,
        input=_opt_str(raw.get("input", base.input), f"{prefix}.input"),
        output=_opt_str(raw.get("output", base.output), f"{prefix}.output"),
        schedule=schedule,
    )


# -- sections ----------------------------------------------------------------------------------


def _dask(raw: Any, prefix: str) -> DaskConf:
    raw = _mapping(raw, prefix)
    _known(raw, DaskConf, prefix)
    base = DaskConf()
    return DaskConf(
        scheduler=_opt_str(raw.get("scheduler", base.scheduler), f"{prefix}.scheduler"),
        n_workers=_int(raw.get("n_workers", base.n_workers), f"{prefix}.n_workers", low=1),
        parts_per_task=_int(raw.get("parts_per_task", base.parts_per_task), f"{prefix}.parts_per_task", low=1),
    )


def _rejects(raw: Any, prefix: str) -> RejectConf:
    raw = _mapping(raw, prefix)
    _known(raw, RejectConf, prefix)
    base = RejectConf()
    fraction = _float(raw.get("max_fraction", base.max_fraction), f"{prefix}.max_fraction")
    if not 0.0 <= fraction <= 1.0:
        raise _bad(f"{prefix}.max_fraction", fraction, "a fraction between 0 and 1, e.g. 0.01")
    margin = raw.get("range_margin", base.range_margin)
    if margin is not None:
        margin = _float(margin, f"{prefix}.range_margin")
        if margin < 0:
            raise _bad(f"{prefix}.range_margin", margin, "0 or more range widths, or null to skip the range check")
    return RejectConf(
        max_fraction=fraction,
        range_margin=margin,
        unknown_category=_choice(
            raw.get("unknown_category", base.unknown_category), UNKNOWN_CATEGORY, f"{prefix}.unknown_category"
        ),
    )


def _schedule(raw: Any, prefix: str) -> ScheduleConf:
    raw = _mapping(raw, prefix)
    _known(raw, ScheduleConf, prefix)
    base = ScheduleConf()
    cron = raw.get("cron", base.cron)
    if not isinstance(cron, str) or not _valid_cron(cron):
        raise _bad(f"{prefix}.cron", cron, 'five cron fields ("0 2 * * *" is daily at 02:00) or an alias like @daily')
    airflow = raw.get("airflow", base.airflow)
    if not isinstance(airflow, bool):
        raise _bad(f"{prefix}.airflow", airflow, "true or false")
    return ScheduleConf(cron=cron, airflow=airflow)


def _valid_cron(cron: str) -> bool:
    text = cron.strip()
    if text in _CRON_ALIASES:
        return True
    fields = text.split()
    return len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields)


# -- checks ------------------------------------------------------------------------------------


def _bad(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"bad value for {key}", where=WHERE, key=key, value=value, fix=f"use {expected}")


def _mapping(raw: Any, prefix: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise _bad(prefix, raw, "a mapping of settings")
    return dict(raw)


def _known(raw: Mapping[str, Any], schema: type, prefix: str) -> None:
    names = [f.name for f in dataclasses.fields(schema)]
    for key in raw:
        if key not in names:
            raise ConfigError(
                f"unknown key {prefix}.{key}{did_you_mean(str(key), names)}",
                where=WHERE,
                key=f"{prefix}.{key}",
                fix="valid keys here: " + ", ".join(names),
            )


def _int(value: Any, key: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _bad(key, value, f"a whole number >= {low}")
    return value


def _float(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(key, value, "a number")
    return float(value)


def _choice(value: Any, choices: tuple[str, ...], key: str) -> str:
    if value not in choices:
        hint = did_you_mean(str(value), choices)
        raise ConfigError(
            f"bad value for {key}{hint}", where=WHERE, key=key, value=value, fix="use one of: " + ", ".join(choices)
        )
    return str(value)


def _opt_str(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _bad(key, value, "a non-empty string, or null")
    return value
