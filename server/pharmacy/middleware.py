"""Middlewares for /api/external: clinic X-API-Key auth, and the edge (rate limit per API key, PH-007,
and errors raised at the edge in the pharmacy envelope)."""

from __future__ import annotations

import contextvars
import os
import time
from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from server import context
from server.crypto import sha256_hex
from server.middleware.edge import EdgeMiddleware
from server.pharmacy import clinics, is_pharmacy_path
from server.pharmacy.errors import PharmacyErrorRenderer
from server.pharmacy.spec import pharmacy_index
from server.ratelimit import RateDecision
from server.state import AppState

ROUTING_CONTEXT = "connexion_routing"
PHARMACY_RATE_LIMIT_PER_MINUTE = 60  # PH-007

_on_pharmacy_path: contextvars.ContextVar[bool] = contextvars.ContextVar("pharmacy_path", default=False)


def clinic() -> clinics.AuthenticatedClinic:
    """The clinic of the current request (set by PharmacyAuthMiddleware)."""
    found = getattr(context.get(), "clinic", None)
    if found is None:  # pragma: no cover - the middleware runs first
        from server.errors import ApiError

        raise ApiError("MISSING_API_KEY", "The X-API-Key header is required.")
    return found  # type: ignore[no-any-return]


class PharmacyAuthMiddleware:
    """After routing: authenticate the clinic for pharmacy operations (the partner auth skips them)."""

    def __init__(self, app: ASGIApp, *, state: AppState) -> None:
        self.app = app
        self.state = state
        self.index = pharmacy_index()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_pharmacy_path(scope.get("path", "")):
            routing = (scope.get("extensions") or {}).get(ROUTING_CONTEXT) or {}
            op = self.index.operations.get(routing.get("operation_id") or "")
            ctx = context.from_scope(scope) or context.current.get()
            if op is not None and ctx is not None:
                ctx.operation = op
                api_key = Headers(scope=scope).get("x-api-key")
                found = await anyio.to_thread.run_sync(clinics.authenticate, self.state.db, api_key)
                ctx.clinic = found  # type: ignore[attr-defined]
        await self.app(scope, receive, send)


class PharmacyAwareEdgeMiddleware(EdgeMiddleware):
    """The partner edge, with the pharmacy API's rate-limit key (the API key) and error envelope."""

    def __init__(self, app: ASGIApp, *, state: AppState, pharmacy_renderer: PharmacyErrorRenderer) -> None:
        super().__init__(app, state=state)
        self.pharmacy_renderer = pharmacy_renderer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _on_pharmacy_path.set(scope["type"] == "http" and is_pharmacy_path(scope.get("path", "")))
        try:
            await super().__call__(scope, receive, send)
        finally:
            _on_pharmacy_path.reset(token)

    async def _rate(self, headers: Headers, ctx: context.RequestContext) -> RateDecision:
        if not _on_pharmacy_path.get():
            return await super()._rate(headers, ctx)
        ctx.pharmacy = True  # type: ignore[attr-defined]
        api_key = headers.get("x-api-key")
        key = "ph:" + sha256_hex(api_key)[:32] if api_key else "ph-ip:" + ctx.client_ip
        limit = self.pharmacy_limit
        try:
            return await self.state.limiter.hit(key, limit)
        except Exception:  # fail open, as the partner edge does
            return RateDecision(True, limit, limit, int(time.time()), 0)

    @property
    def pharmacy_limit(self) -> int:
        # PH-007: 60; STEALTH_PHARMACY_RATE_LIMIT_PER_MINUTE overrides it (conformance fuzzing only).
        value = os.environ.get("STEALTH_PHARMACY_RATE_LIMIT_PER_MINUTE", "")
        return int(value) if value.isdigit() and int(value) > 0 else PHARMACY_RATE_LIMIT_PER_MINUTE

    async def _reject(
        self, send: Send, code: str, message: str, details: dict[str, Any] | None, headers: dict[str, str]
    ) -> None:
        if not _on_pharmacy_path.get():
            await super()._reject(send, code, message, details, headers)
            return
        body = self.pharmacy_renderer.body(code, message, details)
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *[(k.lower().encode(), v.encode()) for k, v in headers.items()],
        ]
        await send(
            {
                "type": "http.response.start",
                "status": self.pharmacy_renderer.status(code),
                "headers": raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": body})
