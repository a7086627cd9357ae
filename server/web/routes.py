"""Enrollment and tracking pages (HTML, outside the JSON API)."""

from __future__ import annotations

import json
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from server import clock
from server.crypto import sha256_hex
from server.db.models import Partner, Referral, TrackingToken
from server.repositories import referrals as referrals_repo
from server.services.enrollment import EnrollmentError, EnrollmentService, EnrollmentView, safe_color
from server.state import AppState
from server.web.questionnaires import INTAKE_CATEGORIES, questions_for
from server.web.templates import render

NO_STORE = {"Cache-Control": "no-store", "X-Frame-Options": "SAMEORIGIN", "Referrer-Policy": "no-referrer"}
_GROUP_TITLES = {
    "demographics": "About you",
    "symptoms": "Symptoms",
    "medical_history": "Medical history",
    "medications": "Medications",
    "allergies": "Allergies",
    "medical_conditions": "Medical conditions",
    "goals": "Your goals",
}
_ERROR_STATUS = {"not_found": 404, "expired": 409, "closed": 409, "declined": 402, "invalid": 400}


def _brand(partner: Partner | None) -> dict[str, str]:
    if partner is None:
        return {}
    return {
        "partner_name": partner.name,
        "primary": safe_color(partner.brand_primary_color, "#1f4e79"),
        "accent": safe_color(partner.brand_accent_color, "#f2a900"),
    }


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:,.2f} {currency}"


class WebRoutes:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.enrollment = EnrollmentService(state)
        self._spec_json: bytes | None = None

    async def openapi_json(self, request: Request) -> Response:
        """The bundled contract (components kept as internal $refs), as partners and tools should read it."""
        if self._spec_json is None:
            self._spec_json = json.dumps(self.state.spec.document, ensure_ascii=False, default=str).encode()
        return Response(self._spec_json, media_type="application/json")

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "environment": self.state.settings.environment})

    def _message(
        self,
        status: int,
        heading: str,
        message: str,
        *,
        kind: str = "error",
        code: str | None = None,
        partner: Partner | None = None,
        rows: list[tuple[str, str]] | None = None,
    ) -> HTMLResponse:
        html = render(
            "message.html",
            heading=heading,
            message=message,
            kind=kind,
            code=code,
            rows=rows or [],
            **_brand(partner),
        )
        return HTMLResponse(html, status_code=status, headers=NO_STORE)

    def _form(
        self, view: EnrollmentView, request: Request, values: dict[str, str], errors: list[str], status: int
    ) -> HTMLResponse:
        questions = questions_for(view.product.category)
        groups = [
            {"title": _GROUP_TITLES[c], "questions": [q for q in questions if q.category == c]}
            for c in INTAKE_CATEGORIES
            if any(q.category == c for q in questions)
        ]
        safe_values = {k: v for k, v in values.items() if not k.startswith("card_")}
        html = render(
            "enroll.html",
            product_name=view.product.display_name,
            errors=errors,
            action=str(request.url.path) + "?ref=" + view.referral.id,
            csrf_token=self.enrollment.csrf_token(view.referral.id),
            values=_Defaulting(safe_values),
            groups=groups,
            payment_required=view.product.requires_payment_at_enrollment,
            price=_money(view.product.price_cents, view.product.currency),
            referral_id=view.referral.id,
            expires_at=clock.iso(view.referral.expires_at),
            **_brand(view.partner),
        )
        return HTMLResponse(html, status_code=status, headers=NO_STORE)

    def _error_page(self, exc: EnrollmentError, partner: Partner | None = None) -> HTMLResponse:
        code = "REFERRAL_EXPIRED" if exc.kind == "expired" else None
        heading = {
            "expired": "Enrollment link expired",
            "closed": "Enrollment complete",
            "not_found": "Enrollment link not found",
        }.get(exc.kind, "Enrollment")
        return self._message(
            _ERROR_STATUS.get(exc.kind, 400),
            heading,
            exc.message,
            code=code,
            partner=partner,
            kind="ok" if exc.kind == "closed" else "error",
        )

    async def enroll(self, request: Request) -> Response:
        slug = request.path_params["partner_slug"]
        category = request.path_params["category"]
        referral_id = request.query_params.get("ref", "")
        try:
            view = await anyio.to_thread.run_sync(self.enrollment.load, slug, category, referral_id)
        except EnrollmentError as exc:
            return self._error_page(exc)
        if request.method == "GET":
            return self._form(view, request, {}, [], 200)
        form = await request.form(max_files=0, max_fields=200)
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        if not self.enrollment.check_csrf(view.referral.id, values.get("csrf_token", "")):
            return self._message(
                403,
                "Form expired",
                "This form could not be verified. Reload the page and try again.",
                partner=view.partner,
            )
        sub, answers = self.enrollment.parse(view, values)
        if sub.errors:
            return self._form(view, request, sub.values, sub.errors, 400)
        try:
            referral = await anyio.to_thread.run_sync(self.enrollment.submit, view, sub, answers)
        except EnrollmentError as exc:
            if exc.kind == "declined":
                return self._form(view, request, sub.values, [exc.message], 402)
            return self._error_page(exc, view.partner)
        rows = [("Referral", referral.id), ("Status", referral.status.replace("_", " "))]
        if view.product.requires_payment_at_enrollment:
            rows.append(("Paid", _money(view.product.price_cents, view.product.currency)))
        return self._message(
            200,
            "Thank you!",
            "Your intake was submitted. A licensed physician will review it shortly.",
            kind="ok",
            partner=view.partner,
            rows=rows,
        )

    def _load_tracking(self, token: str) -> tuple[str, Any]:
        with self.state.db.session() as session:
            row = session.get(TrackingToken, sha256_hex(token)) if token.startswith("tkn_") else None
            if row is None:
                return "not_found", None
            partner = session.get(Partner, row.partner_id)
            now = clock.partner_now(partner.clock_offset_seconds if partner else 0.0)
            if row.expires_at <= now:
                return "expired", partner
            referral: Referral | None = referrals_repo.get(session, row.partner_id, row.referral_id)
            session.expunge_all()
            return "ok", (partner, referral)

    async def track(self, request: Request) -> Response:
        token = request.path_params["token"]
        outcome, data = await anyio.to_thread.run_sync(self._load_tracking, token)
        if outcome == "not_found":
            return self._message(404, "Tracking link not found", "This tracking link is not valid.")
        if outcome == "expired":
            return self._message(
                410, "Tracking link expired", "This tracking link has expired.", partner=data
            )
        partner, referral = data
        f = referral.fulfillment if referral else None
        rows = [
            ("Carrier", (f.carrier if f else None) or "—"),
            ("Status", ((f.status if f else None) or "—").replace("_", " ")),
            ("Estimated delivery", f.estimated_delivery.isoformat() if f and f.estimated_delivery else "—"),
            ("Last update", clock.iso(f.updated_at) if f and f.updated_at else "—"),
        ]
        return self._message(
            200,
            "Shipment tracking",
            "Your order's latest shipment status.",
            kind="ok",
            partner=partner,
            rows=rows,
        )


class _Defaulting(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


__all__ = ["WebRoutes"]
