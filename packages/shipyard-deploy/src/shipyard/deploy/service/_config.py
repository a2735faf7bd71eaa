"""The ``deploy.service`` config section: defaults, validation, and the typed settings.

The values live in ``conf/deploy/service/default.yaml`` (Hydra package ``deploy.service``);
the framework schema types that section as a free dict, so this module is where an unknown key
or a bad value is caught, with the full key path and a fix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from shipyard.core.errors import ConfigError, did_you_mean

__all__ = ["DEFAULTS", "SECTION", "ServiceSettings", "validate_settings"]

SECTION = "deploy.service"

# Mirrors conf/deploy/service/default.yaml: a section given as a plain dict (tests, the API)
# gets the same defaults as one composed by Hydra.
DEFAULTS: dict[str, Any] = {
    "name": None,
    "host": "127.0.0.1",
    "port": 3000,
    "workers": 1,
    "torch_threads": 1,
    "timeout_s": 30,
    "max_concurrency": None,
    "batching": {"enabled": True, "max_batch_size": 64, "max_latency_ms": 1000},
    "max_rows_per_request": 1000,
    "max_request_bytes": 1048576,
    "range_check": {"enabled": True, "margin": 1.0},
    "unknown_categories": False,
    "extra_fields": "forbid",
    "auth": {"enabled": False, "env_var": "SHIPYARD_API_KEY", "min_length": 16},
    "inference": "auto",
    "metrics": True,
    "tracing": False,
    "access_log": False,
    "bento": {"build": True},
    "kubernetes": {"replicas": 2, "cpu": "1", "memory": "1Gi", "secret": None},
}

_NAME = re.compile(r"^[a-z0-9]([-._a-z0-9]*[a-z0-9])?$")
_ENV_VAR = re.compile(r"^[A-Z_][A-Z0-9_]*$")


@dataclass(frozen=True)
class ServiceSettings:
    """Validated ``deploy.service`` settings (see ``conf/deploy/service/default.yaml``)."""

    name: str | None
    host: str
    port: int
    workers: int | str
    torch_threads: int | None
    timeout_s: float
    max_concurrency: int | None
    batching: bool
    max_batch_size: int
    max_latency_ms: int
    max_rows_per_request: int
    max_request_bytes: int
    range_check: bool
    range_margin: float
    unknown_categories: bool
    extra_fields: str
    auth: bool
    auth_env_var: str
    auth_min_length: int
    inference: str
    metrics: bool
    tracing: bool
    access_log: bool
    build_bento: bool
    k8s_replicas: int
    k8s_cpu: str
    k8s_memory: str
    k8s_secret: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServiceSettings:
        """Rebuild from :meth:`to_dict` output (``service.json`` of a built service)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _merge(defaults: Mapping[str, Any], given: Mapping[str, Any], path: str) -> dict[str, Any]:
    """``given`` over ``defaults``, refusing keys the defaults do not have (with a suggestion)."""
    merged = dict(defaults)
    for key, value in given.items():
        where = f"{path}.{key}"
        if key not in defaults:
            raise ConfigError(
                f"unknown key {where}{_suggest(str(key), defaults)}",
                key=where,
                fix="valid keys here: " + ", ".join(defaults),
            )
        if isinstance(defaults[key], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where} must be a mapping", key=where, value=value, fix=_fix_for(key))
            merged[key] = _merge(defaults[key], value, where)
        else:
            merged[key] = value
    return merged


def _suggest(key: str, defaults: Mapping[str, Any]) -> str:
    """A did-you-mean over this level's keys, then over the keys one level down
    (``max_batch_size`` given at the top belongs under ``batching``)."""
    here = did_you_mean(key, defaults)
    if here:
        return here
    nested = {f"{k}.{leaf}": leaf for k, v in defaults.items() if isinstance(v, dict) for leaf in v}
    leaf = did_you_mean(key, nested.values())
    found = [path for path, name in nested.items() if leaf == f' (did you mean "{name}"?)']
    return f' (did you mean "{found[0]}"?)' if found else ""


def _fix_for(key: str) -> str:
    return f"see conf/deploy/service/default.yaml for the shape of '{key}'"


