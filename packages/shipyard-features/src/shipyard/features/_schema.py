"""The typed schema of a feature definition file, ``conf/features/<team>/<file>.yaml``.

A file declares any of: ``entities`` (a join key), ``sources`` (a Shipyard data source with an
entity and an event-time column) and ``views`` (named, versioned transformations of one source,
with an owner, a description, a time-to-live and the features). The dataclasses are checked by
the same machinery as a project's config (:func:`shipyard.core.compose.section`): unknown keys,
types, allowed values and bounds; :mod:`shipyard.features._catalog` adds the rules across them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from omegaconf import MISSING
from shipyard.core.errors import ConfigError
from shipyard.core.schema import SourceConf, opt

__all__ = [
    "Aggregation",
    "EntityConf",
    "FeatureConf",
    "FeatureFileConf",
    "FeatureSourceConf",
    "FeatureViewConf",
    "parse_duration",
]


class Aggregation(StrEnum):
    count = "count"
    sum = "sum"
    mean = "mean"
    min = "min"
    max = "max"
    last = "last"


@dataclass
class EntityConf:
    join_key: str = opt(MISSING, "the column that names one entity in sources and in a project's label rows")
    description: str = opt("", "one line for people")


@dataclass
class FeatureSourceConf:
    source: SourceConf = opt(SourceConf, "a Shipyard data source (csv, parquet or sql), as under data.source")
    entity: str = opt(MISSING, "the entity its rows belong to (its join key is a column of the source)")
    event_time: str = opt(MISSING, "the column holding when each row happened")
    description: str = opt("", "one line for people")


@dataclass
class FeatureConf:
    agg: Aggregation | None = opt(None, "an aggregation of `column` (count: of rows) over `window` up to each event")
    column: str | None = opt(None, "the source column aggregated, or encoded")
    window: str | None = opt(None, "count/sum/mean/min/max: the time window, e.g. 7d, 12h, 2w; null: all history")
    ratio: list[str] | None = opt(None, "[numerator, denominator]: two other features of the view")
    onehot: list[str] | None = opt(None, "the latest value of `column` as one 0/1 feature per listed category")
    description: str = opt("", "one line for people")


@dataclass
class FeatureViewConf:
    name: str = opt(MISSING, "the view's name, referenced by projects with its version")
    version: int = opt(MISSING, "changing a view that a production model uses needs a new version", ge=1)
    source: str = opt(MISSING, "the feature source it transforms")
    owner: str = opt(MISSING, "who answers for it, e.g. @shipyard/risk")
    description: str = opt(MISSING, "what it means, for people choosing features")
    ttl: str | None = opt(None, "a value older than this (e.g. 90d) at the label's time is missing; null: no limit")
    features: dict[str, FeatureConf] = opt(MISSING, "the features, by name")


@dataclass
class FeatureFileConf:
    entities: dict[str, EntityConf] = opt({}, "entities by name")
    sources: dict[str, FeatureSourceConf] = opt({}, "feature sources by name")
    views: list[FeatureViewConf] = opt([], "feature views, each a name and version")


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, key: str, where: str | None = None) -> timedelta:
    """``7d``, ``12h``, ``2w``, ``30m``, ``90s`` as a timedelta (at least one second)."""
    found = _DURATION.match(str(text).strip())
    if not found or int(found.group(1)) == 0:
        raise ConfigError(
            f"{key}: {text!r} is not a duration",
            where=where,
            key=key,
            value=text,
            fix="write a whole number and a unit: s, m, h, d or w (e.g. 30d)",
        )
    return timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
