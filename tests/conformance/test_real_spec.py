"""The conformance suite's reading of the real contract (spec/partner-api): what its checks rely on is there.

Skipped while the spec does not bundle yet (other files in progress).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from conformance.checks.state import advance_body
from conformance.checks.webhooks import _clock_body
from conformance.spec import Spec, subset_for_tier


@pytest.fixture(scope="module")
def full() -> dict[str, Any]:
    from tests.conftest import bundled

    try:
        return bundled("partner")
    except Exception as exc:  # the spec is written in parallel; a missing file must not fail this suite
        pytest.skip(f"spec/partner-api does not bundle yet: {exc}")


@pytest.fixture(scope="module")
def spec(full: dict[str, Any]) -> Spec:
    return Spec(full)


def test_every_operation_declares_tier_and_documented_error_codes(spec: Spec) -> None:
    assert spec.error_catalog, "ErrorCode x-error-catalog"
    for op in spec.operations:
        assert op.raw.get("x-access-tier"), f"{op.key}: x-access-tier"
        for status, codes in op.all_error_codes().items():
            for code in codes:
                assert code in spec.error_catalog, f"{op.key} {status}: {code} not in the catalog"
                assert str(spec.error_catalog[code]["status"]) == status, f"{op.key} {status}: {code}"
    for code in (
        "MISSING_CREDENTIALS",
        "INVALID_CREDENTIALS",
        "CLINICAL_ACCESS_REQUIRED",
        "RATE_LIMIT_EXCEEDED",
    ):
        assert code in spec.error_catalog


def test_what_the_referral_checks_rely_on(spec: Spec) -> None:
    create = spec.find_operation("POST", "/partner/referrals")
    assert create is not None and create.idempotency and create.idempotency.get("key") == "partner_reference"
    assert isinstance(create.request_example(), dict)
    assert spec.find_operation("POST", "/partner/referrals/ref_abc123/cancel") is not None
    assert spec.find_operation("POST", "/partner/referrals/ref_abc123/cancel").error_codes(409)  # type: ignore[union-attr]
    lst = spec.find_operation("GET", "/partner/referrals")
    assert lst is not None and spec.list_property(lst) == "referrals"
    assert lst.param("cursor") and lst.param("limit")
    assert spec.find_operation("GET", "/partner/referrals/ref_abc123").error_codes(404)  # type: ignore[union-attr]
    referral = next(lc for lc in spec.lifecycles if lc.name == "referral")
    assert "created" in referral.initial
    assert {"delivered", "denied", "cancelled", "expired"} <= referral.terminal
    assert referral.events.get("referral.approved") == "approved"


def test_what_the_sandbox_checks_rely_on(spec: Spec) -> None:
    adv = spec.sandbox_op("/referrals/{referral_id}/advance")
    assert adv is not None
    ctx: Any = SimpleNamespace(spec=spec)
    assert advance_body(ctx, adv, "approved").get("target_status") == "approved"
    clock = spec.sandbox_op("/clock/advance")
    assert clock is not None
    assert _clock_body(ctx, clock, 30) == {"seconds": 30}
    ev = spec.find_operation("GET", "/partner/events/evt_0123456789abcdef01234567")
    assert ev is not None and ev.path == "/partner/events/{event_id}"


def test_webhooks_have_schemas_examples_and_lifecycle_events(spec: Spec) -> None:
    assert spec.webhooks
    for et in spec.webhooks:
        schema = spec.webhook_schema(et)
        assert schema is not None, et
        example = spec.webhook_example(et)
        assert example is not None, f"{et}: the receiver test sends the spec's example"
        assert not spec.validation_errors(schema, example), et


def test_phi_marks_and_referral_subset(full: dict[str, Any], spec: Spec) -> None:
    assert {"first_name", "email"} <= spec.phi_names
    sub = Spec(subset_for_tier(full, "referral"), full=full)
    assert all(op.allowed_for("referral") and not op.sandbox_only for op in sub.operations)
    assert sub.phi_names == spec.phi_names  # marks come from the full document


def test_requirement_operations_exist(spec: Spec) -> None:
    from conformance.report import load_catalog

    keys = {op.key for op in spec.operations}
    for req in load_catalog():
        for op in req.get("operations") or []:
            assert op in keys, f"{req['id']}: {op} is not an operation of the spec"
