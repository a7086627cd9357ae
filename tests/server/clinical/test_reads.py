"""Clinical-tier reads with data made by the enrollment flow (seed 002 §6-§10)."""

from __future__ import annotations

from sqlalchemy import select

from server.db.models_clinical import AuditLog
from tests.server.clinical.helpers import CLINICAL, code, enroll, get
from tests.server.conftest import advance, events_of


def test_enrollment_creates_the_clinical_records(sandbox, schemas):
    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    assert ref["patient_id"].startswith("ptn_") and ref["appointment_id"].startswith("appt_")
    patient_id, appointment_id = ref["patient_id"], ref["appointment_id"]

    r = get(sandbox, p, f"/partner/patients/{patient_id}")
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    schemas.component("Patient", body)
    assert body["first_name"] == "Jane" and body["phone"] == "+15552010100"
    assert body["gender"] == "female" and body["address"]["state"] == "FL"
    assert body["product_categories"] == ["trt-cream"] and body["status"] == "active"
    assert body["latest_appointment_id"] == appointment_id
    assert body["latest_appointment_status"] == "pending_review" and body["total_appointments"] == 1
    assert body["partner_reference"] == ref["partner_reference"]

    r = get(sandbox, p, f"/partner/appointments/{appointment_id}")
    assert r.status_code == 200, r.text
    appt = r.json()
    schemas.component("ClinicalAppointment", appt)
    assert appt["status"] == "pending_review" and appt["reviewed_at"] is None
    assert appt["prescription_summary"]["status"] == "pending"
    assert appt["payment"]["status"] == "paid" and appt["payment"]["amount_cents"] == 14900
    assert appt["payment"]["stripe_payment_intent_id"].startswith("pi_")
    assert appt["intake_summary"]["total_questions"] > 0

    r = get(sandbox, p, f"/partner/patients/{patient_id}/intake")
    assert r.status_code == 200, r.text
    intake = r.json()
    schemas.component("Intake", intake)
    assert intake["appointment_id"] == appointment_id and intake["form_title"] == "TRT Intake Questionnaire"
    assert {x["category"] for x in intake["responses"]} >= {"symptoms", "medications", "allergies", "goals"}
    r = get(sandbox, p, f"/partner/patients/{patient_id}/intake", appointment_id=appointment_id)
    assert r.status_code == 200 and r.json() == intake

    r = get(sandbox, p, f"/partner/patients/{patient_id}/transactions")
    assert r.status_code == 200, r.text
    txns = r.json()
    schemas.component("TransactionList", txns)
    assert txns["summary"] == {"total_paid_cents": 14900, "total_refunded_cents": 0, "currency": "USD"}
    (txn,) = txns["transactions"]
    assert txn["payment_method"] == {"type": "card", "brand": "visa", "last4": "4242"}
    assert txn["line_items"][0]["amount_cents"] == 14900 and txn["status"] == "succeeded"
    r = get(sandbox, p, f"/partner/transactions/{txn['transaction_id']}")
    assert r.status_code == 200 and r.json() == txn
    schemas.component("Transaction", r.json())

    r = get(sandbox, p, f"/partner/patients/{patient_id}/messages")
    assert r.status_code == 200, r.text
    threads = r.json()
    schemas.component("MessageThreadList", threads)
    assert threads["total_threads"] == 1
    assert [m["sender_type"] for m in threads["threads"][0]["messages"]] == ["system"]

    r = get(sandbox, p, f"/partner/patients/{patient_id}/appointments")
    assert r.status_code == 200, r.text
    schemas.component("ClinicalAppointmentList", r.json())
    assert [a["appointment_id"] for a in r.json()["appointments"]] == [appointment_id]


def test_clinical_events_of_enrollment_match_the_spec(sandbox, schemas):
    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    events = {e.event_type: e.payload for e in events_of(sandbox, ref["referral_id"])}
    for event_type in ("patient.created", "appointment.intake_completed", "transaction.succeeded"):
        assert event_type in events, sorted(events)
        schemas.webhook(event_type, events[event_type])
    assert events["patient.created"]["data"]["patient"]["patient_id"] == ref["patient_id"]
    assert events["appointment.intake_completed"]["appointment_id"] == ref["appointment_id"]


