"""The service's typed request and response, generated from a bundle's feature schema.

One pydantic model per row: a named field per feature (the feature's own name is the JSON
key), numbers strict and finite, range-checked against the training range widened by a margin,
categories limited to the training vocabulary, nullable only where training saw missing values.
Image models take one ``image`` field: a nested array of exactly the bundle's [C, H, W] shape.
Pydantic does every check, so BentoML answers a bad request 400 with the field's location and
the problem, before the request reaches the batching queue.

A model trained with shared features (its bundle's ``features``) takes the entity key(s) and the
event time instead of those feature columns: a validator looks them up in the target's online
store (:func:`shipyard.features.open_lookup`) and fills them before the fields are checked, so an
unknown entity, or values older than the view's TTL, is the same kind of 400, naming the row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic.json_schema import SkipJsonSchema
from shipyard.core.errors import DataError
from shipyard.core.schema import ServiceConf

__all__ = ["IMAGE_FIELD", "ServiceSchema", "build_schema", "example_request"]

IMAGE_FIELD = "image"
_MAX_CATEGORY_CHARS = 256


@dataclass(frozen=True)
class ServiceSchema:
    """The generated models and how a validated batch of rows becomes model input columns."""

    row: type[BaseModel]
    request: type[BaseModel]
    prediction: type[BaseModel]
    features: list[str]
    attrs: list[str]  # python attribute of each feature on ``row`` (tabular models)
    shape: list[int] | None
    sent: list[str] | None = None  # the names a request row carries, when not ``features``
    key_attr: str | None = None  # a canary's sticky key on ``row``: not a feature, never scored

    @property
    def request_names(self) -> list[str]:
        return self.features if self.sent is None else self.sent

    def keys(self, rows: Sequence[BaseModel]) -> list[Any]:
        """Each row's sticky key (None where absent, or when the rows carry none)."""
        if self.key_attr is None:
            return [None] * len(rows)
        return [getattr(r, self.key_attr) for r in rows]

    def columns(self, rows: Sequence[BaseModel]) -> dict[str, Any]:
        """Validated rows as ``{feature: values}``, the mapping ``Preprocessor.transform`` takes."""
        import numpy as np

        if self.shape is not None:
            pixels = np.asarray([getattr(r, IMAGE_FIELD) for r in rows], dtype=np.float64)
            # An image's C, H, W flatten in the order of the bundle's pixel features (the CNN
            # reshapes its input the same way).
            flat = pixels.reshape(len(rows), -1)
            return {name: flat[:, j] for j, name in enumerate(self.features)}
        return {
            name: [_missing(getattr(r, attr)) for r in rows]
            for name, attr in zip(self.features, self.attrs, strict=True)
        }


def _missing(value: Any) -> Any:
    # JSON null is a missing value; the preprocessor imputes NaN (numeric) and ignores None (category).
    return math.nan if value is None else value


def _bounds(low: float, high: float, settings: ServiceConf) -> tuple[float | None, float | None]:
    if not settings.range_check.enabled:
        return None, None
    # A constant training column has no range to widen by; widen by its magnitude (or 1) instead.
    span = high - low if high > low else max(abs(low), abs(high), 1.0)
    pad = settings.range_check.margin * span
    return _round(low - pad, up=False), _round(high + pad, up=True)


def _round(value: float, *, up: bool) -> float:
    """``value`` to 6 significant digits, rounded outward (limits read well in the OpenAPI page
    and error messages, and never narrow the widened range)."""
    rounded = float(f"{value:.6g}")
    if (up and rounded < value) or (not up and rounded > value):
        step = 10 ** (math.floor(math.log10(abs(value))) - 5)
        rounded = float(f"{value + step if up else value - step:.6g}")
    return rounded


def _number(low: float | None, high: float | None) -> Any:
    return Annotated[float, Field(ge=low, le=high, allow_inf_nan=False, strict=True)]


def _describe(spec: Mapping[str, Any], low: float | None, high: float | None) -> str:
    seen = f"training range [{spec['min']:g}, {spec['max']:g}]"
    if low is None or high is None:
        return f"number; {seen}"
    return f"number in [{low:g}, {high:g}] ({seen}, widened)"


