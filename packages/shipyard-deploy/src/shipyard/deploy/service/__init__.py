"""The BentoML HTTP service target: ``make deploy TARGET=service`` and ``make serve``.

:func:`build_service` turns a model bundle and the ``deploy.service`` config section into a
service folder (``deploy/<team>/<name>/service/``) and a Bento in the local BentoML store;
:func:`serve` runs that folder on localhost; ``python -m shipyard.deploy.service serve OUT_DIR
--port N`` does the same from a shell. Importing this package imports neither BentoML nor torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from shipyard.core.schema import ServiceConf

__all__ = ["build_service", "compare_rollout", "load_service", "serve"]


def build_service(
    bundle_dir: Path,
    out_dir: Path,
    conf: ServiceConf | Mapping[str, Any] | None,
    *,
    project: str,
    version: str | None = None,
    example: Any = None,
    feature_store: Path | None = None,
    candidate: tuple[Path, str] | None = None,
    key_field: str | None = None,
    prediction_log: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the service folder for ``bundle_dir`` into ``out_dir`` and build its Bento.

    ``conf`` is the project's typed ``deploy.service`` section (plain data is checked against the
    schema); ``version`` the model version the
    responses carry (default: the bundle's ``weights_sha256[:12]``); ``example`` a DataFrame of
    test rows, the first of which the service accepts becomes ``request.json``. Returns the
    report that is also written to ``out_dir/build.json``: paths, Bento tag, endpoints.

    A rollout (``conf.rollout.mode`` shadow or canary) carries a ``candidate`` beside the model:
    ``(bundle folder, version)``; ``key_field`` names the row field a canary's sticky key comes
    in (the project's row key); ``prediction_log`` (``shipyard.deploy._predlog.log_spec``) makes the
    service record what it scores (both models' predictions in a rollout); None records nothing.
    ``feature_store``: the folder of a model's online store (shared features), copied in.
    """
    from shipyard.deploy.service._build import build_service as build

    return build(
        bundle_dir,
        out_dir,
        conf,
        project=project,
        version=version,
        example=example,
        feature_store=feature_store,
        candidate=candidate,
        key_field=key_field,
        prediction_log=prediction_log,
    )


def compare_rollout(location: Any, **options: Any) -> dict[str, Any]:
    """Production against a rollout's candidate on the logged traffic: agreement, distributions,
    latency, live metrics and the verdict (see :mod:`shipyard.deploy.service._compare`)."""
    from shipyard.deploy.service._compare import compare_rollout as compare

    return compare(location, **options)


def serve(out_dir: Path, port: int, host: str = "127.0.0.1") -> int:
    """Run the service built in ``out_dir`` on ``host:port``; blocks until stopped."""
    from shipyard.deploy.service._serve import serve as run

    return run(out_dir, port, host)


def load_service(out_dir: Path) -> Any:
    """The ``bentoml.Service`` of a built service folder (its ``service.py`` calls this)."""
    from shipyard.deploy.service._app import load_service as load

    return load(out_dir)
