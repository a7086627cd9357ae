"""Shared fixtures: the repository, the bundled specs (built in memory from spec/)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from stealth_spec.bundle import bundle

REPO = Path(__file__).resolve().parent.parent
SPECS = {"partner": REPO / "spec" / "partner-api", "pharmacy": REPO / "spec" / "pharmacy-api"}


@cache
def bundled(api: str) -> dict[str, Any]:
    """The bundled document of ``api`` ("partner" or "pharmacy"), built once per process."""
    return bundle(SPECS[api])


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