def _numeric_field(spec: Mapping[str, Any], settings: ServiceConf) -> tuple[Any, Any]:
    low, high = _bounds(float(spec["min"]), float(spec["max"]), settings)
    kind = _number(low, high)
    nullable = bool(spec.get("nullable"))
    desc = _describe(spec, low, high) + ("; null when missing" if nullable else "")
    return (kind | None if nullable else kind), Field(alias=spec["name"], description=desc)


def _category_field(spec: Mapping[str, Any], settings: ServiceConf) -> tuple[Any, Any]:
    vocab = [str(v) for v in spec.get("categories", [])]
    if settings.unknown_categories or not vocab:
        kind: Any = Annotated[str, Field(max_length=_MAX_CATEGORY_CHARS, strict=True)]
        desc = f"category; known: {', '.join(vocab)}; others count as unseen"
    else:
        kind = Literal[tuple(vocab)]
        desc = f"category, one of: {', '.join(vocab)}"
    if spec.get("nullable", True):
        return kind | None, Field(alias=spec["name"], description=desc + "; null when missing")
    return kind, Field(alias=spec["name"], description=desc)


def _datetime_field(spec: Mapping[str, Any]) -> tuple[Any, Any]:
    parts = ", ".join(spec.get("parts", []))
    desc = f"ISO 8601 date/time (training range {spec.get('min')} .. {spec.get('max')}); expanded into {parts}"
    # A date alone (2024-03-05) is a date/time at midnight, as training read it.
    kind: Any = Annotated[datetime, Field(strict=True)] | Annotated[date, Field(strict=True)]
    if spec.get("nullable", True):
        return kind | None, Field(alias=spec["name"], description=desc + "; null when missing")
    return kind, Field(alias=spec["name"], description=desc)


def _image_field(schema: list[dict[str, Any]], shape: list[int], settings: ServiceConf) -> tuple[Any, Any]:
    if math.prod(shape) != len(schema) or any(s["dtype"] != "float" for s in schema):
        raise DataError(
            f"an image model's features must be {math.prod(shape)} numeric pixels (shape {shape}), "
            f"not {len(schema)} features",
            key="preprocessor.shape",
            value=shape,
            fix="retrain with data.shape matching the pixel columns",
        )
    # Per-pixel training ranges are meaningless (a corner pixel may never have lit up in
    # training); the range check uses the range of all pixels together.
    low, high = _bounds(min(float(s["min"]) for s in schema), max(float(s["max"]) for s in schema), settings)
    kind: Any = _number(low, high)
    for size in reversed(shape):
        kind = Annotated[list[kind], Field(min_length=size, max_length=size)]
    bounds = f" with values in [{low:g}, {high:g}]" if low is not None and high is not None else ""
    desc = f"image as a nested array of shape {list(shape)} (channels, height, width){bounds}"
    return kind, Field(alias=IMAGE_FIELD, description=desc)


def _title(meta: Mapping[str, Any]) -> str:
    name = str(meta.get("project", {}).get("name", "model"))
    return "".join(part.capitalize() for part in name.replace("-", "_").split("_") if part) or "Model"


_KEY_ATTR = "sticky_key"


def _key_field(name: str) -> tuple[Any, Any]:
    kind = (
        Annotated[str, Field(max_length=_MAX_CATEGORY_CHARS, strict=True)] | Annotated[int, Field(strict=True)] | None
    )
    desc = (
        "the row's key (optional, not a feature): the prediction log records it so that labels join later; "
        "during a canary rollout it keeps the caller on one model"
    )
    return kind, Field(default=None, alias=name, description=desc)