def test_referral_tier_never_gets_clinical_events_or_ids(sandbox):
    p = sandbox.partner()
    ref = enroll(sandbox, p)
    assert "patient_id" not in ref and "appointment_id" not in ref
    types = {e.event_type for e in events_of(sandbox, ref["referral_id"])}
    assert not types & {"patient.created", "appointment.intake_completed", "transaction.succeeded"}
    for e in events_of(sandbox, ref["referral_id"]):
        assert "patient_id" not in e.payload and "appointment_id" not in e.payload


def test_review_and_fulfillment_show_on_the_appointment(sandbox, schemas):
    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    advance(sandbox, p, ref["referral_id"], "approved", "awaiting_shipment", "shipped")
    appt = get(sandbox, p, f"/partner/appointments/{ref['appointment_id']}").json()
    schemas.component("ClinicalAppointment", appt)
    assert appt["status"] == "approved" and appt["reviewed_at"] is not None
    rx = appt["prescription_summary"]
    assert rx["status"] == "signed" and rx["medications"][0]["name"] == "Testosterone Cream 200mg/mL"
    assert rx["signed_at"] == appt["reviewed_at"] and rx["prescriber_license"].startswith("FL-MD-")
    assert appt["fulfillment"]["status"] == "shipped" and appt["fulfillment"]["carrier"] == "USPS"
    threads = get(sandbox, p, f"/partner/patients/{ref['patient_id']}/messages").json()
    schemas.component("MessageThreadList", threads)
    thread = threads["threads"][0]
    assert thread["status"] == "doctor_reviewed"
    assert [m["sender_type"] for m in thread["messages"]] == ["system", "doctor"]
    advance(sandbox, p, ref["referral_id"], "in_transit", "out_for_delivery", "delivered")
    listed = get(sandbox, p, f"/partner/patients/{ref['patient_id']}/appointments", status="completed").json()
    schemas.component("ClinicalAppointmentList", listed)
    assert [a["status"] for a in listed["appointments"]] == ["completed"]
    assert (
        get(sandbox, p, f"/partner/patients/{ref['patient_id']}/appointments", status="approved").json()[
            "appointments"
        ]
        == []
    )


def test_denied_appointment(sandbox, schemas):
    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    advance(sandbox, p, ref["referral_id"], "denied")
    appt = get(sandbox, p, f"/partner/appointments/{ref['appointment_id']}").json()
    schemas.component("ClinicalAppointment", appt)
    assert appt["status"] == "denied" and appt["prescription_summary"]["status"] == "denied"


def test_list_patients_filters_search_and_cursor(sandbox, schemas):
    p = sandbox.partner("clinical")
    a = enroll(sandbox, p, first_name="Alice", last_name="Zephyr", email="alice.z@example.com")
    b = enroll(
        sandbox, p, first_name="Bob", last_name="Young", email="bob.y@example.org", category="peptides"
    )
    c = enroll(sandbox, p, first_name="Carol", last_name="Xu", email="carol@example.com")
    r = get(sandbox, p, "/partner/patients")
    assert r.status_code == 200, r.text
    schemas.component("PatientList", r.json())
    ids = [x["patient_id"] for x in r.json()["patients"]]
    assert ids == [c["patient_id"], b["patient_id"], a["patient_id"]]  # newest first

    def ids_for(**params):
        r = get(sandbox, p, "/partner/patients", **params)
        assert r.status_code == 200, r.text
        return [x["patient_id"] for x in r.json()["patients"]]

    assert ids_for(search="zeph") == [a["patient_id"]]
    assert ids_for(search="ALICE Z") == [a["patient_id"]]  # full name, case-insensitive
    assert ids_for(search="example.org") == [b["patient_id"]]
    assert ids_for(search="%_") == []  # wildcards are literal
    assert ids_for(product_category="peptides") == [b["patient_id"]]
    assert ids_for(status="active") == ids and ids_for(status="inactive") == []
    assert ids_for(created_after="2000-01-01T00:00:00Z") == ids
    assert ids_for(created_before="2000-01-01T00:00:00Z") == []

    first = get(sandbox, p, "/partner/patients", limit=2).json()
    assert first["pagination"]["has_more"] is True
    second = get(sandbox, p, "/partner/patients", limit=2, cursor=first["pagination"]["next_cursor"]).json()
    assert [x["patient_id"] for x in first["patients"] + second["patients"]] == ids
    assert second["pagination"] == {"has_more": False, "next_cursor": None}
    r = get(sandbox, p, "/partner/patients", limit=2, search="ex", cursor=first["pagination"]["next_cursor"])
    assert r.status_code == 400 and code(r) == "INVALID_CURSOR"


