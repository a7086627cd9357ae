"""Outermost middleware: request id, rate limit, body size limit and the access log.

It sits inside connexion's ServerErrorMiddleware but outside its ExceptionMiddleware, so it sees every
response, errors included, and stamps X-Request-Id and the X-RateLimit-* headers on all of them.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import anyio
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import context, faults
from server.errors import PayloadTooLarge
from server.phi_log import safe_path
from server.ratelimit import RateDecision
from server.state import AppState

access_log = logging.getLogger("stealth.access")
log = logging.getLogger("stealth.edge")

_PARTNER_ID_RE = re.compile(r"^ptr_[a-z0-9_]{1,64}$")
_SECRET_IN_PATH = re.compile(r"(tkn_)[0-9a-f]+")


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, *, state: AppState) -> None:
        self.app = app
        self.state = state

    async def _rate(self, headers: Headers, ctx: context.RequestContext) -> RateDecision:
        claimed = headers.get("x-partner-id") or ""
        default = self.state.settings.rate_limit_per_minute
        if _PARTNER_ID_RE.match(claimed):
            key = "p:" + claimed
            cached = self.state.limits.cached(claimed)
            try:
                limit = cached or await anyio.to_thread.run_sync(self.state.limits.limit_for, claimed)
            except Exception as exc:  # database down: the request itself will answer 503
                log.warning("rate-limit override lookup failed: %s", type(exc).__name__)
                limit = default
        else:
            key = "ip:" + ctx.client_ip
            limit = default
        try:
            return await self.state.limiter.hit(key, limit)
        except Exception as exc:  # a limiter outage must not take the API down: fail open, loudly
            log.error("rate limiter unavailable, request allowed: %s", type(exc).__name__)
            return RateDecision(True, limit, limit, int(time.time()), 0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        ctx = context.RequestContext(
            request_id=context.sane_request_id(headers.get("x-request-id")), client_ip=client_ip(scope)
        )
        scope.setdefault("extensions", {})[context.SCOPE_KEY] = ctx
        token = context.current.set(ctx)
        status: dict[str, int] = {"code": 0}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                out = MutableHeaders(scope=message)
                out["X-Request-Id"] = ctx.request_id
                if ctx.rate is not None:
                    for name, value in ctx.rate.headers().items():
                        out[name] = value
                for name, value in ctx.extra_headers.items():
                    out.setdefault(name, value)
                if (
                    faults.active("missing_ratelimit_header")
                    and getattr(ctx.operation, "operation_id", "") == "getReferral"
                ):
                    del out["X-RateLimit-Remaining"]
                if ctx.operation is not None:  # errors too: details and messages can echo PHI (C-016, L-00x)
                    out.setdefault("Cache-Control", "no-store")
            await send(message)

        try:
            ctx.rate = await self._rate(headers, ctx)
            if ctx.rate is not None and not ctx.rate.allowed and not faults.active("no_rate_limit"):
                await self._reject(
                    send_wrapper,
                    "RATE_LIMIT_EXCEEDED",
                    f"Rate limit of {ctx.rate.limit} requests per minute exceeded; "
                    f"retry after {ctx.rate.retry_after} seconds.",
                    {"limit": ctx.rate.limit, "retry_after_seconds": ctx.rate.retry_after},
                    {"Retry-After": str(ctx.rate.retry_after)},
                )
                return
            max_bytes = self.state.settings.max_body_bytes
            declared = headers.get("content-length")
            if declared is not None:
                try:
                    too_big = int(declared) > max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    err = PayloadTooLarge(max_bytes)
                    await self._reject(
                        send_wrapper, err.code, err.message, err.details, {"Connection": "close"}
                    )
                    return
            if declared is None and scope.get("method") in ("POST", "PUT", "PATCH"):
                # Chunked body: read it here, bounded, so the limit holds and validation sees a length.
                try:
                    scope, receive = await self._buffer(scope, receive, max_bytes)
                except PayloadTooLarge as err:
                    await self._reject(
                        send_wrapper, err.code, err.message, err.details, {"Connection": "close"}
                    )
                    return
            scope = self._without_bodyless_content_type(scope)
            await self.app(scope, self._limited(receive, max_bytes), send_wrapper)
        finally:
            context.current.reset(token)
            self._log(scope, ctx, status["code"])

    @staticmethod
    def _without_bodyless_content_type(scope: Scope) -> Scope:
        """A request without a body has nothing for Content-Type to describe: drop the header.

        Otherwise a bodiless GET sent with e.g. ``multipart/form-data`` makes the framework try to parse
        a form that is not there (found by conformance fuzzing).
        """
        raw = scope.get("headers") or []
        names = {k.lower() for k, _ in raw}
        if b"content-type" not in names or b"transfer-encoding" in names:
            return scope
        length = next((v for k, v in raw if k.lower() == b"content-length"), b"0").strip()
        if length not in (b"", b"0"):
            return scope
        return {**scope, "headers": [(k, v) for k, v in raw if k.lower() != b"content-type"]}

    @staticmethod
    async def _buffer(scope: Scope, receive: Receive, max_bytes: int) -> tuple[Scope, Receive]:
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(max_bytes)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        new_scope = dict(scope)
        new_scope["headers"] = [*scope["headers"], (b"content-length", str(len(body)).encode())]
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return new_scope, replay

    @staticmethod
    def _limited(receive: Receive, max_bytes: int) -> Receive:
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    raise PayloadTooLarge(max_bytes)
            return message

        return limited_receive

    async def _reject(
        self, send: Send, code: str, message: str, details: dict[str, Any] | None, headers: dict[str, str]
    ) -> None:
        body = self.state.renderer.body(code, message, details)
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *[(k.lower().encode(), v.encode()) for k, v in headers.items()],
        ]
        await send(
            {
                "type": "http.response.start",
                "status": self.state.renderer.status(code),
                "headers": raw_headers,
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _log(scope: Scope, ctx: context.RequestContext, status: int) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        op = ctx.operation
        record = {
            "request_id": ctx.request_id,
            "partner_id": ctx.partner.id if ctx.partner else None,
            "operation_id": op.operation_id if op else None,
            "method": scope.get("method"),
            "path": op.path if op else safe_path(_SECRET_IN_PATH.sub(r"\1...", scope.get("path", ""))),
            "status": status,
            "latency_ms": round((time.perf_counter() - ctx.started) * 1000, 2),
            **ctx.log_fields,
        }
        access_log.info(json.dumps(record, separators=(",", ":")))