def _row_model(
    meta: Mapping[str, Any], settings: ServiceConf, lookup: Any = None, key_field: str | None = None
) -> tuple[type[BaseModel], list[str], list[str], list[str] | None]:
    from shipyard.features import lookup_columns, store_columns

    pre = meta["preprocessor"]
    features = list(pre["features"])
    specs = {s["name"]: s for s in meta.get("feature_schema", [])}
    missing = [f for f in features if f not in specs]
    if missing:
        raise DataError(
            f"the bundle's feature_schema lacks feature(s) {', '.join(map(repr, missing[:5]))}",
            key="feature_schema",
            fix="retrain the model with this Shipyard: its bundle records every feature's type and range",
        )
    config = ConfigDict(extra=str(settings.extra_fields), populate_by_name=False, title=f"{_title(meta)}Row")
    shape = pre.get("shape")
    if shape:
        kind, info = _image_field([specs[f] for f in features], list(shape), settings)
        extra = {} if key_field is None else {_KEY_ATTR: _key_field(key_field)}
        row = create_model(f"{_title(meta)}Row", __config__=config, image=(kind, info), **extra)
        return row, features, [IMAGE_FIELD], None
    stored, inputs = store_columns(meta.get("features")), lookup_columns(meta.get("features"))
    if stored and lookup is None:
        raise DataError(
            "this model looks shared features up, and the service has no online store",
            where=str(meta.get("project", {}).get("name", "bundle")),
            fix="build the service with `make deploy` (it materialises features.db beside the model)",
        )
    fields: dict[str, Any] = {} if key_field is None else {_KEY_ATTR: _key_field(key_field)}
    attrs = []
    for i, name in enumerate(features):
        spec = specs[name]
        attr = f"f{i}"
        attrs.append(attr)
        if spec["dtype"] == "category":
            kind, info = _category_field(spec, settings)
        elif spec["dtype"] == "datetime":
            kind, info = _datetime_field(spec)
        else:
            kind, info = _numeric_field(spec, settings)
        # Filled from the store by the validator below: not part of the documented request.
        fields[attr] = (SkipJsonSchema[kind], info) if name in stored else (kind, info)  # type: ignore[misc]
    if not stored:
        return create_model(f"{_title(meta)}Row", __config__=config, **fields), features, attrs, None
    event_time = str(meta["features"]["event_time"])
    for j, name in enumerate(inputs):
        if name == event_time:
            fields[f"k{j}"] = (str, Field(alias=name, max_length=64, description="the row's time (ISO 8601, UTC)"))
        else:
            key = (
                Annotated[str, Field(max_length=_MAX_CATEGORY_CHARS, strict=True)] | Annotated[int, Field(strict=True)]
            )
            fields[f"k{j}"] = (key, Field(alias=name, description="entity key: its shared features are looked up"))
    validators = {"_lookup": model_validator(mode="before")(_store_filler(lookup, stored, inputs))}
    row = create_model(f"{_title(meta)}Row", __config__=config, __validators__=validators, **fields)
    sent = [f for f in features if f not in stored] + [c for c in inputs if c not in features]
    return row, features, attrs, sent


def _store_filler(lookup: Any, stored: list[str], inputs: list[str]) -> Any:
    """The row validator that fills ``stored`` features from the online store by ``inputs``."""
    from shipyard.core.errors import ShipyardError

    def fill(cls: Any, data: Any) -> Any:
        if not isinstance(data, dict) or any(not isinstance(data.get(c), str | int) for c in inputs):
            return data  # the fields' own checks name what is missing or mistyped
        sent = [c for c in stored if c in data]
        if sent:
            raise ValueError(f"{sent[0]} comes from the online store by {', '.join(inputs)}: leave it out")
        try:
            values, reasons = lookup.lookup({c: [data[c]] for c in inputs})
        except ShipyardError as exc:  # a time that does not parse
            raise ValueError(exc.message) from None
        if reasons[0] is not None:
            raise ValueError(reasons[0])
        return {**data, **{c: v[0] for c, v in values.items()}}

    return fill


def _prediction_model(meta: Mapping[str, Any]) -> type[BaseModel]:
    task = meta["preprocessor"]["task"]
    classes = list(meta["preprocessor"].get("classes", []))
    label: Any = int if classes and all(isinstance(c, int) for c in classes) else (str | int | float | bool)
    version = (str, Field(description="the model version that made this prediction"))
    title = f"{_title(meta)}Prediction"
    config = ConfigDict(title=title)
    if task == "regression":
        return create_model(
            title, __config__=config, prediction=(float, Field(description="predicted value")), model_version=version
        )
    probabilities = (dict[str, float], Field(description="probability of each class (keys: the class labels)"))
    if task == "binary":
        return create_model(
            title,
            __config__=config,
            prediction=(label, Field(description="predicted class")),
            score=(float, Field(description=f"probability of the positive class {classes[-1]!r}")),
            probabilities=probabilities,
            model_version=version,
        )
    return create_model(
        title,
        __config__=config,
        prediction=(label, Field(description="predicted class")),
        probabilities=probabilities,
        model_version=version,
    )


