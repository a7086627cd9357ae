"""Isolation: every operation of the partner bundle with a path parameter is called by partner B with
partner A's real IDs (B of the tier the operation needs, a valid body from the spec's own examples).
Every answer is 404 in the error envelope, and A's objects read the same before and after (no
cross-partner read, no cross-partner write); every answer, PHI reads included, is `Cache-Control: no-store`. The operations come from the bundle, not a hand list: a new
ID-bearing operation is probed automatically, and a new kind of ID fails until A can provide one."""

from __future__ import annotations

import re
from typing import Any

from stealth_spec import walk
from tests.conftest import bundled
from tests.server.clinical.helpers import CLINICAL, enroll
from tests.server.reliability.procs import record
from tests.server.webhooks.helpers import drain


def _operations() -> list[tuple[str, str, list[str], str, Any]]:
    """(method, path, path parameter names, tier to call with, example body or None)."""
    doc = bundled("partner")
    out = []
    for op in walk.operations(doc):
        if op.is_webhook:
            continue
        names = [p["name"] for p in op.parameters(doc) if p.get("in") == "path"]
        if not names:
            continue
        body = None
        if op.op.get("requestBody"):
            media = walk.deref(doc, op.op["requestBody"])["content"]["application/json"]
            examples = list((media.get("examples") or {}).values())
            body = walk.deref(doc, examples[0]).get("value") if examples else media.get("example", {})
        tier = "prescriber" if op.tiers() == {"prescriber"} else "clinical"
        out.append((op.method.upper(), op.key, names, tier, body))
    return out


def _call(sandbox: Any, creds: Any, method: str, url: str, body: Any = None) -> Any:
    extra = CLINICAL if creds.tier == "clinical" else {}
    return sandbox.call(method, url, creds, headers=extra, json=body)


def _ids_of_a(sandbox: Any, a: Any) -> dict[str, str]:
    """One real object of partner A per kind of ID."""
    ref = enroll(sandbox, a)
    txns = _call(sandbox, a, "GET", f"/partner/patients/{ref['patient_id']}/transactions").json()
    body = {
        "first_name": "Alice",
        "last_name": "Doctor",
        "email": "alice@example.com",
        "dea_number": "AB1234567",
        "licenses": [
            {"country": "US", "jurisdiction": "FL", "license_number": "FL-MD-1", "expires_at": "2099-01-01"}
        ],
    }
    prescriber = _call(sandbox, a, "POST", "/partner/prescribers", body)
    assert prescriber.status_code == 201, prescriber.text
    drain(sandbox, a.partner_id)
    events = _call(sandbox, a, "GET", "/partner/events").json()["events"]
    return {
        "referral_id": ref["referral_id"],
        "patient_id": ref["patient_id"],
        "appointment_id": ref["appointment_id"],
        "transaction_id": txns["transactions"][0]["transaction_id"],
        "prescriber_id": prescriber.json()["prescriber_id"],
        "event_id": events[0]["event_id"],
    }


def _snapshot(sandbox: Any, a: Any, ids: dict[str, str]) -> dict[str, Any]:
    """A's own view of its objects (GETs only)."""
    reads = {
        "referral": f"/partner/referrals/{ids['referral_id']}",
        "patient": f"/partner/patients/{ids['patient_id']}",
        "appointment": f"/partner/appointments/{ids['appointment_id']}",
        "transaction": f"/partner/transactions/{ids['transaction_id']}",
        "prescriber": f"/partner/prescribers/{ids['prescriber_id']}",
        "event": f"/partner/events/{ids['event_id']}",
        "events": "/partner/events",
        "clock": "/partner/sandbox/clock",
    }
    out = {}
    for name, url in reads.items():
        r = _call(sandbox, a, "GET", url)
        assert r.status_code == 200, (url, r.text)
        assert r.headers.get("cache-control") == "no-store", url  # PHI and partner data are never cached
        out[name] = r.json()
    for moving in ("real_now", "now"):  # real time moves; the offset and the jobs must not
        out["clock"].pop(moving, None)
    return out


def test_no_partner_reaches_another_partners_objects(sandbox: Any) -> None:
    a = sandbox.partner("clinical", webhook_url=None)
    b = {"clinical": sandbox.partner("clinical"), "prescriber": sandbox.partner("prescriber")}
    ids = _ids_of_a(sandbox, a)
    before = _snapshot(sandbox, a, ids)
    probed = 0
    for method, path, names, tier, body in _operations():
        missing = [n for n in names if n not in ids]
        assert not missing, f"{method} {path}: no object of partner A for {missing}; add one to _ids_of_a"
        url = re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)
        r = _call(sandbox, b[tier], method, url, body)
        assert r.status_code == 404, (method, path, r.status_code, r.text[:300])
        assert r.json()["error"]["code"].endswith("NOT_FOUND"), (method, path, r.text[:300])
        assert r.headers.get("cache-control") == "no-store", (method, path)
        leaked = [v for v in ids.values() if v in r.text and v not in url]
        assert not leaked, (method, path, leaked)
        probed += 1
    after = _snapshot(sandbox, a, ids)
    changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert not changed, changed  # nothing of A's changed
    record(
        f"isolation ({sandbox.state.db.backend})",
        operations_probed=probed,
        cross_partner_answers_2xx=0,
        objects_unchanged=len(before),
    )
    assert probed >= 15
