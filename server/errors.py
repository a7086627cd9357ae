"""The error envelope, and the handlers that turn every failure into it.

Every error answers ``{"error": {"code", "message", "details"}}`` with a code from the spec's
``ErrorCode`` catalog; its HTTP status comes from ``x-error-catalog``. A 500 never carries a stack
trace or a message about our own response schema.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from connexion.exceptions import (
    ExtraParameterProblem,
    ProblemException,
    UnsupportedMediaTypeProblem,
)
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException

from server import context
from server.spec import SpecIndex

log = logging.getLogger("stealth.errors")

DB_RETRY_AFTER_SECONDS = 5


class ApiError(Exception):
    """An error with a documented code; the status comes from the catalog."""

    def __init__(
        self,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = dict(details) if details is not None else None
        self.headers = dict(headers or {})


class RequestValidationError(ApiError):
    """Request validation failed; ``candidates`` are the codes of every failing rule, in order found."""

    def __init__(
        self,
        default_code: str,
        message: str,
        candidates: Iterable[str],
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(default_code, message, details)
        self.candidates = list(candidates)


class PayloadTooLarge(ApiError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            "PAYLOAD_TOO_LARGE", f"The request body exceeds {max_bytes} bytes.", {"max_bytes": max_bytes}
        )


def not_found(code: str, what: str, id_name: str, value: str) -> ApiError:
    return ApiError(code, f"{what} {value} was not found.", {id_name: value})


def pick_code(candidates: list[str], default: str, order: Iterable[str]) -> str:
    """The code to answer when several rules fail: the earliest in ``x-validation-order``."""
    specific = [c for c in candidates if c != default]
    if not specific:
        return default
    order_list = list(order)
    if order_list:
        ranked = sorted(
            set(candidates), key=lambda c: order_list.index(c) if c in order_list else len(order_list)
        )
        return ranked[0]
    return specific[0]


class ErrorRenderer:
    """Builds envelope responses; knows the catalog."""

    def __init__(self, spec: SpecIndex) -> None:
        self.spec = spec

    def status(self, code: str) -> int:
        entry = self.spec.catalog.get(code)
        return entry.status if entry else 500

    def body(self, code: str, message: str, details: Mapping[str, Any] | None) -> bytes:
        return json.dumps(
            {"error": {"code": code, "message": message, "details": dict(details) if details else None}},
            separators=(",", ":"),
        ).encode()

    def response(
        self,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> ConnexionResponse:
        return ConnexionResponse(
            status_code=self.status(code),
            mimetype="application/json",
            content_type="application/json",
            body=self.body(code, message, details),
            headers=dict(headers or {}),
        )

    # ----- handlers registered with add_error_handler -----

    def handle_api_error(self, _request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        assert isinstance(exc, ApiError)
        code = exc.code
        if isinstance(exc, RequestValidationError):
            ctx = context.current.get()
            order = ctx.operation.validation_order if ctx and ctx.operation else ()
            code = pick_code(exc.candidates, exc.code, order)
        return self.response(code, exc.message, exc.details, exc.headers)

    def handle_problem(self, _request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        assert isinstance(exc, ProblemException)
        headers = dict(exc.headers or {})
        status = exc.status
        if isinstance(exc, UnsupportedMediaTypeProblem):
            return self.response(
                "UNSUPPORTED_MEDIA_TYPE", "Send the request body as application/json.", None, headers
            )
        if isinstance(exc, ExtraParameterProblem):
            return self.response("VALIDATION_ERROR", str(exc.detail), None, headers)
        if status == 401:
            return self.response(
                "MISSING_CREDENTIALS", "The X-Partner-ID and X-Api-Key headers are required."
            )
        if 400 <= status < 500:
            ctx = context.current.get()
            has_body = bool(ctx and ctx.operation and ctx.operation.has_body)
            code = "INVALID_BODY" if has_body else "VALIDATION_ERROR"
            message = str(exc.detail or exc.title or "Bad request.")
            return self.response(code, message[:1000], None, headers)
        return self.internal(exc)

    def handle_http(self, request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette reports the methods of the first route it matched; the spec knows them all.
            methods = self.spec.allowed_methods(request.url.path)
            if methods:
                headers.pop("allow", None)
                headers["Allow"] = ", ".join(methods)
        if exc.status_code == 404:
            methods = self.spec.allowed_methods(request.url.path)
            if methods and request.method.upper() in methods:
                # A spec path whose parameter the router could not take (e.g. a control character in an id):
                # the operation exists, its path parameter is malformed.
                return self.response(
                    "VALIDATION_ERROR",
                    "A path parameter is malformed.",
                    {"in": "path", "reason": "not a valid identifier"},
                    headers,
                )
            return self.response("NOT_FOUND", "No operation exists at this path.", None, headers)
        if exc.status_code == 405:
            return self.response(
                "METHOD_NOT_ALLOWED",
                "This path does not support this HTTP method.",
                {"allow": headers.get("Allow") or headers.get("allow")},
                headers,
            )
        if exc.status_code == 413:
            return self.response("PAYLOAD_TOO_LARGE", "The request body is too large.", None, headers)
        if exc.status_code == 415:
            return self.response("UNSUPPORTED_MEDIA_TYPE", "Send the request body as application/json.")
        if 400 <= exc.status_code < 500:
            return self.response("VALIDATION_ERROR", "The request is malformed.", None, headers)
        return self.internal(exc)

    def handle_exception(self, _request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        if is_database_unavailable(exc):
            log.warning("database unavailable: %s", type(exc).__name__)
            return self.response(
                "SERVICE_UNAVAILABLE",
                "The service is temporarily unavailable. Retry after the Retry-After interval.",
                None,
                {"Retry-After": str(DB_RETRY_AFTER_SECONDS)},
            )
        return self.internal(exc)

    def internal(self, exc: BaseException) -> ConnexionResponse:
        ctx = context.current.get()
        request_id = ctx.request_id if ctx else context.new_request_id()
        # The traceback goes to our log only (never exception messages: they may hold PHI or SQL
        # parameters); the partner gets the request id to quote.
        detail = exc.detail if isinstance(exc, ProblemException) else ""
        frames = "".join(traceback.format_tb(exc.__traceback__)) if exc.__traceback__ else ""
        log.error("unhandled error (request %s): %s %s\n%s", request_id, type(exc).__name__, detail, frames)
        return self.response(
            "INTERNAL_ERROR",
            "An unexpected error occurred. Retry with exponential backoff; quote the X-Request-Id header if it persists.",
            {"request_id": request_id},
        )


def is_database_unavailable(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached right now."""
    if isinstance(exc, OperationalError | PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, ConnectionRefusedError)
