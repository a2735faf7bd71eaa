"""Run one compiled stage: ``python -m shipyard.engine.stage TEAM/NAME STAGE``.

This is the command every ``dvc.yaml`` stage runs, so plain ``dvc repro`` works without the
Shipyard CLI. It reads the compiled ``params.yaml`` (not ``conf/``) back through the same schema and rules
as composing (:func:`shipyard.core.compose.load`), builds the Kedro pipeline and catalog with
the typed sections as params, and runs the stage's node with Kedro's ``SequentialRunner``.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from shipyard.core.env import env_default
from shipyard.core.errors import ConfigError, ShipyardError
from shipyard.core.paths import ProjectPaths, find_root

if TYPE_CHECKING:
    from shipyard.core.schema import ShipyardConfig

__all__ = ["main", "remember_params", "run_stage"]

# The last params.yaml validated in this process: (root, file bytes) -> config. `shipyard train`
# runs every stage in one process with the same params.yaml, so it is read and validated once per
# run instead of once per stage; any change to the file (or another root) misses and validates.
_LOADED: dict[tuple[str, bytes], ShipyardConfig] = {}


def _quiet_kedro() -> None:
    """Kedro configures rich logging at import; keep stage output to what matters."""
    import logging

    # Importing Kedro's runner configures logging from $KEDRO_LOGGING_CONFIG, once per process;
    # set for that import only, so that a caller's own `kedro run` later logs as Kedro does.
    with env_default("KEDRO_LOGGING_CONFIG", str(Path(__file__).with_name("logging.yml"))):
        import kedro.runner  # noqa: F401
    # Node failures are reported once, by the CLI, with the fix; not again by Kedro's logger.
    logging.getLogger("kedro").setLevel(logging.CRITICAL)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


# Set by Lightning's DDP launcher (LOCAL_RANK for the processes it starts, NODE_RANK given to each
# node), by torchrun (RANK, GROUP_RANK) and by SLURM.
_RANK_VARIABLES = ("LOCAL_RANK", "NODE_RANK", "RANK", "GROUP_RANK", "SLURM_PROCID", "SLURM_NODEID")


def _rank() -> int:
    """Non-zero in every process of a distributed training but global rank 0: the extra local
    ranks and every process on another node. Those keep the stage's outputs in memory, so a
    project's files are written once, by rank 0."""
    return max(int(os.environ.get(name) or 0) for name in _RANK_VARIABLES)


def run_stage(root: Path, project: str, stage: str) -> None:
    from shipyard.engine.pipeline import build_catalog, build_pipeline, project_nodes

    paths = ProjectPaths.of(root, project)
    if not paths.params_yaml.is_file():
        raise ConfigError(
            f"{paths.rel(paths.params_yaml)} does not exist",
            fix=f"compile the project first: shipyard compile {project}",
        )
    config = _load(paths, root)
    names = [s.name for s in project_nodes(config)]
    if stage not in names:
        raise ConfigError(f"unknown stage {stage!r}", value=stage, fix="use one of: " + ", ".join(names))
    _quiet_kedro()
    from kedro.runner import SequentialRunner

    spec = next(s for s in project_nodes(config) if s.name == stage)
    memory = spec.outputs if _rank() > 0 else ()
    catalog = build_catalog(config, paths, memory_outputs=memory)
    SequentialRunner().run(build_pipeline(only=stage, config=config), catalog)


def remember_params(paths: ProjectPaths, config: ShipyardConfig) -> None:
    """``config`` is what the project's ``params.yaml`` now holds (the compiler just wrote it
    from ``config``): the in-process stages take it instead of validating the file again."""
    _LOADED.clear()
    _LOADED[(str(paths.root.resolve()), paths.params_yaml.read_bytes())] = copy.deepcopy(config)


def _load(paths: ProjectPaths, root: Path) -> ShipyardConfig:
    """The project's compiled config, validated; a copy, so a node cannot change the next one's."""
    from shipyard.core.compose import load

    text = paths.params_yaml.read_bytes()
    key = (str(root.resolve()), text)
    if key not in _LOADED:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's loader when built with it
        config = load(yaml.load(text, Loader=loader), root)
        _LOADED.clear()
        _LOADED[key] = config
    return copy.deepcopy(_LOADED[key])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m shipyard.engine.stage TEAM/NAME STAGE", file=sys.stderr)
        return 2
    try:
        run_stage(find_root(), args[0], args[1])
    except ShipyardError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
