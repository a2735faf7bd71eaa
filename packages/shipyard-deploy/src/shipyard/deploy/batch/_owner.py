"""Who may replace an output: the one ownership rule of every batch sink.

A batch job may create a file or table that does not exist; it may replace or delete one only
when a batch job of the same deployment created it. A deployment is a project's batch job
(``tabular/churn``): two versions of one project's model may take turns writing one output, two
projects may not, and nothing Shipyard did not write is ever touched.

Each sink keeps a :class:`Ledger` in its bookkeeping (``_manifest.json`` of a Parquet folder or
of a CSV file's staging folder, the ``manifest`` row of ``T__batch``) naming, for each file or
table it created, the deployment whose job created it. Before it creates, replaces or deletes
anything it asks :meth:`Ledger.take` (and records the answer before writing, so a killed run
never leaves an unrecorded file). What is named:

- a Parquet folder: ``.`` (the folder itself; a folder holding only a lock file counts as empty);
- a CSV output ``out.csv``: ``.`` (its staging folder ``out.csv.parts``), ``out.csv`` and
  ``out.rejects.csv`` (names beside the staging folder);
- a SQL output ``?table=T``: the tables ``T``, ``T__rejects`` and ``T__batch``.

A refusal is one :class:`~shipyard.core.errors.DataError` (exit code 2) naming the file or table,
who wrote it if a batch job did, and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.core.errors import DataError

__all__ = ["Ledger"]


@dataclass
class Ledger:
    deployment: str  # the job's project, e.g. "tabular/churn"
    output: str  # the output as the user named it (messages)
    written: dict[str, str] = field(default_factory=dict)  # file or table -> deployment that created it

    @classmethod
    def of(cls, manifest: Mapping[str, Any] | None, deployment: str, output: str) -> Ledger:
        """The ledger a manifest records (empty without one, or for a manifest that predates it)."""
        record = (manifest or {}).get("written")
        written = {str(k): str(v) for k, v in record.items()} if isinstance(record, Mapping) else {}
        return cls(deployment, output, written)

    def record(self) -> dict[str, str]:
        return dict(sorted(self.written.items()))

    def owns(self, name: str) -> bool:
        return self.written.get(name) == self.deployment

    def check(self, name: str, what: str, exists: bool) -> None:
        """Refuse to create, replace or delete ``name`` (described as ``what``: "file /x/y.csv")
        unless it is absent or this deployment's."""
        if not exists or self.owns(name):
            return
        writer = self.written.get(name)
        if writer:
            message = f"{what} was written by the batch job of {writer}, not of {self.deployment}"
            fix = f"give {self.deployment} its own output, or remove it if {writer} no longer needs it"
        else:
            message = f"{what} exists and was not written by a batch job of {self.deployment}"
            fix = "pick another output, or move it away if it may go (a batch job only replaces what it wrote)"
        raise DataError(message, where=self.output, fix=fix)

    def take(self, name: str, what: str, exists: bool) -> bool:
        """:meth:`check`, then record ``name`` as this deployment's. True when the record
        changed: the caller saves it before writing."""
        self.check(name, what, exists)
        if self.owns(name):
            return False
        self.written[name] = self.deployment
        return True

    def release(self, name: str) -> bool:
        """Forget ``name`` after deleting it. True when the record changed."""
        return self.written.pop(name, None) is not None

    def prune(self, exists: Callable[[str], bool]) -> None:
        """Forget what no longer exists (removed by a user, or recorded by a run killed before
        it wrote): a file created there later is not this deployment's."""
        self.written = {name: who for name, who in self.written.items() if exists(name)}
