"""Prescriber registry operations (seed 002 §11.1.1-§11.1.4)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server import context
from server.auth import AuthenticatedPartner
from server.services.clinical_prescribers import PrescriberService
from server.state import AppState


def _partner() -> AuthenticatedPartner:
    ctx = context.get()
    assert ctx.partner is not None
    return ctx.partner


class PrescriberHandlers:
    def __init__(self, state: AppState) -> None:
        self.service = PrescriberService(state)

    def operations(self) -> dict[str, Callable[..., Any]]:
        return {
            "createPrescriber": self.create_prescriber,
            "listPrescribers": self.list_prescribers,
            "getPrescriber": self.get_prescriber,
            "deactivatePrescriber": self.deactivate_prescriber,
        }

    def create_prescriber(self, body: dict[str, Any]) -> Any:
        result = self.service.create(_partner(), body)
        if result.replayed:
            return result.prescriber, 200, {"Idempotent-Replayed": "true"}
        return result.prescriber, 201

    def list_prescribers(self, limit: int = 50, cursor: str | None = None, status: str | None = None) -> Any:
        items, next_cursor = self.service.list(_partner(), status, int(limit), cursor)
        return {
            "prescribers": items,
            "pagination": {"has_more": next_cursor is not None, "next_cursor": next_cursor},
        }, 200

    def get_prescriber(self, prescriber_id: str) -> Any:
        return self.service.get(_partner(), prescriber_id), 200

    def deactivate_prescriber(self, prescriber_id: str) -> Any:
        return self.service.deactivate(_partner(), prescriber_id), 200
