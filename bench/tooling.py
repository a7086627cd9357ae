"""Part 4: wall time of `make generate` (after a spec change: bundle + generate) and a full `make conformance`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from bench.procs import REPO

BUNDLES = (
    "partner-api.json",
    "pharmacy-api.json",
    "partner-api.referral.json",
    "partner-api.clinical.json",
    "partner-api.prescriber.json",
)


def _timed(cmd: list[str], log: Path, timeout: float) -> dict[str, Any]:
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.run(
            cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    return {"seconds": round(time.perf_counter() - started, 1), "exit": proc.returncode}


def generate(logs: Path) -> dict[str, Any]:
    """Cold (bundles removed, as after a spec edit: bundle + generate) and warm (generate alone)."""
    for name in BUNDLES:
        (REPO / "build" / "openapi" / name).unlink(missing_ok=True)
    cold = _timed(["make", "generate"], logs / "make-generate-cold.log", 600)
    warm = _timed(["make", "generate"], logs / "make-generate-warm.log", 600)
    return {"cold": cold, "warm": warm}


def conformance(logs: Path) -> dict[str, Any]:
    return _timed(["make", "conformance"], logs / "make-conformance.log", 1800)
