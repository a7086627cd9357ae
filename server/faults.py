"""Test-only fault injection: makes the sandbox deliberately wrong so the conformance suite's teeth can be tested.

``STEALTH_TEST_FAULTS=name,name`` (read once by :class:`server.config.Settings`, refused in production) names the
deviations to inject; :func:`configure` installs them when the app starts and :func:`active` is the one question
the few hooks ask. Off (the default), every hook is a lookup in an empty frozenset. Each name matches a fault of
the conformance suite's fake app (tests/conformance/fakeapp.py) and one of its checks fails on it
(tests/conformance/test_suite_against_server_faults.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.auth import AuthenticatedPartner

FAULTS: dict[str, str] = {
    "auth_skipped_on_products": "GET /partner/products answers without credentials",
    "phi_leak": "referral-tier responses carry the x-phi patient_id",
    "bad_signature": "webhooks are signed with a wrong secret",
    "missing_ratelimit_header": "GET /partner/referrals/{id} answers without X-RateLimit-Remaining",
    "wrong_error_code": "an unknown referral id gets the generic NOT_FOUND instead of REFERRAL_NOT_FOUND",
    "cross_partner_read": "GET /partner/referrals/{id} returns another partner's referral",
    "cross_partner_patient_read": "the clinical patient operations serve another partner's patient",
    "retry_too_early": "the first webhook retry comes 10 s after the first attempt instead of 30 s",
    "event_id_per_attempt": "each webhook retry carries a new event id",
    "no_idempotency": "repeating a create with the same partner_reference and body gets 409, not the original",
    "cancel_after_approval": "an approved referral can be cancelled",
    "pagination_repeats": "the next page of GET /partner/referrals starts with the last item of the previous one",
    "no_rate_limit": "requests past the rate limit are served",
}

_active: frozenset[str] = frozenset()


def parse(value: str | None) -> frozenset[str]:
    """The fault names of a comma-separated list; ValueError on an unknown name."""
    names = frozenset(n.strip() for n in (value or "").split(",") if n.strip())
    unknown = sorted(names - FAULTS.keys())
    if unknown:
        raise ValueError(f"unknown test fault(s) {', '.join(unknown)}; known: {', '.join(sorted(FAULTS))}")
    return names


def configure(names: Iterable[str]) -> None:
    """Install the faults of this process (at app start; an empty set turns them all off)."""
    global _active
    _active = frozenset(names)


def active(name: str) -> bool:
    return name in _active


def anonymous_partner(environment: str) -> AuthenticatedPartner:
    """Who an operation whose authentication the fault skipped runs as: a partner with no data."""
    from server.auth import AuthenticatedPartner  # here: server.config imports this module

    return AuthenticatedPartner(
        id="ptr_anonymous",
        slug="anonymous",
        name="(no credentials)",
        tier="referral",
        environment=environment,
        clock_offset_seconds=0.0,
        rate_limit_per_minute=None,
    )
