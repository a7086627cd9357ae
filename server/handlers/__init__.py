"""Operation handlers, resolved by operationId. Handlers parse, call a service, and shape the answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server import context
from server.errors import ApiError
from server.handlers.appointments import AppointmentHandlers
from server.handlers.clinical import ClinicalHandlers
from server.handlers.events import EventHandlers
from server.handlers.prescribers import PrescriberHandlers
from server.handlers.prescriptions import PrescriptionHandlers
from server.handlers.products import ProductHandlers
from server.handlers.referrals import ReferralHandlers
from server.handlers.sandbox import SandboxHandlers
from server.state import AppState


def build_registry(state: AppState) -> dict[str, Callable[..., Any]]:
    registry: dict[str, Callable[..., Any]] = {}
    clinical = ClinicalHandlers(state)
    for group in (
        ReferralHandlers(state),
        ProductHandlers(state),
        EventHandlers(state),
        SandboxHandlers(state),
        clinical,
        AppointmentHandlers(state, clinical),
        PrescriberHandlers(state),
        PrescriptionHandlers(state),
    ):
        registry.update(group.operations())
    return registry


def make_resolver_function(state: AppState) -> Callable[[str], Callable[..., Any]]:
    registry = build_registry(state)

    def resolve(operation_id: str) -> Callable[..., Any]:
        # Every operation of the spec is served: one without a handler is a build error, found at start-up.
        handler = registry.get(operation_id)
        if handler is None:
            raise LookupError(f"no handler for operation {operation_id} of the spec")
        return handler

    return resolve


def partner() -> Any:
    ctx = context.get()
    if ctx.partner is None:  # pragma: no cover - the auth middleware runs first
        raise ApiError("MISSING_CREDENTIALS", "The X-Partner-ID and X-Api-Key headers are required.")
    return ctx.partner
