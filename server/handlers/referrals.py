"""Referral-tier operations (seed 000 §6.1-6.4, 6.6, 6.7)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date as _date
from typing import Any

from server import context, serializers
from server.clock import parse_iso
from server.errors import ApiError
from server.repositories.referrals import ListFilters
from server.services.referrals import ReferralService
from server.state import AppState

JSON = tuple[dict[str, Any], int] | tuple[dict[str, Any], int, dict[str, str]]


def _partner() -> Any:
    ctx = context.get()
    assert ctx.partner is not None
    return ctx.partner


class ReferralHandlers:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.service = ReferralService(state)

    def operations(self) -> dict[str, Callable[..., Any]]:
        return {
            "createReferral": self.create_referral,
            "listReferrals": self.list_referrals,
            "getReferral": self.get_referral,
            "getReferralSummary": self.get_referral_summary,
            "getReferralTrackingLink": self.get_referral_tracking_link,
            "createReferralTrackingLink": self.get_referral_tracking_link,
            "cancelReferral": self.cancel_referral,
        }

    @property
    def base_url(self) -> str:
        return self.state.settings.base_url

    def create_referral(self, body: dict[str, Any]) -> JSON:
        partner = _partner()
        result = self.service.create(partner, body)
        payload = serializers.created_referral(result.referral, partner, self.base_url)
        if result.replayed:
            return payload, 200, {"Idempotent-Replayed": "true"}
        return payload, 201, {"Location": f"/partner/referrals/{result.referral.id}"}

    def get_referral(self, referral_id: str) -> JSON:
        partner = _partner()
        referral = self.service.read(partner, referral_id)
        return serializers.referral(referral, partner, self.base_url), 200

    def list_referrals(self, limit: int = 50, cursor: str | None = None, **query: Any) -> JSON:
        partner = _partner()
        try:
            filters = ListFilters(
                status=query.get("status"),
                fulfillment_status=query.get("fulfillment_status"),
                partner_reference=query.get("partner_reference"),
                product_category=query.get("product_category"),
                created_after=parse_iso(query["created_after"]) if query.get("created_after") else None,
                created_before=parse_iso(query["created_before"]) if query.get("created_before") else None,
            )
        except ValueError:
            raise ApiError(
                "VALIDATION_ERROR",
                "created_after / created_before must be ISO 8601 date-times.",
                {"parameter": "created_after", "in": "query", "reason": "not a date-time"},
            ) from None
        rows, next_cursor = self.service.list(partner, filters, int(limit), cursor)
        return {
            "referrals": [serializers.referral(r, partner, self.base_url) for r in rows],
            "pagination": {"has_more": next_cursor is not None, "next_cursor": next_cursor},
        }, 200

    def get_referral_summary(self, period: str = "month", date: str | None = None) -> JSON:
        partner = _partner()
        day = _date.fromisoformat(date) if date else None
        try:
            return self.service.summary(partner, period, day), 200
        except OverflowError:
            raise ApiError(
                "VALIDATION_ERROR",
                "Query parameter date is outside the supported range.",
                {"parameter": "date", "in": "query", "reason": "the window around this date is out of range"},
            ) from None

    def get_referral_tracking_link(self, referral_id: str) -> JSON:
        partner = _partner()
        return self.service.tracking_link(partner, referral_id), 200

    def cancel_referral(self, referral_id: str, body: dict[str, Any] | None = None) -> JSON:
        partner = _partner()
        reason = (body or {}).get("reason")
        referral, replayed = self.service.cancel(partner, referral_id, reason)
        body = {
            "referral_id": referral.id,
            "status": referral.status,
            "cancelled_at": serializers.iso(referral.cancelled_at),
        }
        if replayed:
            return body, 200, {"Idempotent-Replayed": "true"}
        return body, 200