def _int(value: Any, key: str, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        upper = f" and at most {high}" if high is not None else ""
        raise ConfigError(
            f"{SECTION}.{key} must be a whole number of at least {low}{upper}",
            key=f"{SECTION}.{key}",
            value=value,
            fix=f"set {SECTION}.{key} to a whole number >= {low}",
        )
    return value


def _optional_int(value: Any, key: str, *, low: int) -> int | None:
    return None if value is None else _int(value, key, low=low)


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(
            f"{SECTION}.{key} must be true or false",
            key=f"{SECTION}.{key}",
            value=value,
            fix=f"set {SECTION}.{key}: true or false",
        )
    return value


def _choice(value: Any, key: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(
            f"{SECTION}.{key} must be one of {', '.join(choices)}{did_you_mean(str(value), choices)}",
            key=f"{SECTION}.{key}",
            value=value,
            fix=f"set {SECTION}.{key} to one of: {', '.join(choices)}",
        )
    return str(value)


def _workers(value: Any) -> int | str:
    return "cpu_count" if value == "cpu_count" else _int(value, "workers", low=1)


def _margin(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ConfigError(
            f"{SECTION}.range_check.margin must be a number between 0 and 100",
            key=f"{SECTION}.range_check.margin",
            value=value,
            fix="give the widening as a fraction of the training range, e.g. 0.1 for 10 %; "
            "set range_check.enabled: false to turn range checks off",
        )
    return float(value)


def _name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            f"{SECTION}.name {value!r} is not a valid Bento name",
            key=f"{SECTION}.name",
            value=value,
            fix="use lower-case letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        )
    return value


def _env_var(value: Any) -> str:
    if not isinstance(value, str) or not _ENV_VAR.match(value):
        raise ConfigError(
            f"{SECTION}.auth.env_var must name an environment variable",
            key=f"{SECTION}.auth.env_var",
            value=value,
            fix="use an upper-case name such as SHIPYARD_API_KEY; the key itself is never stored in config",
        )
    return value


def _text(value: Any, key: str, *, none_ok: bool = False) -> str | None:
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float) or str(value) == "":
        raise ConfigError(
            f"{SECTION}.{key} must be a non-empty string", key=f"{SECTION}.{key}", value=value, fix=_fix_for(key)
        )
    return str(value)


def _host(value: Any) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError as exc:
        raise ConfigError(
            f"{SECTION}.host must be an IP address",
            key=f"{SECTION}.host",
            value=value,
            fix="use 127.0.0.1 to serve on this machine only (0.0.0.0 inside a container)",
        ) from exc


def _timeout(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(
            f"{SECTION}.timeout_s must be a positive number of seconds",
            key=f"{SECTION}.timeout_s",
            value=value,
            fix="set timeout_s to e.g. 30",
        )
    return float(value)


def validate_settings(section: Mapping[str, Any] | None) -> ServiceSettings:
    """Check a ``deploy.service`` section (missing keys take the defaults) and type it."""
    if section is not None and not isinstance(section, Mapping):
        raise ConfigError(f"{SECTION} must be a mapping", key=SECTION, value=section, fix=_fix_for("service"))
    c = _merge(DEFAULTS, section or {}, SECTION)
    batching, ranges, auth, bento, k8s = c["batching"], c["range_check"], c["auth"], c["bento"], c["kubernetes"]
    return ServiceSettings(
        name=_name(c["name"]),
        host=_host(c["host"]),
        port=_int(c["port"], "port", low=1, high=65535),
        workers=_workers(c["workers"]),
        torch_threads=_optional_int(c["torch_threads"], "torch_threads", low=1),
        timeout_s=_timeout(c["timeout_s"]),
        max_concurrency=_optional_int(c["max_concurrency"], "max_concurrency", low=1),
        batching=_bool(batching["enabled"], "batching.enabled"),
        # BentoML needs room for at least two requests in a batch.
        max_batch_size=_int(batching["max_batch_size"], "batching.max_batch_size", low=2),
        max_latency_ms=_int(batching["max_latency_ms"], "batching.max_latency_ms", low=1),
        max_rows_per_request=_int(c["max_rows_per_request"], "max_rows_per_request", low=1),
        max_request_bytes=_int(c["max_request_bytes"], "max_request_bytes", low=1024),
        range_check=_bool(ranges["enabled"], "range_check.enabled"),
        range_margin=_margin(ranges["margin"]),
        unknown_categories=_bool(c["unknown_categories"], "unknown_categories"),
        extra_fields=_choice(c["extra_fields"], "extra_fields", ("forbid", "ignore")),
        auth=_bool(auth["enabled"], "auth.enabled"),
        auth_env_var=_env_var(auth["env_var"]),
        auth_min_length=_int(auth["min_length"], "auth.min_length", low=1),
        inference=_choice(c["inference"], "inference", ("auto", "inline", "thread")),
        metrics=_bool(c["metrics"], "metrics"),
        tracing=_bool(c["tracing"], "tracing"),
        access_log=_bool(c["access_log"], "access_log"),
        build_bento=_bool(bento["build"], "bento.build"),
        k8s_replicas=_int(k8s["replicas"], "kubernetes.replicas", low=1),
        k8s_cpu=_text(k8s["cpu"], "kubernetes.cpu") or "1",
        k8s_memory=_text(k8s["memory"], "kubernetes.memory") or "1Gi",
        k8s_secret=_text(k8s["secret"], "kubernetes.secret", none_ok=True),
    )
