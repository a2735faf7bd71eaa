"""Train vision/digits on ``trainer=gpu`` and ``trainer=cpu`` and print samples/s for both:
``make gpu-check`` or ``.venv/bin/python benchmarks/gpu_check.py``.

Runs in a throwaway repository (see ``_common.py``). Each run is ``shipyard train vision/digits
trainer=<kind> --force``; the figures come from the run's ``08_reporting/train_report.json``.
Without a CUDA GPU it says so, runs the CPU half only and exits 0. Stops before 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import BIN, GATE_FAILED, BenchError, bench_env, make_sandbox, run

PROJECT = "vision/digits"
REPORT = Path("data/vision/digits/08_reporting/train_report.json")
DEADLINE_S = 290.0


def cuda_name() -> str | None:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def train(root: Path, trainer: str, deadline: float) -> dict[str, Any]:
    left = deadline - time.monotonic()
    if left < 10:
        raise BenchError(f"no time left for trainer={trainer} (the check stops at {DEADLINE_S:.0f} s)")
    cmd = [str(BIN / "shipyard"), "train", PROJECT, f"trainer={trainer}", "trainer.progress_bar=false", "--force"]
    wall, out = run(cmd, root, bench_env(root), timeout=left, gate_rc=GATE_FAILED)
    report = json.loads((root / REPORT).read_text())
    gate = "FAILED" if "gate FAILED" in out else "passed" if "gate passed" in out else "-"
    return {"trainer": trainer, "wall_seconds": round(wall, 2), "gate": gate, **report}


def line(r: dict[str, Any]) -> str:
    hw = r["hardware"]
    device = hw.get("cuda") or f"{hw.get('cpu')} x{hw.get('cpu_count')}"
    return (
        f"trainer={r['trainer']:<4} {r['samples_per_second']:>10,.1f} samples/s   "
        f"train {r['train_seconds']:7.2f} s   epochs {r['epochs']:>3}   whole run {r['wall_seconds']:7.2f} s   "
        f"{hw['accelerator']} {hw['precision']} on {device}   gate {r['gate']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the throwaway repository and print its path")
    parser.add_argument(
        "--live", action="store_true", help="run the live packages/ source, not a snapshot taken at the start"
    )
    args = parser.parse_args(argv)
    deadline = time.monotonic() + DEADLINE_S

    gpu = cuda_name()
    if gpu is None:
        print("no CUDA GPU present (torch.cuda.is_available() is False): skipping trainer=gpu, running trainer=cpu")
    kinds = ["gpu", "cpu"] if gpu else ["cpu"]

    parent = Path(tempfile.mkdtemp(prefix="shipyard-gpu-check-"))
    results = []
    try:
        root = make_sandbox(parent, snapshot=not args.live)
        for kind in kinds:
            print(f"training {PROJECT} with trainer={kind} ...", file=sys.stderr, flush=True)
            results.append(train(root, kind, deadline))
    except BenchError as exc:
        print(f"gpu check failed: {exc}", file=sys.stderr)
        for r in results:
            print(line(r))
        return 1
    finally:
        if args.keep:
            print(f"kept the throwaway repository: {parent}", file=sys.stderr)
        else:
            shutil.rmtree(parent, ignore_errors=True)

    for r in results:
        print(line(r))
    if len(results) == 2:
        speedup = results[0]["samples_per_second"] / results[1]["samples_per_second"]
        print(f"gpu/cpu samples/s: {speedup:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
