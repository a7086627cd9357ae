"""POST /partner/prescriptions (seed 002 §11.1.5)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server import context
from server.auth import AuthenticatedPartner
from server.services.clinical_prescriptions import PrescriptionService
from server.state import AppState


def _partner() -> AuthenticatedPartner:
    ctx = context.get()
    assert ctx.partner is not None
    return ctx.partner


class PrescriptionHandlers:
    def __init__(self, state: AppState) -> None:
        self.service = PrescriptionService(state)

    def operations(self) -> dict[str, Callable[..., Any]]:
        return {"createPrescription": self.create_prescription}

    def create_prescription(self, body: dict[str, Any]) -> Any:
        result = self.service.submit(_partner(), body)
        if result.replayed:
            return result.prescription, 200, {"Idempotent-Replayed": "true"}
        return result.prescription, 201
