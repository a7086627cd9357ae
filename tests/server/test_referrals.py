"""The referral tier over HTTP: every operation and the error codes it documents."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from server.db.models import Referral
from tests.server.conftest import advance, events_of, set_partner


def _count(sandbox, creds) -> int:
    with sandbox.state.db.session() as session:
        return session.scalar(
            select(func.count()).select_from(Referral).where(Referral.partner_id == creds.partner_id)
        )


def _ref() -> str:
    return f"cust_{uuid.uuid4().hex[:12]}"


# ----------------------------------------------------------------------------- create


def test_create_returns_201_with_sandbox_enrollment_url(sandbox, schemas):
    p = sandbox.partner()
    body = {
        "partner_reference": _ref(),
        "product_category": "trt-cream",
        "metadata": {"campaign": "spring-2026", "source": "website"},
    }
    r = sandbox.call("POST", "/partner/referrals", p, json=body)
    assert r.status_code == 201, r.text
    data = r.json()
    schemas.component("CreateReferralResponse", data)
    assert data["status"] == "created"
    slug = p.partner_id.removeprefix("ptr_")
    assert (
        data["enrollment_url"] == f"http://127.0.0.1:8080/enroll/{slug}/trt-cream?ref={data['referral_id']}"
    )
    assert r.headers["cache-control"] == "no-store"
    for h in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-request-id"):
        assert h in r.headers


def test_identical_replay_returns_200_same_referral(sandbox):
    p = sandbox.partner()
    body = {"partner_reference": _ref(), "product_category": "peptides", "metadata": {"a": "1", "b": "2"}}
    first = sandbox.call("POST", "/partner/referrals", p, json=body)
    reordered = {
        "metadata": {"b": "2", "a": "1"},
        "product_category": "peptides",
        "partner_reference": body["partner_reference"],
    }
    again = sandbox.call("POST", "/partner/referrals", p, json=reordered)
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["referral_id"] == first.json()["referral_id"]
    assert _count(sandbox, p) == 1


def test_same_reference_other_body_is_409_duplicate_reference(sandbox):
    p = sandbox.partner()
    ref = _ref()
    assert (
        sandbox.call(
            "POST", "/partner/referrals", p, json={"partner_reference": ref, "product_category": "trt-cream"}
        ).status_code
        == 201
    )
    r = sandbox.call(
        "POST", "/partner/referrals", p, json={"partner_reference": ref, "product_category": "peptides"}
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "DUPLICATE_REFERENCE"
    # x-validation-order: DUPLICATE_REFERENCE comes before INVALID_PRODUCT_CATEGORY
    r = sandbox.call(
        "POST", "/partner/referrals", p, json={"partner_reference": ref, "product_category": "hair-loss"}
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "DUPLICATE_REFERENCE"
    assert _count(sandbox, p) == 1


def test_concurrent_creates_with_one_reference_make_one_referral(sandbox):
    p = sandbox.partner()
    body = {"partner_reference": _ref(), "product_category": "trt-cream"}
    results: list[int] = []
    ids: set[str] = set()
    lock = threading.Lock()

    def worker() -> None:
        r = sandbox.call("POST", "/partner/referrals", p, json=body)
        with lock:
            results.append(r.status_code)
            if r.status_code in (200, 201):
                ids.add(r.json()["referral_id"])

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(set(results)) in ([200, 201], [201])
    assert results.count(201) == 1
    assert len(ids) == 1
    assert _count(sandbox, p) == 1


def test_unknown_product_category_is_422(sandbox):
    p = sandbox.partner()
    r = sandbox.call(
        "POST", "/partner/referrals", p, json={"partner_reference": _ref(), "product_category": "hair-loss"}
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "INVALID_PRODUCT_CATEGORY"


def test_partner_reference_errors_use_their_x_error_code(sandbox):
    p = sandbox.partner()
    for body in (
        {"product_category": "trt-cream"},
        {"partner_reference": "", "product_category": "trt-cream"},
        {"partner_reference": "x" * 129, "product_category": "trt-cream"},
        {"partner_reference": "has space", "product_category": "trt-cream"},
        {"partner_reference": 12345, "product_category": "trt-cream"},
    ):
        r = sandbox.call("POST", "/partner/referrals", p, json=body)
        assert r.status_code == 400, body
        assert r.json()["error"]["code"] == "INVALID_PARTNER_REFERENCE", (body, r.text)
    # Several rules broken: x-validation-order puts INVALID_BODY first.
    r = sandbox.call(
        "POST",
        "/partner/referrals",
        p,
        json={"partner_reference": "", "product_category": "trt-cream", "unexpected": True},
    )
    assert r.json()["error"]["code"] == "INVALID_BODY"
    assert _count(sandbox, p) == 0


def test_sandbox_scenarios(sandbox, sandbox_factory):
    p = sandbox.partner()
    ok = sandbox.call(
        "POST",
        "/partner/referrals",
        p,
        json={
            "partner_reference": _ref(),
            "product_category": "trt-cream",
            "metadata": {"sandbox_scenario": "expire"},
        },
    )
    assert ok.status_code == 201
    bad = sandbox.call(
        "POST",
        "/partner/referrals",
        p,
        json={
            "partner_reference": _ref(),
            "product_category": "trt-cream",
            "metadata": {"sandbox_scenario": "nope"},
        },
    )
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "INVALID_BODY"
    prod = sandbox_factory(environment="production", rate_limit_per_minute=1000)
    live = prod.partner(environment="production")
    r = prod.call(
        "POST",
        "/partner/referrals",
        live,
        json={
            "partner_reference": _ref(),
            "product_category": "trt-cream",
            "metadata": {"sandbox_scenario": "approve"},
        },
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "SANDBOX_SCENARIO_NOT_ALLOWED"
    assert live.api_key.startswith("sk_live_")


def test_bad_input_is_4xx_in_the_envelope_and_stores_nothing(sandbox):
    p = sandbox.partner()
    h = {"Content-Type": "application/json"}
    cases = [
        (b'{"partner_reference": "a", ', h, 400, "INVALID_BODY"),
        (b"\xff\xfe{\x00}", h, 400, "INVALID_BODY"),
        (
            '{"partner_reference": "caf\u00e9", "product_category": "trt-cream"}'.encode("latin-1"),
            h,
            400,
            "INVALID_BODY",
        ),
        (b"[]", h, 400, "INVALID_BODY"),
        (b"null", h, 400, "INVALID_BODY"),
        (b"", h, 400, "INVALID_BODY"),
        (b'{"partner_reference": "a", "product_category": NaN}', h, 400, "INVALID_BODY"),
        (b'{"partner_reference": "a", "product_category": 5}', h, 400, "INVALID_BODY"),
        (b'{"partner_reference": "a", "product_category": "trt-cream", "extra": 1}', h, 400, "INVALID_BODY"),
        (
            b'{"partner_reference": "a", "product_category": "trt-cream", "metadata": {"k": 1}}',
            h,
            400,
            "INVALID_BODY",
        ),
        (
            b'{"partner_reference": "a", "product_category": "trt-cream", "metadata": []}',
            h,
            400,
            "INVALID_BODY",
        ),
        (b"[" * 5000 + b"]" * 5000, h, 400, "INVALID_BODY"),
        (b"partner_reference=a", {"Content-Type": "text/plain"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
    ]
    for content, headers, status, code in cases:
        r = sandbox.call("POST", "/partner/referrals", p, content=content, headers=headers)
        assert r.status_code == status, (content[:60], r.status_code, r.text)
        assert r.json()["error"]["code"] == code, (content[:60], r.text)
        assert set(r.json()["error"]) <= {"code", "message", "details"}
    many = {f"k{i}": "v" for i in range(21)}
    long_value = {"k": "v" * 501}
    long_key = {"k" * 41: "v"}
    for metadata in (many, long_value, long_key):
        r = sandbox.call(
            "POST",
            "/partner/referrals",
            p,
            json={"partner_reference": _ref(), "product_category": "trt-cream", "metadata": metadata},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_BODY"
    ok_metadata = {f"k{i}": "v" * 500 for i in range(20)}
    big = sandbox.call(
        "POST",
        "/partner/referrals",
        p,
        json={"partner_reference": _ref(), "product_category": "trt-cream", "metadata": ok_metadata},
    )
    assert big.status_code == 201
    huge = b'{"partner_reference": "a", "product_category": "' + b"x" * 70_000 + b'"}'
    r = sandbox.call("POST", "/partner/referrals", p, content=huge, headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"

    def chunks():
        for _ in range(20):
            yield b"x" * 5000

    r = sandbox.call("POST", "/partner/referrals", p, content=chunks(), headers=h)
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert _count(sandbox, p) == 1  # only the valid 20-key create


# ----------------------------------------------------------------------------- get / isolation


def test_get_referral_full_shape(sandbox, schemas):
    p = sandbox.partner()
    created = sandbox.create_referral(p, metadata={"campaign": "x"})
    r = sandbox.call("GET", f"/partner/referrals/{created['referral_id']}", p)
    assert r.status_code == 200
    data = r.json()
    schemas.component("Referral", data)
    assert data["status_history"][0]["status"] == "created"
    assert data["fulfillment"] == {
        "status": None,
        "carrier": None,
        "estimated_delivery": None,
        "updated_at": None,
    }
    assert data["payment"]["status"] == "not_due"
    assert data["metadata"] == {"campaign": "x"}
    assert "patient_id" not in data


def test_other_partners_objects_are_not_found(sandbox):
    a, b = sandbox.partner(), sandbox.partner()
    rid = sandbox.create_referral(a)["referral_id"]
    for method, url in (
        ("GET", f"/partner/referrals/{rid}"),
        ("POST", f"/partner/referrals/{rid}/cancel"),
        ("GET", f"/partner/referrals/{rid}/tracking-link"),
    ):
        r = sandbox.call(method, url, b)
        assert r.status_code == 404, url
        assert r.json()["error"]["code"] == "REFERRAL_NOT_FOUND"
    listed = sandbox.call("GET", "/partner/referrals", b).json()["referrals"]
    assert listed == []
    # and b's cancel attempt changed nothing
    assert sandbox.call("GET", f"/partner/referrals/{rid}", a).json()["status"] == "created"


# ----------------------------------------------------------------------------- list


def test_list_filters_and_stable_keyset_pages(sandbox, schemas):
    p = sandbox.partner()
    made = [
        sandbox.create_referral(p, product_category="trt-cream" if i % 2 else "peptides") for i in range(5)
    ]
    advance(sandbox, p, made[0]["referral_id"], "cancelled")
    page1 = sandbox.call("GET", "/partner/referrals", p, params={"limit": 2})
    assert page1.status_code == 200
    schemas.component("ReferralList", page1.json())
    body1 = page1.json()
    assert body1["pagination"]["has_more"] is True
    # rows inserted between pages do not shift the listing
    sandbox.create_referral(p)
    seen = [r["referral_id"] for r in body1["referrals"]]
    cursor = body1["pagination"]["next_cursor"]
    while cursor:
        nxt = sandbox.call("GET", "/partner/referrals", p, params={"limit": 2, "cursor": cursor}).json()
        seen += [r["referral_id"] for r in nxt["referrals"]]
        cursor = nxt["pagination"]["next_cursor"]
    assert seen == [m["referral_id"] for m in reversed(made)]

    def ids(**params):
        r = sandbox.call("GET", "/partner/referrals", p, params=params)
        assert r.status_code == 200, r.text
        return {x["referral_id"] for x in r.json()["referrals"]}

    assert ids(status="cancelled") == {made[0]["referral_id"]}
    assert ids(product_category="peptides", status="created") == {
        made[2]["referral_id"],
        made[4]["referral_id"],
    }
    assert ids(partner_reference=made[3]["partner_reference"]) == {made[3]["referral_id"]}
    assert ids(fulfillment_status="shipped") == set()
    assert ids(created_before="2000-01-01T00:00:00Z") == set()
    assert len(ids(created_after="2000-01-01T00:00:00Z")) == 6


def test_list_cursor_and_limit_errors(sandbox):
    p = sandbox.partner()
    for _ in range(3):
        sandbox.create_referral(p)
    cursor = sandbox.call("GET", "/partner/referrals", p, params={"limit": 1}).json()["pagination"][
        "next_cursor"
    ]
    other_filter = sandbox.call(
        "GET", "/partner/referrals", p, params={"limit": 1, "cursor": cursor, "status": "created"}
    )
    assert other_filter.status_code == 400 and other_filter.json()["error"]["code"] == "INVALID_CURSOR"
    tampered = cursor[:-2] + ("AA" if not cursor.endswith("AA") else "BB")
    r = sandbox.call("GET", "/partner/referrals", p, params={"cursor": tampered})
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_CURSOR"
    other = sandbox.partner()
    r = sandbox.call("GET", "/partner/referrals", other, params={"limit": 1, "cursor": cursor})
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_CURSOR"
    for params in (
        {"limit": 0},
        {"limit": 201},
        {"limit": "ten"},
        {"status": "bogus"},
        {"created_after": "yesterday"},
        {"unknown": "1"},
    ):
        r = sandbox.call("GET", "/partner/referrals", p, params=params)
        assert r.status_code == 400, params
        assert r.json()["error"]["code"] == "VALIDATION_ERROR", (params, r.text)
        assert r.json()["error"]["details"]["in"] == "query"


# ----------------------------------------------------------------------------- summary


def test_summary_counts_and_revenue(sandbox, schemas):
    p = sandbox.partner()
    a = sandbox.create_referral(p, product_category="trt-cream")["referral_id"]
    b = sandbox.create_referral(p, product_category="peptides")["referral_id"]
    sandbox.create_referral(p, product_category="peptides")
    advance(sandbox, p, a, "enrolled", "payment:due", "payment:paid", "pending_review", "approved")
    advance(sandbox, p, b, "enrolled", "pending_review", "denied")
    for period in ("day", "week", "month", "all_time"):
        r = sandbox.call("GET", "/partner/referrals/summary", p, params={"period": period})
        assert r.status_code == 200, r.text
        data = r.json()
        schemas.component("ReferralSummary", data)
        assert data["totals"]["created"] == 3
        assert data["totals"]["enrolled"] == 2
        assert data["totals"]["approved"] == 1 and data["totals"]["denied"] == 1
        assert data["by_category"]["peptides"]["created"] == 2
        assert data["by_category"]["trt-cream"]["approved"] == 1
        assert data["revenue"] == {"total_cents": 14900, "currency": "USD"}
    month = sandbox.call("GET", "/partner/referrals/summary", p).json()
    assert (
        month["period"] == "month"
        and month["start"].endswith("-01T00:00:00Z")
        and month["end"].endswith("T23:59:59Z")
    )
    assert (
        sandbox.call("GET", "/partner/referrals/summary", p, params={"period": "all_time"}).json()["start"]
        is None
    )
    old = sandbox.call(
        "GET", "/partner/referrals/summary", p, params={"period": "day", "date": "2020-02-29"}
    ).json()
    assert old["start"] == "2020-02-29T00:00:00Z" and old["totals"]["created"] == 0
    assert sandbox.call("GET", "/partner/referrals/summary", p, params={"period": "year"}).status_code == 400
    ancient = sandbox.call(
        "GET", "/partner/referrals/summary", p, params={"period": "week", "date": "0816-02-19"}
    )
    assert ancient.status_code == 200 and ancient.json()["start"] == "0816-02-15T00:00:00Z"
    edge = sandbox.call(
        "GET", "/partner/referrals/summary", p, params={"period": "week", "date": "9999-12-31"}
    )
    assert edge.status_code == 400 and edge.json()["error"]["code"] == "VALIDATION_ERROR"


# ----------------------------------------------------------------------------- products


def test_products_per_tier(sandbox, schemas):
    for tier, key, expected in (
        ("referral", "category", ["trt-cream", "peptides"]),
        ("clinical", "category", ["trt-cream", "peptides"]),
        ("prescriber", "category_id", ["trt-cream", "bpc-157"]),  # seed 003 §9.3 (P-013)
    ):
        p = sandbox.partner(tier)
        r = sandbox.call("GET", "/partner/products", p)
        assert r.status_code == 200
        data = r.json()
        schemas.component("ProductList", data)
        assert [x[key] for x in data["products"]] == expected
    p = sandbox.partner()
    template = sandbox.call("GET", "/partner/products", p).json()["products"][0]["enrollment_url_template"]
    assert template.endswith("/trt-cream?ref={referral_id}") and template.startswith(
        "http://127.0.0.1:8080/enroll/"
    )


# ----------------------------------------------------------------------------- tracking link


def test_tracking_link_only_once_shipped(sandbox, schemas):
    p = sandbox.partner()
    rid = sandbox.create_referral(p)["referral_id"]
    r = sandbox.call("GET", f"/partner/referrals/{rid}/tracking-link", p)
    assert r.status_code == 404 and r.json()["error"]["code"] == "TRACKING_NOT_AVAILABLE"
    advance(sandbox, p, rid, "enrolled", "pending_review", "approved", "awaiting_shipment")
    assert sandbox.call("GET", f"/partner/referrals/{rid}/tracking-link", p).status_code == 404
    advance(sandbox, p, rid, "shipped", carrier="UPS")  # the pharmacy's shipment wins (P-015): USPS
    r = sandbox.call("GET", f"/partner/referrals/{rid}/tracking-link", p)
    assert r.status_code == 200, r.text
    link = r.json()
    schemas.component("TrackingLink", link)
    assert "/track/tkn_" in link["tracking_url"]
    page = sandbox.client.get(link["tracking_url"].replace("http://127.0.0.1:8080", ""))
    assert page.status_code == 200 and "USPS" in page.text and "shipped" in page.text
    assert page.headers["cache-control"] == "no-store"
    # a second call issues a new link; the first stays valid
    second = sandbox.call("GET", f"/partner/referrals/{rid}/tracking-link", p).json()
    assert second["tracking_url"] != link["tracking_url"]
    # links expire after 24 hours of the partner's clock
    set_partner(sandbox, p, clock_offset_seconds=timedelta(hours=25).total_seconds())
    page = sandbox.client.get(link["tracking_url"].replace("http://127.0.0.1:8080", ""))
    assert page.status_code == 410
    assert sandbox.client.get("/track/tkn_doesnotexist").status_code == 404


# ----------------------------------------------------------------------------- cancel


def test_cancel_rules(sandbox, schemas):
    p = sandbox.partner()
    rid = sandbox.create_referral(p)["referral_id"]
    r = sandbox.call(
        "POST", f"/partner/referrals/{rid}/cancel", p, json={"reason": "Customer requested cancellation"}
    )
    assert r.status_code == 200, r.text
    schemas.component("CancelReferralResponse", r.json())
    again = sandbox.call("POST", f"/partner/referrals/{rid}/cancel", p)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["cancelled_at"] == r.json()["cancelled_at"]
    events = [e.event_type for e in events_of(sandbox, rid)]
    assert events == ["referral.cancelled"]
    got = sandbox.call("GET", f"/partner/referrals/{rid}", p).json()
    assert got["cancelled_by"] == "partner" and got["payment"]["status"] == "not_applicable"

    paid = sandbox.create_referral(p)["referral_id"]
    advance(sandbox, p, paid, "enrolled", "payment:due", "payment:paid", "pending_review")
    assert sandbox.call("POST", f"/partner/referrals/{paid}/cancel", p).status_code == 200
    assert sandbox.call("GET", f"/partner/referrals/{paid}", p).json()["payment"]["status"] == "refunded"

    approved = sandbox.create_referral(p)["referral_id"]
    advance(sandbox, p, approved, "enrolled", "pending_review", "approved")
    r = sandbox.call("POST", f"/partner/referrals/{approved}/cancel", p)
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "REFERRAL_NOT_CANCELLABLE" and err["details"]["current_status"] == "approved"
    assert sandbox.call("GET", f"/partner/referrals/{approved}", p).json()["status"] == "approved"

    r = sandbox.call("POST", f"/partner/referrals/{rid}/cancel", p, json={"reason": ""})
    assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_BODY"
    r = sandbox.call("POST", "/partner/referrals/ref_unknown000/cancel", p)
    assert r.status_code == 404 and r.json()["error"]["code"] == "REFERRAL_NOT_FOUND"


# ----------------------------------------------------------------------------- expiry


def test_enrollment_link_expires_after_seven_days_on_the_partner_clock(sandbox, schemas):
    p = sandbox.partner()
    other = sandbox.partner()
    rid = sandbox.create_referral(p)["referral_id"]
    other_rid = sandbox.create_referral(other)["referral_id"]
    set_partner(sandbox, p, clock_offset_seconds=timedelta(days=7, seconds=1).total_seconds())
    got = sandbox.call("GET", f"/partner/referrals/{rid}", p).json()
    assert got["status"] == "expired"
    assert [h["status"] for h in got["status_history"]] == ["created", "expired"]
    assert got["status_history"][1]["at"] == got["expires_at"]
    assert got["payment"]["status"] == "not_applicable"
    events = events_of(sandbox, rid)
    assert [e.event_type for e in events] == ["referral.expired"]
    schemas.webhook("referral.expired", events[0].payload)
    # idempotent sweep, and the other partner's clock did not move
    sandbox.call("GET", "/partner/referrals", p)
    assert len(events_of(sandbox, rid)) == 1
    assert sandbox.call("GET", f"/partner/referrals/{other_rid}", other).json()["status"] == "created"
    r = sandbox.call("POST", f"/partner/referrals/{rid}/cancel", p)
    assert r.status_code == 409 and r.json()["error"]["code"] == "REFERRAL_EXPIRED"


# Which test exercises each code the referral-tier operations document (kept honest by the test below).
COVERED = {
    "INVALID_BODY": "test_bad_input_is_4xx_in_the_envelope_and_stores_nothing",
    "INVALID_PARTNER_REFERENCE": "test_partner_reference_errors_use_their_x_error_code",
    "VALIDATION_ERROR": "test_list_cursor_and_limit_errors",
    "INVALID_CURSOR": "test_list_cursor_and_limit_errors",
    "MISSING_CREDENTIALS": "test_auth.py::test_missing_and_invalid_credentials",
    "INVALID_CREDENTIALS": "test_auth.py::test_missing_and_invalid_credentials",
    "IP_NOT_ALLOWED": "test_auth.py::test_ip_allowlist_and_compliance_review",
    "COMPLIANCE_REVIEW_PENDING": "test_auth.py::test_ip_allowlist_and_compliance_review",
    "DUPLICATE_REFERENCE": "test_same_reference_other_body_is_409_duplicate_reference",
    "PAYLOAD_TOO_LARGE": "test_bad_input_is_4xx_in_the_envelope_and_stores_nothing",
    "UNSUPPORTED_MEDIA_TYPE": "test_bad_input_is_4xx_in_the_envelope_and_stores_nothing",
    "INVALID_PRODUCT_CATEGORY": "test_unknown_product_category_is_422",
    "SANDBOX_SCENARIO_NOT_ALLOWED": "test_sandbox_scenarios",
    "RATE_LIMIT_EXCEEDED": "test_ratelimit.py::test_http_limit_and_headers_on_every_response",
    "INTERNAL_ERROR": "test_errors.py::test_unhandled_exception_is_500_without_details",
    "SERVICE_UNAVAILABLE": "test_errors.py::test_database_down_is_503_with_retry_after",
    "REFERRAL_NOT_FOUND": "test_other_partners_objects_are_not_found",
    "TRACKING_NOT_AVAILABLE": "test_tracking_link_only_once_shipped",
    "REFERRAL_NOT_CANCELLABLE": "test_cancel_rules",
    "REFERRAL_EXPIRED": "test_enrollment_link_expires_after_seven_days_on_the_partner_clock",
}
# Documented but never sent by this server: QUERY_ERROR (503) — every data-store failure answers SERVICE_UNAVAILABLE.
NEVER_SENT = {"QUERY_ERROR"}
REFERRAL_TIER_OPERATIONS = (
    "createReferral",
    "listReferrals",
    "getReferral",
    "getReferralSummary",
    "getReferralTrackingLink",
    "cancelReferral",
    "listProducts",
)


def test_every_documented_code_is_exercised(sandbox):
    spec = sandbox.state.spec
    documented = set()
    for op_id in REFERRAL_TIER_OPERATIONS:
        op = spec.operations[op_id]
        for response in spec.resolved["paths"][op.path][op.method]["responses"].values():
            documented |= set(response.get("x-error-codes", []))
    assert documented - NEVER_SENT <= set(COVERED), documented - NEVER_SENT - set(COVERED)


def test_unknown_query_parameters(sandbox):
    p = sandbox.partner()
    assert sandbox.call("GET", "/partner/products", p, params={"foo": "1"}).status_code == 200
    r = sandbox.call("GET", "/partner/referrals", p, params={"foo": "1"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "VALIDATION_ERROR"


def test_created_after_an_items_own_timestamp_excludes_it(sandbox):
    """Stored times carry exactly the precision the API shows, so filters round-trip."""
    from server.clock import real_now

    assert real_now().microsecond % 1000 == 0
    p = sandbox.partner()
    first = sandbox.create_referral(p)
    second = sandbox.create_referral(p)
    got = sandbox.call("GET", f"/partner/referrals/{first['referral_id']}", p).json()
    r = sandbox.call("GET", "/partner/referrals", p, params={"created_after": got["created_at"]})
    ids = [item["referral_id"] for item in r.json()["referrals"]]
    assert first["referral_id"] not in ids
    r = sandbox.call("GET", "/partner/referrals", p, params={"created_before": second["created_at"]})
    ids = [item["referral_id"] for item in r.json()["referrals"]]
    assert second["referral_id"] not in ids and first["referral_id"] in ids
