"""Innermost header stamping: X-Request-Id, X-RateLimit-* and Cache-Control on API responses.

It sits inside connexion's response validation, so the headers the spec marks required are present
when the response is validated (the edge middleware stamps them again on errors built outside).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import context


class StampHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx = context.from_scope(scope) or context.current.get()

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start" and ctx is not None:
                headers = MutableHeaders(scope=message)
                headers["X-Request-Id"] = ctx.request_id
                if ctx.rate is not None:
                    for name, value in ctx.rate.headers().items():
                        headers[name] = value
                if ctx.operation is not None and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, stamped)
