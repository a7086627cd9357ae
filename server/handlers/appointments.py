"""Prescriber-tier appointments (seed 003 §6-§9) and their sandbox advance control (P-010).

GET /partner/appointments/{appointment_id} serves both tiers that have appointments: clinical keys get the
clinical shape (seed 002), prescriber keys the prescriber shape (seed 003 §7.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server import context
from server.auth import AuthenticatedPartner
from server.handlers.clinical import ClinicalHandlers, _when
from server.services.prescriber import ListFilters
from server.state import AppState
from server.webhooks.runtime import get_runtime

JSON = tuple[dict[str, Any], int] | tuple[dict[str, Any], int, dict[str, str]]


def _partner() -> AuthenticatedPartner:
    ctx = context.get()
    assert ctx.partner is not None
    return ctx.partner


class AppointmentHandlers:
    def __init__(self, state: AppState, clinical: ClinicalHandlers) -> None:
        self.state = state
        self.clinical = clinical

    @property
    def simulation(self) -> Any:
        return get_runtime(self.state).clock.prescriber

    @property
    def service(self) -> Any:
        return self.simulation.service

    def operations(self) -> dict[str, Callable[..., Any]]:
        return {
            "submitAppointment": self.submit,
            "listAppointments": self.list,
            "getAppointment": self.get,
            "getAppointmentPrescription": self.prescription,
            "routeAppointmentPharmacy": self.route,
            "getAppointmentRoutingStatus": self.routing_status,
            "advanceSandboxAppointment": self.advance,
        }

    def submit(self, body: dict[str, Any]) -> JSON:
        result = self.service.submit(_partner(), body)
        if result.replayed:
            return result.appointment, 200, {"Idempotent-Replayed": "true"}
        return result.appointment, 201

    def list(self, limit: int = 50, cursor: str | None = None, **query: Any) -> JSON:
        filters = ListFilters(
            status=query.get("status"),
            condition=query.get("condition"),
            patient_email=query.get("patient_email"),
            created_after=_when("created_after", query.get("created_after")),
            created_before=_when("created_before", query.get("created_before")),
        )
        items, next_cursor = self.service.list(_partner(), filters, int(limit), cursor)
        return {
            "appointments": items,
            "pagination": {"has_more": next_cursor is not None, "next_cursor": next_cursor},
        }, 200

    def get(self, appointment_id: str) -> JSON:
        partner = _partner()
        if partner.tier == "clinical":
            return self.clinical.get_appointment(appointment_id)
        return self.service.get(partner, appointment_id), 200

    def prescription(self, appointment_id: str) -> JSON:
        return self.service.prescription(_partner(), appointment_id), 200

    def route(self, appointment_id: str, body: dict[str, Any] | None = None) -> JSON:
        return self.service.route(_partner(), appointment_id, (body or {}).get("pharmacy_id")), 200

    def routing_status(self, appointment_id: str) -> JSON:
        return self.service.routing_status(_partner(), appointment_id), 200

    def advance(self, appointment_id: str, body: dict[str, Any]) -> JSON:
        appointment, made = self.simulation.advance(_partner(), appointment_id, body)
        return {"appointment": appointment, "transitions": [m.as_dict() for m in made]}, 200
