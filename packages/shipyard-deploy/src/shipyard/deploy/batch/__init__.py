"""The batch job target: score a day's rows at once, in bounded memory, resumably.

``build_batch_job`` writes ``deploy/<team>/<name>/batch/`` (job spec, bundle copy, Kedro
pipeline, cron line, Airflow DAG); ``run_batch_job`` (or ``python -m shipyard.deploy.batch run``)
reads CSV, Parquet or a SQL table in chunks, scores them with the bundle's own preprocessing,
and commits Parquet parts, a CSV file or SQL rows part by part, here or on a Dask cluster.

Importing this package is cheap: torch, pyarrow, Kedro and Dask load when a job runs.
"""

from __future__ import annotations

from shipyard.deploy.batch._build import build_batch_job
from shipyard.deploy.batch._run import run_batch_job

__all__ = ["build_batch_job", "run_batch_job"]
