"""`conformance receiver --url URL --secret whsec_...`: test a partner's own webhook endpoint before go-live.

Sends the endpoint signed events of every type in the spec (payloads from the spec's webhook examples with fresh
``evt_`` ids), then forged ones (tampered body, wrong secret, malformed or missing signature), a duplicate
``event_id`` and an unknown event type, and reports whether the endpoint accepts valid events with a 2xx within
10 s, rejects every forged one (non-2xx), and answers a duplicate without error (seed 002 §16.6 cutover checklist).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from stealth_spec.events import event_model

from .checks import CheckResult, Status, declare
from .http import Exchange
from .receiver import sign
from .spec import Spec

PARTNER_CHECKS = {
    "partner.accepts_valid": (
        "Valid signed events of every type are acknowledged with a 2xx",
        ["REF-WH-010", "GLO-WH-003", "CLN-BP-010"],
    ),
    "partner.responds_fast": (
        "Every valid event is acknowledged within 10 seconds",
        ["REF-WH-010", "CLN-BP-004", "GLO-WH-003", "PHX-WH-003", "CLN-BP-010"],
    ),
    "partner.rejects_forged": (
        "Tampered, wrongly signed, malformed and unsigned deliveries are refused (non-2xx)",
        ["REF-SEC-002", "CLN-BP-001", "CLN-BP-002", "GLO-WH-002", "CLN-BP-010"],
    ),
    "partner.idempotent_duplicates": (
        "A duplicate event_id is acknowledged again without error",
        ["REF-WH-002", "CLN-WH-003", "CLN-BP-003", "GLO-WH-005", "PHX-WH-003", "CLN-BP-010"],
    ),
    "partner.unknown_event": (
        "An unknown event type does not crash the endpoint (no 5xx, no timeout)",
        ["REF-WH-004"],
    ),
}
for _cid, (_title, _reqs) in PARTNER_CHECKS.items():
    declare(_cid, _title, _reqs, phase="partner")


STEALTH_CONTRACT_TITLE = "Stealth Health Partner API"


def fresh_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def event_payloads(spec: Spec, tier: str | None = None) -> list[dict[str, Any]]:
    out = []
    # The generated models describe the Stealth Health contract; another document is judged by its own schemas.
    typed = (spec.full.get("info") or {}).get("title") == STEALTH_CONTRACT_TITLE
    for et in spec.webhooks:
        tiers = spec.webhook_tiers(et)
        if tier and not ("referral" in tiers or tier in tiers):
            continue
        payload = spec.webhook_example(et) or {"event_type": et, "data": {}}
        payload["event_id"] = fresh_event_id()
        payload["event_type"] = et
        payload["created_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if typed:
            with contextlib.suppress(LookupError):
                # Our own contract: the event goes through its generated model, so a sent event is a valid one.
                event_model(et).model_validate(payload)
        out.append(payload)
    return out


class Sender:
    def __init__(self, url: str, secret: str, timeout: float) -> None:
        self.url, self.secret, self.timeout = url, secret, timeout
        self.client = httpx.Client(timeout=timeout + 1.0)
        self.exchanges: list[Exchange] = []

    def send(self, body: bytes, signature: str | None, event_id: str | None, label: str) -> Exchange:
        headers = {"Content-Type": "application/json", "User-Agent": "stealth-conformance-receiver-test"}
        if signature is not None:
            headers["X-Stealth-Signature"] = signature
        if event_id:
            headers["webhook-id"] = event_id
            headers["webhook-timestamp"] = str(int(time.time()))
        ex = Exchange(
            method="POST",
            url=self.url,
            path=self.url,
            request_headers=headers,
            request_body=body.decode("utf-8", "replace"),
            status=None,
            source=label,
            credential="stealth",
        )
        started = time.monotonic()
        try:
            resp = self.client.post(self.url, content=body, headers=headers)
            ex.status = resp.status_code
            ex.response_headers = dict(resp.headers)
            ex.response_text = resp.text[:2000]
        except httpx.TimeoutException:
            ex.error = f"no answer within {self.timeout:.0f}s"
        except httpx.HTTPError as exc:
            ex.error = f"{type(exc).__name__}: {exc}"
        ex.elapsed_ms = (time.monotonic() - started) * 1000
        self.exchanges.append(ex)
        return ex

    def close(self) -> None:
        self.client.close()


def _ok(ex: Exchange) -> bool:
    return ex.status is not None and 200 <= ex.status < 300


def _answer(ex: Exchange) -> str:
    return f"{ex.status} in {ex.elapsed_ms:.0f} ms" if ex.status is not None else str(ex.error)


def run_receiver_checks(
    url: str, secret: str, spec: Spec, tier: str | None = None, timeout: float = 10.0
) -> dict[str, CheckResult]:
    results = {cid: CheckResult(cid, t, tuple(r)) for cid, (t, r) in PARTNER_CHECKS.items()}
    accepts, fast, forged, dupes, unknown = (results[c] for c in PARTNER_CHECKS)
    payloads = event_payloads(spec, tier)
    sender = Sender(url, secret, timeout)
    try:
        if not payloads:
            for r in results.values():
                r.skip("the spec has no webhooks to send")
            return results
        first_ok: tuple[bytes, dict[str, Any]] | None = None
        for p in payloads:
            body = json.dumps(p, separators=(",", ":")).encode()
            ex = sender.send(body, sign(secret, body), p["event_id"], "valid")
            if _ok(ex):
                accepts.ok()
                first_ok = first_ok or (body, p)
            else:
                accepts.fail(f"valid signed {p['event_type']} was answered {_answer(ex)}", ex)
            if ex.status is not None and ex.elapsed_ms <= timeout * 1000:
                fast.ok()
            else:
                fast.fail(f"{p['event_type']} was not acknowledged within {timeout:.0f}s ({_answer(ex)})", ex)
        base_p = dict(payloads[0])
        # Forged deliveries, each with a fresh event id so a dedupe layer cannot mask the verdict.
        cases = []
        p = dict(base_p, event_id=fresh_event_id())
        body = json.dumps(p, separators=(",", ":")).encode()
        tampered = body.replace(p["event_id"].encode(), fresh_event_id().encode())
        cases.append((tampered, sign(secret, body), "tampered body (signature of the original bytes)"))
        p2 = dict(base_p, event_id=fresh_event_id())
        b2 = json.dumps(p2, separators=(",", ":")).encode()
        cases.append((b2, sign("whsec_" + secrets.token_hex(16), b2), "signature made with another secret"))
        p3 = dict(base_p, event_id=fresh_event_id())
        b3 = json.dumps(p3, separators=(",", ":")).encode()
        cases.append((b3, None, "no X-Stealth-Signature header"))
        p4 = dict(base_p, event_id=fresh_event_id())
        b4 = json.dumps(p4, separators=(",", ":")).encode()
        cases.append((b4, "sha256=" + "0" * 64, "all-zero signature"))
        cases.append((b4, "sha256=zz", "malformed signature"))
        cases.append((b4, sign(secret, b4)[len("sha256=") :], "digest without the sha256= prefix"))
        p5 = dict(base_p, event_id=fresh_event_id())
        b5 = json.dumps(p5, indent=2).encode()
        cases.append(
            (
                b5,
                sign(secret, json.dumps(p5, separators=(",", ":")).encode()),
                "signature over re-serialized JSON, not the raw bytes",
            )
        )
        for raw, sig, what in cases:
            ex = sender.send(raw, sig, None, "forged")
            if ex.status is not None and not _ok(ex):
                forged.ok()
            elif ex.status is None:
                forged.fail(f"{what}: no answer ({ex.error}); a forged delivery must be refused promptly", ex)
            else:
                forged.fail(f"{what}: accepted with {ex.status}; forged events must be refused (401)", ex)
        # Duplicate delivery of a valid event (same event_id, same bytes): acknowledge again, no error.
        if first_ok is not None:
            body, p = first_ok
            for _ in range(2):
                ex = sender.send(body, sign(secret, body), p["event_id"], "duplicate")
                dupes.expect(
                    _ok(ex),
                    f"duplicate {p['event_id']} answered {_answer(ex)}; expected 2xx (dedupe and ack)",
                    ex,
                )
        else:
            dupes.skip("no valid event was accepted, so duplicates cannot be judged")
        # Unknown event type, correctly signed.
        pu = dict(base_p, event_id=fresh_event_id(), event_type="referral.conformance_unknown_event")
        bu = json.dumps(pu, separators=(",", ":")).encode()
        ex = sender.send(bu, sign(secret, bu), pu["event_id"], "unknown")
        unknown.expect(
            ex.status is not None and ex.status < 500,
            f"unknown event type answered {_answer(ex)}; acknowledge (2xx) and ignore it",
            ex,
        )
    finally:
        sender.close()
    return results


def main_receiver(ns: argparse.Namespace) -> int:
    from .redact import Redactor
    from .report import load_catalog
    from .runner import resolve_spec

    spec = Spec.load(resolve_spec(ns.spec))
    print(f"conformance receiver: testing {ns.url}", flush=True)
    results = run_receiver_checks(ns.url, ns.secret, spec, ns.tier, ns.timeout)
    red = Redactor(spec, [ns.secret])
    for r in results.values():
        print(f"  {r.status.value.upper():4} {r.check_id}: {red.text(r.reason())}")
        for f in r.failures[:5]:
            print(f"       - {red.text(f.message)}")
    if ns.report_dir:
        from .report import build_json, write_artifacts

        catalog = [
            q for q in load_catalog() if any(c.startswith("partner.") for c in q.get("verified_by") or [])
        ]
        data = build_json(
            {"base_url": ns.url, "tier": ns.tier, "environment": "partner endpoint"}, catalog, results, red
        )
        paths = write_artifacts(data, Path(ns.report_dir))
        print("Reports:", ", ".join(map(str, paths.values())))
    bad = [r for r in results.values() if r.status in (Status.FAIL, Status.SKIP)]
    print("Result:", "FAIL" if bad else "PASS")
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main(["receiver", *sys.argv[1:]]))
