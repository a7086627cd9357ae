"""Per-request context shared by the middlewares, the error handlers and the handlers."""

from __future__ import annotations

import re
import secrets
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.auth import AuthenticatedPartner
    from server.ratelimit import RateDecision
    from server.spec import OperationInfo

SCOPE_KEY = "stealth"
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


def sane_request_id(value: str | None) -> str:
    """Echo a caller's X-Request-Id when it is short and plain; otherwise make one."""
    if value and _SANE_REQUEST_ID.match(value):
        return value
    return new_request_id()


@dataclass
class RequestContext:
    request_id: str
    client_ip: str
    started: float = field(default_factory=time.perf_counter)
    operation: OperationInfo | None = None
    partner: AuthenticatedPartner | None = None
    rate: RateDecision | None = None
    extra_headers: dict[str, str] = field(default_factory=dict)
    # request-body errors of x-error-deferred properties, raised by the handler at their validation step
    deferred: list[Exception] = field(default_factory=list)
    log_fields: dict[str, Any] = field(default_factory=dict)  # redacted bodies (STEALTH_LOG_BODIES)


current: ContextVar[RequestContext | None] = ContextVar("stealth_request_context", default=None)


def from_scope(scope: dict[str, Any]) -> RequestContext | None:
    ctx = (scope.get("extensions") or {}).get(SCOPE_KEY)
    return ctx if isinstance(ctx, RequestContext) else None


def get() -> RequestContext:
    ctx = current.get()
    if ctx is None:
        raise RuntimeError("no request context")
    return ctx


def defer(error: Exception) -> bool:
    """Keep a validation error for the handler to raise at its step; False (raise now) outside a request."""
    ctx = current.get()
    if ctx is None:
        return False
    ctx.deferred.append(error)
    return True


def raise_deferred() -> None:
    """Raise the first deferred validation error of this request, if any (x-error-deferred)."""
    ctx = current.get()
    if ctx is not None and ctx.deferred:
        raise ctx.deferred.pop(0)
