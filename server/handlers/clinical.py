"""Clinical-tier reads (seed 002 §6-§10): patients, appointments, intake, messages, transactions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from server import context
from server.auth import AuthenticatedPartner
from server.clock import parse_iso
from server.errors import ApiError
from server.services.clinical import ClinicalService, PatientFilters
from server.state import AppState

JSON = tuple[dict[str, Any], int]


def _partner() -> AuthenticatedPartner:
    ctx = context.get()
    assert ctx.partner is not None
    return ctx.partner


def _when(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        raise ApiError(
            "VALIDATION_ERROR",
            f"{name} must be an ISO 8601 date-time.",
            {"parameter": name, "in": "query", "reason": "not a date-time"},
        ) from None


def _page(next_cursor: str | None) -> dict[str, Any]:
    return {"has_more": next_cursor is not None, "next_cursor": next_cursor}


class ClinicalHandlers:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.service = ClinicalService(state)

    def operations(self) -> dict[str, Callable[..., Any]]:
        return {
            "listPatients": self.list_patients,
            "getPatient": self.get_patient,
            "listPatientAppointments": self.list_patient_appointments,
            "getPatientIntake": self.get_patient_intake,
            "listPatientMessages": self.list_patient_messages,
            "listPatientTransactions": self.list_patient_transactions,
            "getTransaction": self.get_transaction,
            "refundSandboxTransaction": self.refund_sandbox_transaction,
        }

    def list_patients(self, limit: int = 50, cursor: str | None = None, **query: Any) -> JSON:
        filters = PatientFilters(
            status=query.get("status"),
            product_category=query.get("product_category"),
            search=query.get("search"),
            created_after=_when("created_after", query.get("created_after")),
            created_before=_when("created_before", query.get("created_before")),
        )
        items, next_cursor = self.service.list_patients(_partner(), filters, int(limit), cursor)
        return {"patients": items, "pagination": _page(next_cursor)}, 200

    def get_patient(self, patient_id: str) -> JSON:
        return self.service.get_patient(_partner(), patient_id), 200

    def list_patient_appointments(
        self, patient_id: str, limit: int = 50, cursor: str | None = None, status: str | None = None
    ) -> JSON:
        items, next_cursor = self.service.list_appointments(
            _partner(), patient_id, status, int(limit), cursor
        )
        return {"appointments": items, "pagination": _page(next_cursor)}, 200

    def get_appointment(self, appointment_id: str) -> JSON:
        """The clinical shape of GET /partner/appointments/{appointment_id} (dispatched by tier, C-019)."""
        return self.service.get_appointment(_partner(), appointment_id), 200

    def get_patient_intake(self, patient_id: str, appointment_id: str | None = None) -> JSON:
        return self.service.get_intake(_partner(), patient_id, appointment_id), 200

    def list_patient_messages(self, patient_id: str, limit: int = 50, cursor: str | None = None) -> JSON:
        threads, total, next_cursor = self.service.list_messages(_partner(), patient_id, int(limit), cursor)
        return {
            "patient_id": patient_id,
            "threads": threads,
            "total_threads": total,
            "pagination": _page(next_cursor),
        }, 200

    def list_patient_transactions(
        self,
        patient_id: str,
        limit: int = 50,
        cursor: str | None = None,
        status: str | None = None,
        created_after: str | None = None,
    ) -> JSON:
        items, summary, next_cursor = self.service.list_transactions(
            _partner(), patient_id, status, _when("created_after", created_after), int(limit), cursor
        )
        return {
            "patient_id": patient_id,
            "transactions": items,
            "summary": summary,
            "pagination": _page(next_cursor),
        }, 200

    def get_transaction(self, transaction_id: str) -> JSON:
        return self.service.get_transaction(_partner(), transaction_id), 200

    def refund_sandbox_transaction(self, transaction_id: str, body: dict[str, Any] | None = None) -> JSON:
        body = body or {}
        return self.service.refund(
            _partner(), transaction_id, body.get("amount_cents"), body.get("reason")
        ), 200
