"""Authentication and tier enforcement, after routing (so the operation is known) and before validation."""

from __future__ import annotations

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from server import auth, clock, context, faults
from server.auth import AuthenticatedPartner
from server.pharmacy import is_pharmacy_path
from server.repositories import credentials
from server.state import AppState

ROUTING_CONTEXT = "connexion_routing"


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not is_pharmacy_path(scope.get("path", "")):
            routing = (scope.get("extensions") or {}).get(ROUTING_CONTEXT) or {}
            op = self.state.spec.operations.get(routing.get("operation_id") or "")
            ctx = context.from_scope(scope) or context.current.get()
            if op is not None and ctx is not None:
                ctx.operation = op
                headers = Headers(scope=scope)
                if faults.active("auth_skipped_on_products") and op.operation_id == "listProducts":
                    ctx.partner = faults.anonymous_partner(self.state.settings.environment)
                    await self.app(scope, receive, send)
                    return
                ctx.partner = await anyio.to_thread.run_sync(self._authenticate, headers, ctx)
                auth.check_operation(
                    ctx.partner, op, self.state.settings.environment, headers.get("x-access-tier")
                )
        await self.app(scope, receive, send)

    def _authenticate(self, headers: Headers, ctx: context.RequestContext) -> AuthenticatedPartner:
        partner_id = headers.get("x-partner-id")
        api_key = headers.get("x-api-key")
        now = clock.real_now()
        record = None
        if partner_id and api_key:
            with self.state.db.connect() as conn:
                record = credentials.lookup(conn, partner_id)
        partner = auth.check_credentials(partner_id, api_key, record, self.state.settings.environment, now)
        assert record is not None
        auth.check_ip(record[0], ctx.client_ip)
        auth.check_compliance(record[0], now)
        return partner
