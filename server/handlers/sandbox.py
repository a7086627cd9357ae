"""Sandbox-only operations of the referral tier (D-030, R-014): the partner's test clock, moving a
referral to a status, triggering a named event. The auth middleware refuses them in production
(403 SANDBOX_ONLY_OPERATION) before these handlers run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server import clock, context, serializers
from server.errors import ApiError
from server.state import AppState
from server.webhooks.runtime import get_runtime

JSON = tuple[dict[str, Any], int] | tuple[dict[str, Any], int, dict[str, str]]


def _partner() -> Any:
    ctx = context.get()
    assert ctx.partner is not None
    return ctx.partner


class SandboxHandlers:
    def __init__(self, state: AppState) -> None:
        self.state = state

    def operations(self) -> dict[str, Callable[..., Any]]:
        return {
            "getSandboxClock": self.get_clock,
            "advanceSandboxClock": self.advance_clock,
            "advanceSandboxReferral": self.advance_referral,
            "triggerSandboxEvent": self.trigger_event,
        }

    @property
    def runtime(self) -> Any:
        return get_runtime(self.state)

    def get_clock(self) -> JSON:
        return self.runtime.clock.view(_partner().id), 200

    def advance_clock(self, body: dict[str, Any]) -> JSON:
        partner = _partner()
        to = None
        if body.get("to") is not None:
            try:
                to = clock.parse_iso(body["to"])
            except ValueError:
                raise ApiError(
                    "INVALID_BODY",
                    "to must be an RFC 3339 date-time.",
                    {"errors": [{"path": "/to", "message": "not a date-time"}]},
                ) from None
        return self.runtime.clock.advance(partner.id, seconds=body.get("seconds"), to=to), 200

    def advance_referral(self, referral_id: str, body: dict[str, Any]) -> JSON:
        partner = _partner()
        referral, made = self.runtime.simulation.advance_referral(partner, referral_id, body)
        return {
            "referral": serializers.referral(referral, partner, self.state.settings.base_url),
            "transitions": [m.as_dict() for m in made],
        }, 200

    def trigger_event(self, body: dict[str, Any]) -> JSON:
        partner = _partner()
        return self.runtime.simulation.trigger(partner, body), 200