def build_schema(
    meta: Mapping[str, Any], settings: ServiceConf, lookup: Any = None, key_field: str | None = None
) -> ServiceSchema:
    """The request and response models for a bundle's ``bundle.json`` (no torch needed);
    ``lookup`` (:class:`shipyard.features.FeatureLookup`) fills a model's shared features;
    ``key_field`` adds an optional row field holding a canary's sticky key."""
    if key_field is not None and key_field in meta["preprocessor"]["features"]:
        raise DataError(
            f"the sticky key {key_field!r} is one of the model's features",
            key="deploy.service.rollout.sticky_key",
            value=key_field,
            fix="name a column that is not a feature (the row key, data.key), or use sticky_header",
        )
    row, features, attrs, sent = _row_model(meta, settings, lookup, key_field)
    rows = Annotated[
        list[row],  # type: ignore[valid-type]
        Field(
            min_length=1,
            max_length=settings.max_rows_per_request,
            description=f"1 to {settings.max_rows_per_request} rows to score",
        ),
    ]
    request = create_model(
        f"{_title(meta)}Request",
        __config__=ConfigDict(extra="forbid", title=f"{_title(meta)}Request"),
        rows=(rows, ...),
    )
    shape = meta["preprocessor"].get("shape")
    shape_ = list(shape) if shape else None
    key_attr = _KEY_ATTR if key_field is not None else None
    return ServiceSchema(row, request, _prediction_model(meta), features, attrs, shape_, sent, key_attr)


def _plain(value: Any) -> Any:
    """A cell as JSON has it: numpy scalars as Python numbers, NaN and None as null."""
    value = value.item() if hasattr(value, "item") else value
    if hasattr(value, "isoformat"):  # a date/time (pandas' NaT is not equal to itself: missing)
        return value.isoformat() if value == value else None
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _example_rows(meta: Mapping[str, Any], schema: ServiceSchema, frame: Any) -> list[dict[str, Any]]:
    """Candidate request rows: each row of ``frame`` (features only), or one row made of the
    training minimums and first categories when there is no frame."""
    if frame is None:
        if schema.sent is not None:
            raise DataError(
                "a model that looks shared features up needs the test split for an example request",
                key="example",
                fix="pass the test split (make deploy does)",
            )
        specs = {s["name"]: s for s in meta.get("feature_schema", [])}
        values = [
            specs[f]["min"] if specs[f]["dtype"] != "category" else (specs[f].get("categories") or [None])[0]
            for f in schema.features
        ]
        records = [dict(zip(schema.features, values, strict=True))]
    else:
        records = frame[schema.request_names].head(100).to_dict(orient="records")
    rows = []
    for record in records:
        cells = [_plain(record[f]) for f in schema.request_names]
        if schema.shape is not None:
            import numpy as np

            pixels = np.asarray([math.nan if c is None else c for c in cells], dtype=np.float64)
            rows.append({IMAGE_FIELD: pixels.reshape(schema.shape).tolist()})
        else:
            rows.append(dict(zip(schema.request_names, cells, strict=True)))
    return rows


def example_request(meta: Mapping[str, Any], schema: ServiceSchema, frame: Any = None) -> dict[str, Any]:
    """A request body ``/predict`` accepts: the first row of ``frame`` (a test split) that passes
    the request schema, or, without a frame, a row of training minimums and first categories."""
    import json

    from pydantic import ValidationError

    for row in _example_rows(meta, schema, frame):
        body = {"rows": [row]}
        try:
            schema.request.model_validate_json(json.dumps(body, allow_nan=False))
        except (ValidationError, ValueError):
            continue
        return body
    raise DataError(
        "no row of the test split passes the service's request schema, so there is no example request",
        key="deploy.service.range_check",
        fix="check the feature ranges the bundle records, or widen deploy.service.range_check.margin",
    )
