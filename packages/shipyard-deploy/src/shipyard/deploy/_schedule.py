"""The schedule files Shipyard writes for a batch job and for a project's monitoring run: crontab
lines, and an Airflow DAG in the shape of kedro-airflow's template (Airflow 3, ``airflow.sdk``)
with one bash task. Both find the repository and the interpreter where they run (``$SHIPYARD_ROOT``,
``$SHIPYARD_PYTHON``), so neither holds a path of the machine that wrote it."""

from __future__ import annotations

import json
from dataclasses import dataclass


def cron_text(comment: str, cron: str, run: str, root: str) -> str:
    """``comment`` (one ``#`` line per line), the ``SHIPYARD_ROOT=/path/to/<root>`` line to fill
    in, and the crontab line running ``run`` from that folder."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [
        f"SHIPYARD_ROOT=/path/to/{root}",
        f'{cron} cd "${{SHIPYARD_ROOT:?set SHIPYARD_ROOT in the crontab}}" && {run}',
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Dag:
    """What one schedule's DAG file says and runs.

    ``constants`` are the file's module-level assignments; among them ``DEPTH`` (folders between
    the base folder and the file's), ``PYTHON`` (the interpreter relative to the base folder, or
    None for ``python3`` on PATH) and ``ARGS`` (what follows ``python -m``). The task's command
    ends with the Airflow template ``{{ <macro> }}``, or ``<arg>`` given on the command line."""

    doc: str
    constants: str
    arg: str
    macro: str
    command_doc: str
    dag_id: str
    cron: str
    retries: int
    tags: tuple[str, ...]
    task: str
    task_doc: str
    usage: str


def airflow_dag(dag: Dag) -> str:
    default = "{{ " + dag.macro + " }}"
    return f'''"""{dag.doc}"""

from __future__ import annotations

import os
import shlex
import sys
from datetime import datetime, timedelta
from pathlib import Path

try:
    from airflow.sdk import dag, task
except ImportError:  # run as a script, where Airflow is not installed: see __main__ below
    dag = task = None

{dag.constants}


def command({dag.arg}: str = "{default}") -> str:
    """{dag.command_doc}"""
    base = os.environ.get("SHIPYARD_ROOT") or str(Path(__file__).resolve().parents[DEPTH])
    python = os.environ.get("SHIPYARD_PYTHON") or (os.path.join(base, PYTHON) if PYTHON else "python3")
    run = [python, "-m", *ARGS]
    return f"cd {{shlex.quote(base)}} && {{shlex.join(run)}} {{{dag.arg}}}"


if dag is not None:

    @dag(
        dag_id={dag.dag_id!r},
        start_date=datetime(2024, 1, 1),
        schedule={dag.cron!r},
        catchup=False,
        max_active_runs=1,
        default_args=dict(
            owner="shipyard", depends_on_past=False, retries={dag.retries}, retry_delay=timedelta(minutes=5)
        ),
        tags={json.dumps(list(dag.tags))},
    )
    def {dag.dag_id}():
        @task.bash
        def {dag.task}() -> str:
            """{dag.task_doc}"""
            return command()

        {dag.task}()

    {dag.dag_id}()
elif __name__ == "__main__":
    print(command(sys.argv[1]) if len(sys.argv) == 2 else "usage: python airflow_dag.py {dag.usage}")
'''
