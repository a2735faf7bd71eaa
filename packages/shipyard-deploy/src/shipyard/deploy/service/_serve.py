"""``serve``: run a built service folder on this machine with BentoML's production server."""

from __future__ import annotations

import os
from pathlib import Path

from shipyard.deploy.service._app import api_key, read_spec
from shipyard.deploy.service._config import ServiceSettings

__all__ = ["serve"]


def serve(out_dir: Path, port: int, host: str = "127.0.0.1") -> int:
    """Serve ``out_dir`` (written by ``build_service``) on ``host:port`` until interrupted.

    Blocks; returns the exit status (0 after Ctrl-C or SIGTERM). Refuses to start, with a
    config error, when auth is on and the key is not in the environment.
    """
    out_dir = Path(out_dir).resolve()
    settings = ServiceSettings.from_dict(read_spec(out_dir)["settings"])
    api_key(settings)  # fail here with one clear message, not in every worker
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    import bentoml

    bentoml.serve("service:ShipyardService", working_dir=str(out_dir), host=host, port=port, blocking=True)
    return 0
