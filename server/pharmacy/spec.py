"""The bundled pharmacy spec and its index (operations, error catalog, webhook schemas)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from server.config import REPO_ROOT
from server.pharmacy import BASE_PATH
from server.spec import SpecIndex, load_spec

PHARMACY_SPEC_DIR = REPO_ROOT / "spec" / "pharmacy-api"


@lru_cache(maxsize=4)
def _load(spec_dir: str) -> dict[str, Any]:
    return load_spec(Path(spec_dir))


def load_pharmacy_spec(spec_dir: Path | None = None) -> dict[str, Any]:
    return _load(str(spec_dir or PHARMACY_SPEC_DIR))


class PharmacySpecIndex(SpecIndex):
    """The pharmacy spec's paths are relative to /api/external (its ``servers``)."""

    def allowed_methods(self, request_path: str) -> tuple[str, ...] | None:
        if request_path.startswith(BASE_PATH):
            request_path = request_path[len(BASE_PATH) :] or "/"
        return super().allowed_methods(request_path)


@lru_cache(maxsize=4)
def _index(spec_dir: str) -> PharmacySpecIndex:
    return PharmacySpecIndex(_load(spec_dir))


def pharmacy_index(spec_dir: Path | None = None) -> PharmacySpecIndex:
    return _index(str(spec_dir or PHARMACY_SPEC_DIR))
