"""The pharmacy-operations API (seed 001, spec/pharmacy-api) served under /api/external.

Clinic-scoped X-API-Key auth, the ``{success, data, message}`` envelope, webhook registration, refill
requests and a simulated pharmacy whose events are delivered through a pharmacy webhook outbox.
"""

from __future__ import annotations

BASE_PATH = "/api/external"


def is_pharmacy_path(path: str) -> bool:
    return path == BASE_PATH or path.startswith(BASE_PATH + "/")