def test_tenant_isolation_and_not_found_codes(sandbox):
    p, other = sandbox.partner("clinical"), sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    txn = get(sandbox, p, f"/partner/patients/{ref['patient_id']}/transactions").json()["transactions"][0]
    for url, expected in (
        (f"/partner/patients/{ref['patient_id']}", "PATIENT_NOT_FOUND"),
        (f"/partner/patients/{ref['patient_id']}/appointments", "PATIENT_NOT_FOUND"),
        (f"/partner/patients/{ref['patient_id']}/intake", "PATIENT_NOT_FOUND"),
        (f"/partner/patients/{ref['patient_id']}/messages", "PATIENT_NOT_FOUND"),
        (f"/partner/patients/{ref['patient_id']}/transactions", "PATIENT_NOT_FOUND"),
        (f"/partner/appointments/{ref['appointment_id']}", "APPOINTMENT_NOT_FOUND"),
        (f"/partner/transactions/{txn['transaction_id']}", "TRANSACTION_NOT_FOUND"),
        ("/partner/patients/ptn_doesnotexist1", "PATIENT_NOT_FOUND"),
        ("/partner/appointments/appt_doesnotexist1", "APPOINTMENT_NOT_FOUND"),
        ("/partner/transactions/txn_doesnotexist1", "TRANSACTION_NOT_FOUND"),
    ):
        r = get(sandbox, other, url)
        assert r.status_code == 404 and code(r) == expected, (url, r.text)
    assert get(sandbox, other, "/partner/patients").json()["patients"] == []
    # another patient's appointment through this patient's intake
    ref2 = enroll(sandbox, p)
    r = get(
        sandbox, p, f"/partner/patients/{ref['patient_id']}/intake", appointment_id=ref2["appointment_id"]
    )
    assert r.status_code == 404 and code(r) == "APPOINTMENT_NOT_FOUND"
    # a prescriber key reads PrescriberAppointments only (C-019)
    prescriber = sandbox.partner("prescriber")
    r = sandbox.call("GET", f"/partner/appointments/{ref['appointment_id']}", prescriber)
    assert r.status_code == 404 and code(r) == "APPOINTMENT_NOT_FOUND"
    # the referral tier is refused before any handler logic
    r = sandbox.call("GET", f"/partner/patients/{ref['patient_id']}", sandbox.partner(), headers=CLINICAL)
    assert r.status_code == 403 and code(r) == "CLINICAL_ACCESS_REQUIRED"


def test_intake_not_available_without_submission(sandbox):
    """A patient whose appointment has no intake submission (created without one) answers INTAKE_NOT_AVAILABLE."""
    from server.db.models_clinical import ClinicalAppointment

    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    with sandbox.state.db.session() as session:
        session.get(ClinicalAppointment, ref["appointment_id"]).intake_submission_id = None
    r = get(sandbox, p, f"/partner/patients/{ref['patient_id']}/intake")
    assert r.status_code == 404 and code(r) == "INTAKE_NOT_AVAILABLE"
    r = get(sandbox, p, f"/partner/patients/{ref['patient_id']}/intake", appointment_id=ref["appointment_id"])
    assert r.status_code == 404 and code(r) == "INTAKE_NOT_AVAILABLE"
    appt = get(sandbox, p, f"/partner/appointments/{ref['appointment_id']}").json()
    assert appt["intake_summary"] is None


