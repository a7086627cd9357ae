"""Shared helpers of the clinical-tier tests: enroll a patient through the real enrollment page."""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

CLINICAL = {"X-Access-Tier": "clinical"}


def page_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def enroll(sandbox: Any, creds: Any, *, category: str = "trt-cream", **patient: str) -> dict[str, Any]:
    """Create a referral and complete its enrollment page; returns the referral as the partner reads it."""
    created = sandbox.create_referral(creds, product_category=category)
    page = sandbox.client.get(page_path(created["enrollment_url"]))
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
    answers = {f"q_{qid}": f"Answer to {qid}" for qid in re.findall(r'name="q_([a-z_]+)"', page.text)}
    form = {
        "csrf_token": token,
        "first_name": "Jane",
        "last_name": "Roe",
        "email": f"jane.{uuid.uuid4().hex[:6]}@example.com",
        "phone": "(555) 201-0100",
        "date_of_birth": "1985-04-12",
        "sex": "female",
        "state": "FL",
        "card_number": "4242 4242 4242 4242",
        "card_expiry": "01/31",
        "card_cvc": "999",
        **answers,
        **patient,
    }
    r = sandbox.client.post(page_path(created["enrollment_url"]), data=form)
    assert r.status_code == 200, r.text
    got = sandbox.call("GET", f"/partner/referrals/{created['referral_id']}", creds)
    assert got.status_code == 200
    return got.json()


def get(sandbox: Any, creds: Any, url: str, **params: Any) -> Any:
    return sandbox.call("GET", url, creds, headers=CLINICAL, params=params or None)


def code(response: Any) -> str:
    return response.json()["error"]["code"]
