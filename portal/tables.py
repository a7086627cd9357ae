"""HTML tables generated from the spec at build time (errors, sandbox scenarios, events, lifecycles)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from portal.diagrams import states_of
from portal.specdata import access_tiers, error_catalog, iter_webhooks, sandbox_scenarios

# What a partner should do, by code; codes not listed get the advice for their status below.
ADVICE = {
    "MISSING_CREDENTIALS": "Send both X-Partner-ID and X-Api-Key on every request.",
    "INVALID_CREDENTIALS": "Check the partner id and key, and that the key matches the environment "
    "(sk_test_ on the sandbox, sk_live_ in production). After a rotation the old key works "
    "only until previous_key_expires_at.",
    "CLINICAL_ACCESS_REQUIRED": "Use a clinical-tier key and send X-Access-Tier: clinical.",
    "PRESCRIBER_ACCESS_REQUIRED": "Use a prescriber-tier key; ask partners@stealth.health if your contract covers it.",
    "COMPLIANCE_REVIEW_PENDING": "Complete the annual compliance review with partners@stealth.health; access "
    "resumes when it is recorded.",
    "IP_NOT_ALLOWED": "Call from an allowlisted address or ask for the allowlist to be updated.",
    "SANDBOX_ONLY_OPERATION": "Sandbox controls do not exist in production; drive production objects through "
    "the real flow.",
    "SANDBOX_SCENARIO_NOT_ALLOWED": "Remove the sandbox test value from the request; production refuses them.",
    "RATE_LIMIT_EXCEEDED": "Wait for Retry-After seconds, then retry; smooth your traffic below X-RateLimit-Limit.",
    "RATE_LIMITED": "Treat like RATE_LIMIT_EXCEEDED: wait for Retry-After, then retry.",
    "INVALID_BODY": "Fix the body: error.details names the field and the rule it broke. Do not retry unchanged.",
    "VALIDATION_ERROR": "Fix the field named in error.details and send again.",
    "INVALID_CURSOR": "Restart the listing without cursor, or pass next_cursor exactly as received.",
    "NOT_FOUND": "Check the URL against the reference.",
    "METHOD_NOT_ALLOWED": "Use one of the methods in the Allow header.",
    "PAYLOAD_TOO_LARGE": "Send a smaller body.",
    "UNSUPPORTED_MEDIA_TYPE": "Send Content-Type: application/json.",
    "INTERNAL_ERROR": "Retry with exponential backoff (start 1 s, cap 60 s, at most 5 attempts); report the "
    "X-Request-Id if it persists.",
    "QUERY_ERROR": "Transient: retry with exponential backoff.",
    "SERVICE_UNAVAILABLE": "Wait for Retry-After, then retry with exponential backoff.",
    "INVALID_PARTNER_REFERENCE": "Use your own id for the customer (max 128 characters, letters, digits, _ . : -).",
    "INVALID_PRODUCT_CATEGORY": "Pick a category from GET /partner/products.",
    "DUPLICATE_REFERENCE": "The partner_reference was used with a different body: reuse the object you created, "
    "or choose a new partner_reference for a new one.",
    "REFERRAL_NOT_FOUND": "Check the referral_id; referrals of other partners are answered as not found.",
    "REFERRAL_NOT_CANCELLABLE": "The referral is approved or further along; it can no longer be cancelled.",
    "REFERRAL_EXPIRED": "The enrollment link expired after 7 days; create a new referral.",
    "TRACKING_NOT_AVAILABLE": "No shipment yet; ask again after the referral.shipped webhook.",
    "EVENT_NOT_FOUND": "Check the event_id (evt_ followed by 24 hex digits).",
    "INVALID_TRANSITION": "The object cannot move to that state from where it is; GET it and follow its lifecycle.",
    "PATIENT_NOT_FOUND": "Check the patient_id; only patients of your referrals are visible.",
    "APPOINTMENT_NOT_FOUND": "Check the appointment_id; only your own appointments are visible.",
    "TRANSACTION_NOT_FOUND": "Check the transaction_id; only transactions of your patients are visible.",
    "INTAKE_NOT_AVAILABLE": "The intake is not submitted yet; wait for appointment.intake_completed.",
    "PRESCRIPTION_NOT_AVAILABLE": "Wait for appointment.prescription_signed; denied appointments have none.",
    "PRESCRIPTION_NOT_SIGNED": "Route only after appointment.prescription_signed.",
    "ALREADY_ROUTED": "Nothing to do: follow the routing with GET .../routing-status.",
    "PHARMACY_NOT_FOUND": "Omit pharmacy_id to use the default network pharmacy, or pass a valid one.",
    "PAYMENT_REQUIRED": "The review fee charge failed: fix billing with Stealth Health, then submit again.",
    "REFERRAL_NOT_CANCELABLE": "Never sent; handle it like REFERRAL_NOT_CANCELLABLE if your code already does.",
    "REFUND_NOT_ALLOWED": "GET the transaction: refund only a succeeded payment, up to what remains unrefunded.",
    "MISSING_PRESCRIBER_ID": "Send the prescriber_id of a prescriber registered with POST /partner/prescribers.",
    "PRESCRIBER_NOT_FOUND": "Check the prescriber_id; register the prescriber first with POST /partner/prescribers.",
    "PRESCRIBER_INACTIVE": "Register a new prescriber, or ask support to re-activate this one.",
    "PRESCRIBER_NAME_REQUIRED": "Send first_name and last_name.",
    "PRESCRIBER_EMAIL_INVALID": "Send a valid email address.",
    "PRESCRIBER_LICENSE_REQUIRED": "Send at least one license {country, jurisdiction, license_number, expires_at}.",
    "PRESCRIBER_LICENSE_INVALID": "Use country US or CA, a valid state or province code, and a license number.",
    "PRESCRIBER_LICENSE_EXPIRED": "Register only licenses whose expires_at is in the future.",
    "PRESCRIBER_LICENSE_MISMATCH": "Use a prescriber licensed in the patient's country and state or province, or "
    "add that license to a new prescriber registration.",
    "MEDICATIONS_REQUIRED": "Send at least one medication.",
    "MEDICATION_INVALID": "Give every medication a code, a quantity and dosage_instructions.",
    "MEDICATION_NOT_FOUND": "Use an active medication code from the Stealth Health catalog.",
    "MEDICATION_NOT_AVAILABLE_IN_JURISDICTION": "Choose a medication approved where the patient lives.",
    "CONTROLLED_SUBSTANCE_REQUIRES_DEA": "Use a prescriber registered with a dea_number (register a new one if needed).",
    "PATIENT_REFERRAL_REQUIRED": "Send exactly one of patient_id, referral_id or inline_patient.",
    "INLINE_PATIENT_INVALID": "Complete inline_patient: names, a valid email, dob (YYYY-MM-DD) and a full address.",
    "INVALID_INTAKE": "Answer every id in details.missing_question_ids (see required_intake_questions of "
    "GET /partner/products); prefix extra questions with custom_.",
    "UNSUPPORTED_JURISDICTION": "Check supported_countries and supported_states of the product before submitting.",
    "ROUTING_NOT_AVAILABLE": "Route the signed prescription first (POST .../route-pharmacy), or follow your own routing.",
    "MISSING_API_KEY": "Send your clinic's key in X-API-Key.",
    "INVALID_API_KEY": "Check the key and that it belongs to this environment.",
    "CLINIC_MISMATCH": "Use your own clinic_id (the one your key is scoped to).",
    "CLINIC_INACTIVE": "Contact support to re-activate the clinic.",
    "INVALID_WEBHOOK_URL": "Register an absolute https URL on a public address, without credentials.",
    "WEBHOOK_LIMIT_EXCEEDED": "Delete a registration you no longer use (10 at most per clinic).",
    "WEBHOOK_NOT_FOUND": "List your registrations (GET /webhook) and use one of their ids.",
    "MEDICATION_REQUEST_NOT_FOUND": "Check the medication_request_id; only your clinic's requests are visible.",
    "SHIPMENT_GROUP_NOT_FOUND": "Omit shipment_group_id or use an open group of your clinic.",
    "REFILL_NOT_ALLOWED": "Wait until the latest order is shipped or delivered (medication:updated tells you).",
    "REFILL_ALREADY_PENDING": "Nothing to do: follow the pending refill given in details.",
    "NO_REFILLS_REMAINING": "A new prescription is needed.",
    "PRESCRIPTION_EXPIRED": "A new prescription is needed.",
}

STATUS_ADVICE = {
    400: "Fix the request as error.details says; do not retry it unchanged.",
    401: "Fix the credentials.",
    402: "Resolve the payment problem, then retry.",
    403: "Your key or tier may not do this; do not retry.",
    404: "Check the id; objects of other partners are answered as not found.",
    409: "The object's current state does not allow this; GET it and decide.",
    413: "Send a smaller body.",
    415: "Send Content-Type: application/json.",
    422: "The request breaks a business rule named in error.message; change it before retrying.",
    429: "Wait for Retry-After, then retry.",
    500: "Retry with exponential backoff.",
    503: "Wait for Retry-After, then retry with exponential backoff.",
}


def advice(code: str, entry: dict[str, Any]) -> str:
    if code in ADVICE:
        return ADVICE[code]
    status = int(entry.get("status", 0) or 0)
    text = STATUS_ADVICE.get(status, "See the description.")
    if entry.get("retryable") and "retry" not in text.lower():
        text += " Safe to retry with exponential backoff."
    return text


def _code(text: Any) -> str:
    return f"<code>{escape(str(text))}</code>"


def errors_table(doc: dict[str, Any]) -> str:
    catalog = error_catalog(doc)
    rows = []
    for code, entry in sorted(catalog.items(), key=lambda kv: (int(kv[1].get("status", 0) or 0), kv[0])):
        dep = ' <span class="badge">deprecated</span>' if entry.get("deprecated") else ""
        retry = "yes" if entry.get("retryable") else "no"
        rows.append(
            f'<tr id="{escape(code)}"><td>{_code(code)}{dep}</td><td>{escape(str(entry.get("status", "")))}</td>'
            f"<td>{retry}</td><td>{escape(str(entry.get('description', '')))}</td>"
            f"<td>{escape(advice(code, entry))}</td></tr>"
        )
    return (
        '<table class="generated errors-table"><thead><tr><th>Code</th><th>HTTP</th><th>Retry?</th>'
        "<th>Meaning</th><th>What to do</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def scenarios_table(doc: dict[str, Any]) -> str:
    rows = []
    for sc in sandbox_scenarios(doc):
        value = sc.get("value")
        shown = value if isinstance(value, str) else json.dumps(value)
        rows.append(
            f"<tr><td>{_code(sc['method'] + ' ' + sc['path'])}</td><td>{escape(str(sc.get('name', '')))}</td>"
            f"<td>{_code(sc.get('field', ''))}</td><td>{_code(shown)}</td>"
            f"<td>{escape(str(sc.get('outcome', '')))}</td></tr>"
        )
    if not rows:
        return '<p class="note">No sandbox scenarios are defined in this build of the spec.</p>'
    return (
        '<table class="generated scenarios-table"><thead><tr><th>Operation</th><th>Scenario</th>'
        "<th>Field (JSON pointer)</th><th>Value</th><th>What happens</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def events_table(doc: dict[str, Any]) -> str:
    hooks = list(iter_webhooks(doc))
    if not hooks:
        return '<p class="note">No webhooks are defined in this build of the spec.</p>'
    with_tiers = any(access_tiers(op) for _e, _m, op in hooks)
    rows = []
    for event, _method, op in hooks:
        tiers = f"<td>{escape(', '.join(access_tiers(op)) or '-')}</td>" if with_tiers else ""
        rows.append(f"<tr><td>{_code(event)}</td>{tiers}<td>{escape(str(op.get('summary', '')))}</td></tr>")
    head = "<th>Event</th>" + ("<th>Tiers</th>" if with_tiers else "") + "<th>When</th>"
    return (
        f'<table class="generated events-table"><thead><tr>{head}</tr></thead><tbody>'
        + "".join(rows)
        + "</tbody></table>"
    )


def lifecycle_tables(lc: dict[str, Any]) -> str:
    states = lc.get("states") or {}
    terminal = set(lc.get("terminal") or [])
    init = lc.get("initial")
    initial = set(init if isinstance(init, list) else [init])
    srows = []
    for s in states_of(lc):
        kind = "initial" if s in initial else ("terminal" if s in terminal else "")
        srows.append(f"<tr><td>{_code(s)}</td><td>{kind}</td><td>{escape(str(states.get(s, '')))}</td></tr>")
    trows = []
    for t in lc.get("transitions") or []:
        trows.append(
            f"<tr><td>{_code(t['from'])}</td><td>{_code(t['to'])}</td>"
            f"<td>{_code(t['event']) if t.get('event') else '-'}</td></tr>"
        )
    return (
        '<details class="lifecycle-tables"><summary>States and transitions as a table</summary>'
        '<table class="generated"><thead><tr><th>State</th><th></th><th>Meaning</th></tr></thead><tbody>'
        + "".join(srows)
        + "</tbody></table>"
        '<table class="generated"><thead><tr><th>From</th><th>To</th><th>Webhook event</th></tr></thead>'
        "<tbody>" + "".join(trows) + "</tbody></table></details>"
    )
