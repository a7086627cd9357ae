"""The co-branded enrollment page end to end: questionnaire, test card, referral advance."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, select

from server.db.models import IntakeSubmission, Patient
from tests.server.conftest import events_of, set_partner

PATIENT = {
    "first_name": "Jane",
    "last_name": "Roe",
    "email": "jane.roe@example.com",
    "phone": "555-0100",
    "date_of_birth": "1985-04-12",
    "sex": "female",
    "state": "FL",
}


def _page_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _form(sandbox, url: str) -> tuple[str, dict[str, str]]:
    page = sandbox.client.get(_page_path(url))
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
    answers = {f"q_{qid}": "Yes" for qid in re.findall(r'name="q_([a-z_]+)"', page.text)}
    return page.text, {"csrf_token": token, **PATIENT, **answers}


def _patients(sandbox, referral_id: str) -> int:
    with sandbox.state.db.session() as session:
        return session.scalar(
            select(func.count()).select_from(Patient).where(Patient.referral_id == referral_id)
        )


def test_enrollment_with_test_card_advances_the_referral(sandbox, schemas):
    p = sandbox.partner(brand_primary_color="#123456", name="Acme Health")
    created = sandbox.create_referral(p)
    html, form = _form(sandbox, created["enrollment_url"])
    assert "Acme Health" in html and "#123456" in html
    for category in (
        "Symptoms",
        "Medical history",
        "Medications",
        "Allergies",
        "Medical conditions",
        "Your goals",
        "About you",
        "Payment",
    ):
        assert category in html
    r = sandbox.client.post(
        _page_path(created["enrollment_url"]),
        data={**form, "card_number": "4242 4242 4242 4242", "card_expiry": "12/30", "card_cvc": "123"},
    )
    assert r.status_code == 200, r.text
    assert "Thank you" in r.text
    got = sandbox.call("GET", f"/partner/referrals/{created['referral_id']}", p).json()
    schemas.component("Referral", got)
    assert got["status"] == "pending_review"
    assert [h["status"] for h in got["status_history"]] == ["created", "enrolled", "pending_review"]
    assert got["payment"]["status"] == "paid" and got["payment"]["amount_cents"] == 14900
    assert "patient_id" not in got  # referral tier never sees PHI links
    events = events_of(sandbox, created["referral_id"])
    assert [e.event_type for e in events] == [
        "referral.enrolled",
        "referral.payment_due",
        "referral.payment_complete",
        "referral.pending_review",
    ]
    for e in events:
        schemas.webhook(e.event_type, e.payload)
        assert e.payload["partner_reference"] == created["partner_reference"]
    with sandbox.state.db.session() as session:
        intake = session.scalar(
            select(IntakeSubmission).where(IntakeSubmission.referral_id == created["referral_id"])
        )
        assert intake is not None
        assert {a["category"] for a in intake.answers} >= {
            "symptoms",
            "medications",
            "allergies",
            "medical_history",
            "medical_conditions",
            "goals",
        }
    # the link is used up
    again = sandbox.client.get(_page_path(created["enrollment_url"]))
    assert again.status_code == 409 and "already completed" in again.text


def test_declined_card_changes_nothing(sandbox):
    p = sandbox.partner()
    created = sandbox.create_referral(p)
    _, form = _form(sandbox, created["enrollment_url"])
    r = sandbox.client.post(
        _page_path(created["enrollment_url"]),
        data={**form, "card_number": "4000 0000 0000 0002", "card_expiry": "12/30", "card_cvc": "123"},
    )
    assert r.status_code == 402
    assert "declined" in r.text and "No charge" in r.text
    assert 'value="Jane"' in r.text and "4000" not in r.text  # answers kept, card not echoed
    got = sandbox.call("GET", f"/partner/referrals/{created['referral_id']}", p).json()
    assert got["status"] == "created" and got["payment"]["status"] == "not_due"
    assert events_of(sandbox, created["referral_id"]) == []
    assert _patients(sandbox, created["referral_id"]) == 0


def test_missing_answers_and_bad_csrf_are_refused(sandbox):
    p = sandbox.partner()
    created = sandbox.create_referral(p)
    _, form = _form(sandbox, created["enrollment_url"])
    partial = {k: v for k, v in form.items() if not k.startswith("q_")}
    r = sandbox.client.post(
        _page_path(created["enrollment_url"]),
        data={**partial, "card_number": "4242424242424242", "card_expiry": "12/30", "card_cvc": "1"},
    )
    assert r.status_code == 400 and "Please answer" in r.text
    r = sandbox.client.post(_page_path(created["enrollment_url"]), data={**form, "csrf_token": "0" * 64})
    assert r.status_code == 403
    other = sandbox.create_referral(p)
    r = sandbox.client.post(
        _page_path(other["enrollment_url"]),
        data={**form, "card_number": "4242424242424242", "card_expiry": "12/30", "card_cvc": "123"},
    )
    assert r.status_code == 403  # a token is bound to its referral
    assert (
        sandbox.call("GET", f"/partner/referrals/{created['referral_id']}", p).json()["status"] == "created"
    )


def test_clinical_partner_gets_patient_id(sandbox, schemas):
    p = sandbox.partner("clinical")
    created = sandbox.create_referral(p, product_category="peptides")
    _, form = _form(sandbox, created["enrollment_url"])
    r = sandbox.client.post(
        _page_path(created["enrollment_url"]),
        data={**form, "card_number": "4242424242424242", "card_expiry": "01/31", "card_cvc": "999"},
    )
    assert r.status_code == 200
    got = sandbox.call("GET", f"/partner/referrals/{created['referral_id']}", p).json()
    schemas.component("Referral", got)
    assert got["patient_id"].startswith("ptn_")
    assert got["payment"]["amount_cents"] == 19900
    enrolled = events_of(sandbox, created["referral_id"])[0]
    assert enrolled.payload["patient_id"] == got["patient_id"]


def test_expired_and_unknown_links(sandbox):
    p = sandbox.partner()
    created = sandbox.create_referral(p)
    set_partner(sandbox, p, clock_offset_seconds=timedelta(days=8).total_seconds())
    r = sandbox.client.get(_page_path(created["enrollment_url"]))
    assert r.status_code == 409 and "REFERRAL_EXPIRED" in r.text
    assert (
        sandbox.call("GET", f"/partner/referrals/{created['referral_id']}", p).json()["status"] == "expired"
    )
    assert sandbox.client.get("/enroll/nobody/trt-cream?ref=ref_unknown123").status_code == 404
    other = sandbox.partner()
    wrong_partner = created["enrollment_url"].replace(
        p.partner_id.removeprefix("ptr_"), other.partner_id.removeprefix("ptr_")
    )
    assert sandbox.client.get(_page_path(wrong_partner)).status_code == 404


def test_consult_only_category_skips_the_payment_step(sandbox):
    from server.db.models import Product

    p = sandbox.partner()
    with sandbox.state.db.session() as session:
        product = session.scalar(
            select(Product).where(Product.partner_id == p.partner_id, Product.category == "peptides")
        )
        product.requires_payment_at_enrollment = False
    created = sandbox.create_referral(p, product_category="peptides")
    html, form = _form(sandbox, created["enrollment_url"])
    assert "card_number" not in html
    r = sandbox.client.post(_page_path(created["enrollment_url"]), data=form)
    assert r.status_code == 200, r.text
    got = sandbox.call("GET", f"/partner/referrals/{created['referral_id']}", p).json()
    assert got["status"] == "pending_review" and got["payment"]["status"] == "not_due"
    assert [e.event_type for e in events_of(sandbox, created["referral_id"])] == [
        "referral.enrolled",
        "referral.pending_review",
    ]


def test_page_escapes_partner_text_and_logs_no_phi(sandbox, caplog):
    import logging

    p = sandbox.partner(name="<script>alert(1)</script> Health")
    set_partner(sandbox, p, brand_accent_color="red}</style>")  # bypassing provisioning checks
    created = sandbox.create_referral(p)
    with caplog.at_level(logging.DEBUG):
        html, form = _form(sandbox, created["enrollment_url"])
        sandbox.client.post(
            _page_path(created["enrollment_url"]),
            data={**form, "card_number": "4242424242424242", "card_expiry": "12/30", "card_cvc": "123"},
        )
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "red}</style>" not in html  # invalid colours fall back to the default
    for value in ("Jane", "Roe", "jane.roe@example.com", "1985-04-12", "555-0100", "4242424242424242"):
        assert value not in caplog.text
