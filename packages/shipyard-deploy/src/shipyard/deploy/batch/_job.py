"""The job spec: what ``job.yaml`` in a job folder says, loaded into a :class:`Job`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.core.compose import dump, section
from shipyard.core.errors import ConfigError, DataError
from shipyard.core.schema import BatchConf

__all__ = ["BUNDLE_DIR", "CANDIDATE_DIR", "JOB_FILE", "JOB_FORMAT", "Job", "load_job"]

JOB_FORMAT = "shipyard-batch-job/1"
JOB_FILE = "job.yaml"
BUNDLE_DIR = "bundle"
_HEADER = (
    "format",
    "project",
    "version",
    "bundle",
    "weights_sha256",
    "task",
    "key_generated",
    "features",
    "candidate",
    "prediction_log",
)
CANDIDATE_DIR = "candidate"  # shadow scoring: the candidate's bundle beside production's


@dataclass(frozen=True)
class Job:
    """A built batch job. Picklable: Dask ships it to every worker."""

    dir: Path
    project: str
    version: str
    weights_sha256: str
    task: str
    key_generated: bool  # the project numbers its rows, so an input may lack the key column
    features: tuple[str, ...]
    # Settings are mutable dataclasses: left out of the hash (a job's scorer is cached per job),
    # still compared by equality.
    conf: BatchConf = dataclasses.field(hash=False)
    # Shadow scoring: (version, weights sha256) of a candidate scored beside the model.
    candidate: tuple[str, str] | None = None
    # Where and how the job records what it scores (``monitor.log``); None: it records nothing.
    prediction_log: dict[str, Any] | None = dataclasses.field(default=None, hash=False)

    @property
    def key(self) -> str:
        return str(self.conf.key)

    @property
    def bundle(self) -> Path:
        return self.dir / BUNDLE_DIR

    @property
    def candidate_bundle(self) -> Path:
        return self.dir / CANDIDATE_DIR

    def spec(self) -> dict[str, Any]:
        """The content of ``job.yaml`` (the bundle path is relative to the job folder)."""
        head = {
            "format": JOB_FORMAT,
            "project": self.project,
            "version": self.version,
            "bundle": BUNDLE_DIR,
            "weights_sha256": self.weights_sha256,
            "task": self.task,
            "key_generated": self.key_generated,
            "features": list(self.features),
            "prediction_log": self.prediction_log,
        }
        if self.candidate is not None:
            head["candidate"] = {"version": self.candidate[0], "weights_sha256": self.candidate[1]}
        return {**head, **dump(self.conf)}

    def with_conf(self, **changes: Any) -> Job:
        return dataclasses.replace(self, conf=dataclasses.replace(self.conf, **changes))


def load_job(job_dir: Path) -> Job:
    """Read ``job_dir/job.yaml``; a missing or foreign folder is the user's mistake."""
    import yaml

    path = job_dir / JOB_FILE
    if not path.is_file():
        raise ConfigError(
            f"{job_dir} is not a batch job folder (no {JOB_FILE})",
            where=str(job_dir),
            fix="build it first: `make deploy PROJECT=<team>/<name> TARGET=batch`, or pass deploy/<team>/<name>/batch",
        )
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}", where=str(path), fix="rebuild the job") from exc
    if not isinstance(spec, dict) or spec.get("format") != JOB_FORMAT:
        raise ConfigError(
            f"{path} is not a {JOB_FORMAT} spec",
            where=str(path),
            value=spec.get("format") if isinstance(spec, dict) else None,
            fix="rebuild the job with this Shipyard: `make deploy TARGET=batch`",
        )
    conf = section(BatchConf, {k: v for k, v in spec.items() if k not in _HEADER}, JOB_FILE)
    bundle = job_dir / BUNDLE_DIR
    if not (bundle / "bundle.json").is_file():
        raise DataError(f"the job's model bundle is missing: {bundle}", where=str(path), fix="rebuild the job")
    shadow = spec.get("candidate")
    if shadow and not (job_dir / CANDIDATE_DIR / "bundle.json").is_file():
        raise DataError(
            f"the job's candidate bundle is missing: {job_dir / CANDIDATE_DIR}", where=str(path), fix="rebuild the job"
        )
    return Job(
        dir=job_dir.resolve(),
        project=str(spec["project"]),
        version=str(spec["version"]),
        weights_sha256=str(spec["weights_sha256"]),
        task=str(spec["task"]),
        key_generated=bool(spec["key_generated"]),
        features=tuple(spec.get("features") or ()),
        conf=conf,
        candidate=(str(shadow["version"]), str(shadow["weights_sha256"])) if shadow else None,
        prediction_log=spec.get("prediction_log") or None,
    )
