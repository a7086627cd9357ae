"""Errors of the pharmacy API in its own envelope (PH-002):
``{"success": false, "data": null, "message", "error": {"code", "details"}}``, status from the pharmacy
spec's ``x-error-catalog``. ``RoutingRenderer`` picks the pharmacy or partner renderer by request path,
since connexion's error handlers are app-wide."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connexion.lifecycle import ConnexionRequest, ConnexionResponse

from server import context
from server.errors import ErrorRenderer
from server.pharmacy import is_pharmacy_path
from server.spec import SpecIndex

# Partner codes the shared machinery may raise, mapped to the pharmacy catalog.
CODE_MAP = {
    "MISSING_CREDENTIALS": "MISSING_API_KEY",
    "INVALID_CREDENTIALS": "INVALID_API_KEY",
}


class PharmacyErrorRenderer(ErrorRenderer):
    def __init__(self, spec: SpecIndex) -> None:
        super().__init__(spec)

    def _code(self, code: str) -> str:
        code = CODE_MAP.get(code, code)
        return code if code in self.spec.catalog else "INTERNAL_ERROR"

    def status(self, code: str) -> int:
        return super().status(self._code(code))

    def body(self, code: str, message: str, details: Mapping[str, Any] | None) -> bytes:
        return json.dumps(
            {
                "success": False,
                "data": None,
                "message": message[:1000],
                "error": {"code": self._code(code), "details": dict(details) if details else None},
            },
            separators=(",", ":"),
        ).encode()

    def handle_problem(self, request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        if getattr(exc, "status", None) == 401:
            return self.response("MISSING_API_KEY", "The X-API-Key header is required.")
        return super().handle_problem(request, exc)


def _path(request: Any) -> str:
    try:
        return str(request.url.path)
    except Exception:  # pragma: no cover - defensive
        return ""


class RoutingRenderer:
    """App-wide error handlers that answer in the envelope of the API the request was for."""

    def __init__(self, partner: ErrorRenderer, pharmacy: PharmacyErrorRenderer) -> None:
        self.partner = partner
        self.pharmacy = pharmacy

    def pick(self, request: Any) -> ErrorRenderer:
        path = _path(request)
        if not path:
            ctx = context.current.get()
            return self.pharmacy if ctx is not None and getattr(ctx, "pharmacy", False) else self.partner
        return self.pharmacy if is_pharmacy_path(path) else self.partner

    def handle_api_error(self, request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        return self.pick(request).handle_api_error(request, exc)

    def handle_problem(self, request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        return self.pick(request).handle_problem(request, exc)

    def handle_http(self, request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        return self.pick(request).handle_http(request, exc)

    def handle_exception(self, request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
        return self.pick(request).handle_exception(request, exc)
