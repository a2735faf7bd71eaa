"""``serve``: run a built service folder on this machine with BentoML's production server."""

from __future__ import annotations

import os
from pathlib import Path

from shipyard.deploy.service._app import api_key, read_spec, settings_from

__all__ = ["serve"]


def serve(out_dir: Path, port: int, host: str = "127.0.0.1") -> int:
    """Serve ``out_dir`` (written by ``build_service``) on ``host:port`` until interrupted.

    Blocks; returns the exit status (0 after Ctrl-C or SIGTERM). Refuses to start, with one
    message and exit code 2, when auth is on and the key is not in the environment, or when the
    folder's bundle or the store's model fails its weights hash (a damaged file is never
    served, and never sends workers into a restart loop).
    """
    out_dir = Path(out_dir).resolve()
    spec = read_spec(out_dir)
    settings = settings_from(spec["settings"])
    api_key(settings)  # fail here with one clear message, before BentoML loads anything
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    from shipyard.deploy.service._store import sync_model

    # The folder's bundle (the DVC-tracked deployment) is checked, and put into BentoML's model
    # store if the store lacks it; the server's own preflight then checks the store's copy.
    sync_model(out_dir, spec, verify=True)
    import bentoml

    bentoml.serve("service:ShipyardService", working_dir=str(out_dir), host=host, port=port, blocking=True)
    return 0
