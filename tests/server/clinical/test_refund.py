"""Sandbox refunds (POST /partner/sandbox/transactions/{transaction_id}/refund) and transaction.refunded."""

from __future__ import annotations

from sqlalchemy import select

from server.db.models import Event
from tests.server.clinical.helpers import CLINICAL, code, enroll, get


def _txn(sandbox, p, ref):
    return get(sandbox, p, f"/partner/patients/{ref['patient_id']}/transactions").json()["transactions"][0]


def refund(sandbox, p, txn_id, body=None):
    kwargs = {"json": body} if body is not None else {}
    return sandbox.call(
        "POST", f"/partner/sandbox/transactions/{txn_id}/refund", p, headers=CLINICAL, **kwargs
    )


def _refunded_events(sandbox, p):
    with sandbox.state.db.session() as session:
        return [
            e.payload
            for e in session.scalars(
                select(Event)
                .where(Event.partner_id == p.partner_id, Event.event_type == "transaction.refunded")
                .order_by(Event.seq)
            )
        ]


def test_partial_then_full_refund(sandbox, schemas):
    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    txn = _txn(sandbox, p, ref)
    r = refund(sandbox, p, txn["transaction_id"], {"amount_cents": 5000, "reason": "Goodwill credit"})
    assert r.status_code == 200, r.text
    body = r.json()
    schemas.component("Transaction", body)
    assert body["status"] == "succeeded" and body["refund"]["amount_cents"] == 5000
    assert body["refund"]["reason"] == "Goodwill credit"
    r = refund(sandbox, p, txn["transaction_id"], {"amount_cents": 99999})
    assert r.status_code == 409 and code(r) == "REFUND_NOT_ALLOWED"
    r = refund(sandbox, p, txn["transaction_id"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "refunded" and r.json()["refund"]["amount_cents"] == 14900
    assert r.json()["refund"]["reason"] == "Sandbox refund"
    r = refund(sandbox, p, txn["transaction_id"], {})
    assert r.status_code == 409 and code(r) == "REFUND_NOT_ALLOWED"

    events = _refunded_events(sandbox, p)
    assert [e["data"]["refund_amount_cents"] for e in events] == [5000, 9900]
    for e in events:
        schemas.webhook("transaction.refunded", e)
    summary = get(sandbox, p, f"/partner/patients/{ref['patient_id']}/transactions").json()["summary"]
    assert summary == {"total_paid_cents": 14900, "total_refunded_cents": 14900, "currency": "USD"}
    appt = get(sandbox, p, f"/partner/appointments/{ref['appointment_id']}").json()
    assert appt["payment"]["status"] == "refunded"
    referral = sandbox.call("GET", f"/partner/referrals/{ref['referral_id']}", p).json()
    assert referral["payment"]["status"] == "refunded"


def test_refund_errors(sandbox, sandbox_factory):
    p, other = sandbox.partner("clinical"), sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    txn = _txn(sandbox, p, ref)
    r = refund(sandbox, other, txn["transaction_id"])
    assert r.status_code == 404 and code(r) == "TRANSACTION_NOT_FOUND"
    r = refund(sandbox, p, "txn_doesnotexist1")
    assert r.status_code == 404 and code(r) == "TRANSACTION_NOT_FOUND"
    r = refund(sandbox, p, txn["transaction_id"], {"amount_cents": 0})
    assert r.status_code == 400
    r = sandbox.call(
        "POST",
        f"/partner/sandbox/transactions/{txn['transaction_id']}/refund",
        sandbox.partner(),
        headers=CLINICAL,
    )
    assert r.status_code == 403 and code(r) == "CLINICAL_ACCESS_REQUIRED"
    prod = sandbox_factory(environment="production")
    pp = prod.partner("clinical", environment="production")
    r = prod.call(
        "POST", f"/partner/sandbox/transactions/{txn['transaction_id']}/refund", pp, headers=CLINICAL
    )
    assert r.status_code == 403 and code(r) == "SANDBOX_ONLY_OPERATION"