def test_every_phi_read_is_audited(sandbox):
    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    pid, aid = ref["patient_id"], ref["appointment_id"]
    txn = get(sandbox, p, f"/partner/patients/{pid}/transactions").json()["transactions"][0]["transaction_id"]
    reads = {
        "listPatients": "/partner/patients",
        "getPatient": f"/partner/patients/{pid}",
        "listPatientAppointments": f"/partner/patients/{pid}/appointments",
        "getAppointment": f"/partner/appointments/{aid}",
        "getPatientIntake": f"/partner/patients/{pid}/intake",
        "listPatientMessages": f"/partner/patients/{pid}/messages",
        "getTransaction": f"/partner/transactions/{txn}",
    }
    request_ids = {}
    for operation, url in reads.items():
        r = sandbox.call(
            "GET",
            url,
            p,
            headers={**CLINICAL, "User-Agent": "audit-test/1.0", "X-Request-Id": f"req-{operation}"},
        )
        assert r.status_code == 200, (url, r.text)
        request_ids[operation] = r.headers["X-Request-Id"]
    with sandbox.state.db.session() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.patient_id == pid).order_by(AuditLog.id)).all()
        by_source = {row.source_name: row for row in rows if row.actor_role == "partner"}
        created = [row for row in rows if row.actor_role == "patient"]
        for operation in reads:
            row = by_source[operation]
            assert row.action == "phi.viewed" and row.actor_uid == p.partner_id
            assert row.correlation_id == request_ids[operation]
            assert row.ip_address == "127.0.0.1" and row.user_agent == "audit-test/1.0"
            assert row.schema_version == 1 and row.phi_redacted is True
        assert by_source["listPatientTransactions"].category == "payment"
        assert by_source["getAppointment"].parent_entity_id == pid
        assert {r.action for r in created} == {"patient.created", "appointment.created", "payment.succeeded"}
        diff = next(r for r in created if r.action == "patient.created").diff
        assert {d["field"] for d in diff} >= {"first_name", "email"}
        assert all(d["after"] == "[redacted]" for d in diff)  # no PHI value in the audit trail


def test_approval_sends_prescription_signed(sandbox, schemas):
    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    advance(sandbox, p, ref["referral_id"], "approved")
    events = {e.event_type: e.payload for e in events_of(sandbox, ref["referral_id"])}
    signed = events["appointment.prescription_signed"]
    schemas.webhook("appointment.prescription_signed", signed)
    appt = get(sandbox, p, f"/partner/appointments/{ref['appointment_id']}").json()
    assert signed["data"]["prescription"]["signed_at"] == appt["prescription_summary"]["signed_at"]
    assert signed["data"]["prescription"]["prescriber"]["name"] == appt["prescription_summary"]["prescriber"]
    # the referral tier gets no such event
    q = sandbox.partner()
    ref_q = enroll(sandbox, q)
    advance(sandbox, q, ref_q["referral_id"], "approved")
    assert "appointment.prescription_signed" not in {
        e.event_type for e in events_of(sandbox, ref_q["referral_id"])
    }


def test_denial_refund_refunds_the_transaction(sandbox, schemas):
    from server.services.transitions import close_payment

    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    advance(sandbox, p, ref["referral_id"], "denied")
    from server import clock
    from server.repositories import referrals as referrals_repo

    with sandbox.state.db.session() as session:  # what the simulation does when a paid case is denied
        referral = referrals_repo.get(session, p.partner_id, ref["referral_id"])
        if referral.payment.status == "paid":
            close_payment(
                session, sandbox.state.lifecycles, referral, clock.real_now(), partner_tier="clinical"
            )
    txn = get(sandbox, p, f"/partner/patients/{ref['patient_id']}/transactions").json()["transactions"][0]
    assert txn["status"] == "refunded" and txn["refund"]["amount_cents"] == 14900
    refunded = [
        e.payload for e in events_of(sandbox, ref["referral_id"]) if e.event_type == "transaction.refunded"
    ]
    assert len(refunded) == 1
    schemas.webhook("transaction.refunded", refunded[0])


def test_clinical_referral_events_carry_the_expanded_payload(sandbox, schemas):
    from server.db.models import Fulfillment

    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    advance(sandbox, p, ref["referral_id"], "approved", "awaiting_shipment")
    advance(sandbox, p, ref["referral_id"], "shipped", "in_transit", "out_for_delivery", "delivered")
    with sandbox.state.db.session() as session:
        tracking = session.get(
            Fulfillment, ref["referral_id"]
        ).tracking_number  # the pharmacy shipment's (P-015)
    assert tracking and tracking.startswith("9400") and len(tracking) == 22
    events = events_of(sandbox, ref["referral_id"])
    seen = {}
    for e in events:
        schemas.webhook(e.event_type, e.payload)
        seen[e.event_type] = e.payload
    for event_type in (
        "referral.enrolled",
        "referral.pending_review",
        "referral.approved",
        "referral.delivered",
    ):
        assert seen[event_type]["data"]["patient"]["first_name"] == "Jane", event_type
    assert seen["referral.approved"]["data"]["prescription"]["prescriber"] == "Dr. Morgan Hale"
    assert seen["referral.shipped"]["data"]["tracking_number"] == tracking
    assert "prescription" not in seen["referral.pending_review"]["data"]
