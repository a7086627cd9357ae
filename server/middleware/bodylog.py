"""Request and response bodies in the access log, every x-phi value redacted (STEALTH_LOG_BODIES=1).

Registered just inside the edge middleware only when body logging is on, so it costs nothing otherwise. It
copies the chunks that pass through (no extra buffering, at most ``MAX_LOGGED_BODY`` bytes each way) and,
once the response is sent, puts the redacted ``query``, ``request_body`` and ``response_body`` on the
request context; the edge writes them into the request's one access-log line.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server import context, phi_log
from server.pharmacy import is_pharmacy_path
from server.redaction import PhiMap


class _Capture:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.size + len(chunk) > phi_log.MAX_LOGGED_BODY:
            self.truncated = True
        else:
            self.chunks.append(chunk)
        self.size += len(chunk)

    def raw(self) -> bytes:
        return b"".join(self.chunks)


class BodyLogMiddleware:
    def __init__(
        self, app: ASGIApp, *, partner_map: PhiMap | None = None, pharmacy_map: PhiMap | None = None
    ) -> None:
        self.app = app
        self.partner_map = partner_map or phi_log.partner_map()
        self.pharmacy_map = pharmacy_map or phi_log.pharmacy_map()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request, response = _Capture(), _Capture()
        status = {"code": 0, "type": ""}

        async def capture_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                request.add(message.get("body", b""))
            return message

        async def capture_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["type"] = Headers(raw=message.get("headers") or []).get("content-type", "")
            elif message["type"] == "http.response.body":
                response.add(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, capture_receive, capture_send)
        finally:
            ctx = context.from_scope(scope) or context.current.get()
            if ctx is not None:
                ctx.log_fields.update(self._fields(scope, ctx, request, response, status))

    def _fields(
        self,
        scope: Scope,
        ctx: context.RequestContext,
        request: _Capture,
        response: _Capture,
        status: dict[str, object],
    ) -> dict[str, object]:
        path = str(scope.get("path", ""))
        phi_map = self.pharmacy_map if is_pharmacy_path(path) else self.partner_map
        op = ctx.operation
        op_phi = phi_map.operations.get(op.operation_id) if op is not None else None
        req_type = Headers(scope=scope).get("content-type", "")
        return phi_log.exchange_fields(
            phi_map,
            op_phi,
            op.path if op is not None else None,
            path,
            scope.get("query_string", b""),
            (request.raw(), req_type, request.truncated),
            (int(status["code"] or 0), response.raw(), str(status["type"]), response.truncated),
        )
