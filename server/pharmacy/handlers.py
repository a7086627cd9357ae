"""Operation handlers of the pharmacy API (resolved by operationId), answering in its envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.cursor import CursorCodec
from server.pharmacy import service
from server.pharmacy.middleware import clinic
from server.state import AppState

JSON = tuple[dict[str, Any], int]


def ok(data: Any, message: str, status: int = 200) -> JSON:
    return {"success": True, "data": data, "message": message}, status


class PharmacyHandlers:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.codec = CursorCodec(state.box.subkey("pharmacy-cursor"))

    def operations(self) -> dict[str, Callable[..., Any]]:
        return {
            "registerWebhook": self.register_webhook,
            "listWebhooks": self.list_webhooks,
            "deleteWebhook": self.delete_webhook,
            "createRefillRequest": self.create_refill_request,
        }

    def register_webhook(self, body: dict[str, Any]) -> JSON:
        me = clinic()
        result = service.register_webhook(
            self.state.db, me.id, body["clinic_id"], body["webhook_url"], self.state.settings.environment
        )
        if result.created:
            return ok({"webhook_id": result.webhook_id}, "Webhook created successfully", 201)
        return ok({"webhook_id": result.webhook_id}, "Webhook already registered", 200)

    def list_webhooks(self, limit: int = 20, cursor: str | None = None) -> JSON:
        me = clinic()
        hooks, next_cursor = service.list_webhooks(self.state.db, self.codec, me.id, limit, cursor)
        return ok(
            {
                "webhooks": hooks,
                "pagination": {"has_more": next_cursor is not None, "next_cursor": next_cursor},
            },
            "Webhooks retrieved successfully",
        )

    def delete_webhook(self, webhook_id: str) -> JSON:
        me = clinic()
        service.delete_webhook(self.state.db, me.id, webhook_id)
        return ok({"webhook_id": webhook_id}, "Webhook deleted successfully")

    def create_refill_request(self, body: dict[str, Any]) -> JSON:
        me = clinic()
        refill_id, order_id = service.create_refill(
            self.state.db, me.id, body["medication_request_id"], body.get("shipment_group_id")
        )
        return ok(
            {"refill_request_id": refill_id, "medication_order_id": order_id},
            "Refill request was created successfully.",
            201,
        )


def make_resolver_function(state: AppState) -> Callable[[str], Callable[..., Any]]:
    registry = PharmacyHandlers(state).operations()

    def resolve(operation_id: str) -> Callable[..., Any]:
        return registry[operation_id]

    return resolve
