"""A small, deliberately breakable ASGI implementation of the fixture spec (mini-partner-api.yaml).

Correct by default (the conformance suite must find zero failures); each name in ``faults`` injects one deviation.
Served by uvicorn in a thread on a free loopback port.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

FAULTS = {
    "auth_skipped_on_products",  # GET /partner/products answers without credentials
    "phi_leak",  # referral-tier responses carry patient_id / first_name
    "bad_signature",  # webhooks signed with the wrong secret
    "missing_ratelimit_header",  # X-RateLimit-Remaining missing on GET /partner/referrals/{id}
    "wrong_error_code",  # unknown referral answers 404 NOT_FOUND instead of REFERRAL_NOT_FOUND
    "cross_partner_read",  # any partner can read any referral
    "retry_too_early",  # the 2nd attempt comes 10 s after the first instead of 30 s
    "no_idempotency",  # a replayed create makes a second referral
    "cancel_after_approval",  # an approved referral can be cancelled
    "pagination_repeats",  # the cursor points one item back
    "no_rate_limit",  # never answers 429
    "event_id_per_attempt",  # every retry gets a new event_id
    "sandbox_ops_in_production",  # production honours the sandbox-only controls
}

STATUSES = [
    "created",
    "enrolled",
    "pending_review",
    "approved",
    "denied",
    "cancelled",
    "expired",
    "awaiting_shipment",
    "shipped",
    "delivered",
]
TRANSITIONS = {
    "created": ["enrolled", "cancelled", "expired"],
    "enrolled": ["pending_review", "cancelled"],
    "pending_review": ["approved", "denied", "cancelled"],
    "approved": ["awaiting_shipment"],
    "awaiting_shipment": ["shipped"],
    "shipped": ["delivered"],
}
RETRY_OFFSETS = [30, 300, 1800, 7200, 43200]
REF_RE = re.compile(r"^ref_[A-Za-z0-9]{6,32}$")
EVT_RE = re.compile(r"^evt_[0-9a-f]{24}$")
PTN_RE = re.compile(r"^ptn_[A-Za-z0-9]{6,40}$")
PARTNER_REF_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def now_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Partner:
    partner_id: str
    api_key: str
    tier: str
    secret: str
    webhook_url: str | None = None
    clock_offset: float = 0.0
    window_start: float = 0.0
    window_count: int = 0

    def now(self) -> float:
        return time.time() + self.clock_offset


@dataclass
class Event:
    event_id: str
    partner: Partner
    payload: dict[str, Any]
    body: bytes
    first_due: float
    attempts: list[tuple[float, int | None]] = field(default_factory=list)
    status: str = "pending"

    def next_due(self, faults: set[str]) -> float | None:
        n = len(self.attempts)
        if n == 0:
            return self.first_due
        if n >= 6:
            return None
        offsets = list(RETRY_OFFSETS)
        if "retry_too_early" in faults:
            offsets[0] = 10
        return self.attempts[0][0] + offsets[n - 1]


class FakePartnerApi:
    def __init__(
        self, faults: set[str] | None = None, rate_limit: int = 300, production: bool = False
    ) -> None:
        self.faults = set(faults or ())
        self.production = production
        unknown = self.faults - FAULTS
        if unknown:
            raise ValueError(f"unknown faults {unknown}")
        self.rate_limit = rate_limit
        self.partners: dict[str, Partner] = {}
        self.referrals: dict[str, dict[str, Any]] = {}
        self.owner: dict[str, str] = {}
        self.seq: dict[str, int] = {}
        self.by_reference: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        self.events: list[Event] = []
        self.lock = threading.RLock()
        self.counter = 0
        self._stop = threading.Event()
        self._dispatcher = threading.Thread(target=self._dispatch_loop, daemon=True)
        self._dispatcher.start()
        self.anon_count = 0

    def add_partner(self, tier: str = "referral", webhook_url: str | None = None) -> Partner:
        pid = "ptr_" + secrets.token_hex(4)
        p = Partner(
            pid,
            ("sk_live_" if self.production else "sk_test_") + secrets.token_hex(32),
            tier,
            "whsec_" + secrets.token_hex(16),
            webhook_url,
        )
        self.partners[pid] = p
        return p

    def stop(self) -> None:
        self._stop.set()

    # ---- helpers ---------------------------------------------------------------------------------------------
    def _headers(self, partner: Partner | None, path: str) -> dict[str, str]:
        count = partner.window_count if partner else self.anon_count
        reset = int((partner.window_start if partner else time.time()) + 60)
        h = {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - count)),
            "X-RateLimit-Reset": str(reset),
            "X-Request-Id": str(uuid.uuid4()),
        }
        if "missing_ratelimit_header" in self.faults and re.match(r"^/partner/referrals/ref_[^/]+$", path):
            del h["X-RateLimit-Remaining"]
        return h

    def _json(
        self, status: int, body: Any, partner: Partner | None, path: str, extra: dict[str, str] | None = None
    ) -> Response:
        h = self._headers(partner, path)
        h.update(extra or {})
        return JSONResponse(body, status_code=status, headers=h)

    def _err(
        self,
        status: int,
        code: str,
        msg: str,
        partner: Partner | None,
        path: str,
        details: dict[str, Any] | None = None,
        extra: dict[str, str] | None = None,
    ) -> Response:
        return self._json(
            status, {"error": {"code": code, "message": msg, "details": details}}, partner, path, extra
        )

    def _emit(self, partner: Partner, ref: dict[str, Any], status: str, at: float) -> None:
        payload = {
            "event_id": "evt_" + secrets.token_hex(12),
            "event_type": f"referral.{status}",
            "referral_id": ref["referral_id"],
            "partner_reference": ref["partner_reference"],
            "data": {"status": status, "occurred_at": now_iso(at)},
            "metadata": ref["metadata"],
            "created_at": now_iso(at),
        }
        body = json.dumps(payload, separators=(",", ":")).encode()
        with self.lock:
            self.events.append(Event(payload["event_id"], partner, payload, body, partner.now()))

    def _move(self, partner: Partner, ref: dict[str, Any], status: str) -> None:
        at = partner.now()
        ref["status"] = status
        ref["status_history"].append({"status": status, "at": now_iso(at)})
        self._emit(partner, ref, status, at)

    def _dispatch_loop(self) -> None:
        client = httpx.Client(timeout=10)
        while not self._stop.is_set():
            with self.lock:
                due = []
                for ev in self.events:
                    nxt = (
                        ev.next_due(self.faults) if ev.status not in ("delivered", "dead_lettered") else None
                    )
                    if nxt is not None and ev.partner.webhook_url and ev.partner.now() >= nxt:
                        due.append(ev)
            for ev in due:
                body = ev.body
                if "event_id_per_attempt" in self.faults and ev.attempts:
                    p = dict(ev.payload, event_id="evt_" + secrets.token_hex(12))
                    body = json.dumps(p, separators=(",", ":")).encode()
                secret = ev.partner.secret if "bad_signature" not in self.faults else "whsec_wrong"
                sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                code: int | None
                try:
                    r = client.post(
                        str(ev.partner.webhook_url),
                        content=body,
                        headers={"Content-Type": "application/json", "X-Stealth-Signature": sig},
                    )
                    code = r.status_code
                except httpx.HTTPError:
                    code = None
                with self.lock:
                    ev.attempts.append((ev.partner.now(), code))
                    if code is not None and 200 <= code < 300:
                        ev.status = "delivered"
                    elif len(ev.attempts) >= 6:
                        ev.status = "dead_lettered"
                    else:
                        ev.status = "pending_retry"
            time.sleep(0.05)
        client.close()

    # ---- ASGI -------------------------------------------------------------------------------------------------
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        response = self.handle(
            request.method, request.url.path, dict(request.query_params), request.headers, body
        )
        await response(scope, receive, send)

    def handle(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes) -> Response:
        with self.lock:
            return self._handle(method, path, query, headers, body)

    def _route(self, method: str, path: str) -> tuple[str | None, dict[str, str], list[str]]:
        routes = [
            ("POST", r"/partner/referrals", "create"),
            ("GET", r"/partner/referrals", "list"),
            ("GET", r"/partner/referrals/(?P<rid>[^/]+)", "get"),
            ("POST", r"/partner/referrals/(?P<rid>[^/]+)/cancel", "cancel"),
            ("GET", r"/partner/products", "products"),
            ("GET", r"/partner/patients", "patients"),
            ("GET", r"/partner/patients/(?P<pid>[^/]+)", "patient"),
            ("POST", r"/partner/sandbox/referrals/(?P<rid>[^/]+)/advance", "advance"),
            ("POST", r"/partner/sandbox/clock/advance", "clock"),
            ("GET", r"/partner/events/(?P<eid>[^/]+)", "event"),
        ]
        allowed = []
        for m, pattern, name in routes:
            match = re.fullmatch(pattern, path)
            if match:
                if m == method:
                    return name, match.groupdict(), [m]
                allowed.append(m)
        return None, {}, allowed

    def _handle(self, method: str, path: str, query: dict[str, str], headers: Any, body: bytes) -> Response:
        name, params, allowed = self._route(method, path)
        if name is None:
            if allowed:
                return self._err(
                    405,
                    "METHOD_NOT_ALLOWED",
                    "Method not allowed.",
                    None,
                    path,
                    extra={"Allow": ", ".join(sorted(set(allowed)))},
                )
            return self._err(404, "NOT_FOUND", "No such path.", None, path)
        # Authentication.
        pid, key = headers.get("x-partner-id"), headers.get("x-api-key")
        partner: Partner | None = None
        if not (name == "products" and "auth_skipped_on_products" in self.faults):
            if not pid or not key:
                self.anon_count += 1
                return self._err(
                    401, "MISSING_CREDENTIALS", "X-Partner-ID and X-Api-Key are required.", None, path
                )
            partner = self.partners.get(pid)
            if partner is None or not hmac.compare_digest(partner.api_key.encode(), key.encode()):
                return self._err(401, "INVALID_CREDENTIALS", "Unknown partner or wrong key.", None, path)
            # Rate limit (fixed window).
            now = time.time()
            if now - partner.window_start >= 60:
                partner.window_start, partner.window_count = now, 0
            partner.window_count += 1
            if partner.window_count > self.rate_limit and "no_rate_limit" not in self.faults:
                return self._err(
                    429,
                    "RATE_LIMIT_EXCEEDED",
                    "Too many requests.",
                    partner,
                    path,
                    extra={"Retry-After": str(max(1, int(partner.window_start + 60 - now)))},
                )
        if (
            name in ("advance", "clock")
            and self.production
            and "sandbox_ops_in_production" not in self.faults
        ):
            return self._err(403, "SANDBOX_ONLY_OPERATION", "Sandbox only.", partner, path)
        # Tier.
        if name in ("patients", "patient"):
            assert partner is not None
            if partner.tier != "clinical" or headers.get("x-access-tier") != "clinical":
                return self._err(403, "CLINICAL_ACCESS_REQUIRED", "Clinical tier required.", partner, path)
        data: Any = None
        if method == "POST" and body:
            try:
                data = json.loads(body)
            except ValueError:
                return self._err(400, "INVALID_BODY", "Malformed JSON.", partner, path)
            if not isinstance(data, dict):
                return self._err(400, "INVALID_BODY", "The body must be a JSON object.", partner, path)
        return getattr(self, "_op_" + name)(partner, path, params, query, data)

    def _own(self, partner: Partner, rid: str) -> dict[str, Any] | None:
        ref = self.referrals.get(rid)
        if ref is None:
            return None
        if self.owner[rid] != partner.partner_id and "cross_partner_read" not in self.faults:
            return None
        return ref

    def _view(self, partner: Partner, ref: dict[str, Any]) -> dict[str, Any]:
        out = json.loads(json.dumps(ref))
        if "phi_leak" in self.faults:
            out["patient_id"] = "ptn_leak0001"
            out["first_name"] = "Leaky"
        return out

    def _not_found(self, partner: Partner, path: str) -> Response:
        code = "NOT_FOUND" if "wrong_error_code" in self.faults else "REFERRAL_NOT_FOUND"
        return self._err(404, code, "Referral not found.", partner, path)

    # ---- operations --------------------------------------------------------------------------------------------
    def _op_products(self, partner: Partner | None, path: str, *_: Any) -> Response:
        return self._json(
            200,
            {
                "products": [
                    {"category": "trt-cream", "display_name": "TRT Cream"},
                    {"category": "peptides", "display_name": "Peptides"},
                ]
            },
            partner,
            path,
        )

    def _validate_create(self, data: Any) -> str | None:
        if not isinstance(data, dict):
            return "body must be an object"
        extra = set(data) - {"partner_reference", "product_category", "metadata"}
        if extra:
            return f"unknown properties {sorted(extra)}"
        ref = data.get("partner_reference")
        if not isinstance(ref, str) or not 1 <= len(ref) <= 128 or not PARTNER_REF_RE.match(ref):
            return "partner_reference is invalid"
        if data.get("product_category") not in ("trt-cream", "peptides"):
            return "product_category is invalid"
        meta = data.get("metadata", {})
        if (
            not isinstance(meta, dict)
            or len(meta) > 20
            or any(not isinstance(v, str) or len(v) > 500 for v in meta.values())
        ):
            return "metadata is invalid"
        return None

    def _op_create(self, partner: Partner, path: str, _p: Any, _q: Any, data: Any) -> Response:
        problem = self._validate_create(data)
        if problem:
            return self._err(400, "INVALID_BODY", problem, partner, path, {"reason": problem})
        key = (partner.partner_id, data["partner_reference"])
        if key in self.by_reference and "no_idempotency" not in self.faults:
            rid, original = self.by_reference[key]
            if original == data:
                return self._json(
                    200,
                    self._view(partner, self.referrals[rid]),
                    partner,
                    path,
                    {"Idempotent-Replayed": "true"},
                )
            return self._err(409, "DUPLICATE_REFERENCE", "partner_reference already used.", partner, path)
        self.counter += 1
        now = partner.now()
        rid = "ref_" + secrets.token_hex(8)
        ref = {
            "referral_id": rid,
            "partner_reference": data["partner_reference"],
            "product_category": data["product_category"],
            "status": "created",
            "status_history": [{"status": "created", "at": now_iso(now)}],
            "enrollment_url": f"https://enroll.example.test/{rid}",
            "metadata": data.get("metadata", {}),
            "created_at": now_iso(now),
            "expires_at": now_iso(now + 7 * 86400),
        }
        self.referrals[rid] = ref
        self.owner[rid] = partner.partner_id
        self.seq[rid] = self.counter
        self.by_reference[key] = (rid, data)
        return self._json(201, self._view(partner, ref), partner, path)

    def _op_list(self, partner: Partner, path: str, _p: Any, query: dict[str, str], _d: Any) -> Response:
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            return self._err(400, "INVALID_BODY", "limit must be an integer.", partner, path)
        if not 1 <= limit <= 200:
            return self._err(400, "INVALID_BODY", "limit must be 1..200.", partner, path)
        after = 0
        if "cursor" in query:
            try:
                after = int(base64.urlsafe_b64decode(query["cursor"].encode()).decode().removeprefix("seq:"))
            except (ValueError, UnicodeDecodeError):
                return self._err(400, "INVALID_CURSOR", "Invalid cursor.", partner, path)
        created_after = query.get("created_after")
        if created_after is not None:
            try:
                ca = datetime.fromisoformat(created_after.replace("Z", "+00:00"))
                if ca.tzinfo is None:
                    raise ValueError
            except ValueError:
                return self._err(400, "INVALID_BODY", "created_after must be a date-time.", partner, path)
        if "partner_reference" in query and len(query["partner_reference"]) > 128:
            return self._err(400, "INVALID_BODY", "partner_reference too long.", partner, path)
        items = [
            r
            for rid, r in self.referrals.items()
            if self.owner[rid] == partner.partner_id and self.seq[rid] > after
        ]
        if created_after is not None:
            items = [r for r in items if datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")) > ca]
        if "partner_reference" in query:
            items = [r for r in items if r["partner_reference"] == query["partner_reference"]]
        items.sort(key=lambda r: self.seq[r["referral_id"]])
        page, more = items[:limit], len(items) > limit
        nxt = None
        if more:
            last = self.seq[page[-1]["referral_id"]] - (1 if "pagination_repeats" in self.faults else 0)
            nxt = base64.urlsafe_b64encode(f"seq:{last}".encode()).decode()
        return self._json(
            200,
            {
                "referrals": [self._view(partner, r) for r in page],
                "pagination": {"has_more": more, "next_cursor": nxt},
            },
            partner,
            path,
        )

    def _op_get(self, partner: Partner, path: str, params: dict[str, str], *_: Any) -> Response:
        if not REF_RE.match(params["rid"]):
            return self._err(400, "INVALID_BODY", "referral_id is malformed.", partner, path)
        ref = self._own(partner, params["rid"])
        if ref is None:
            return self._not_found(partner, path)
        return self._json(200, self._view(partner, ref), partner, path)

    def _op_cancel(self, partner: Partner, path: str, params: dict[str, str], _q: Any, data: Any) -> Response:
        if not REF_RE.match(params["rid"]):
            return self._err(400, "INVALID_BODY", "referral_id is malformed.", partner, path)
        if data is not None and (
            not isinstance(data, dict)
            or set(data) - {"reason"}
            or not isinstance(data.get("reason", ""), str)
            or len(data.get("reason", "")) > 500
        ):
            return self._err(400, "INVALID_BODY", "Invalid body.", partner, path)
        ref = self._own(partner, params["rid"])
        if ref is None or (self.owner[params["rid"]] != partner.partner_id):
            return self._not_found(partner, path)
        if ref["status"] == "cancelled" and "cancel_after_approval" not in self.faults:
            # DECISIONS R-005: a repeated cancel replays the first one.
            at = next(h["at"] for h in reversed(ref["status_history"]) if h["status"] == "cancelled")
            body = {"referral_id": ref["referral_id"], "status": "cancelled", "cancelled_at": at}
            return self._json(200, body, partner, path, {"Idempotent-Replayed": "true"})
        cancellable = ref["status"] in ("created", "enrolled", "pending_review")
        if "cancel_after_approval" in self.faults:
            cancellable = ref["status"] != "cancelled"
        if not cancellable:
            return self._err(
                409,
                "REFERRAL_NOT_CANCELLABLE",
                "Too late to cancel.",
                partner,
                path,
                {"referral_id": ref["referral_id"], "current_status": ref["status"]},
            )
        self._move(partner, ref, "cancelled")
        return self._json(
            200,
            {
                "referral_id": ref["referral_id"],
                "status": "cancelled",
                "cancelled_at": ref["status_history"][-1]["at"],
            },
            partner,
            path,
        )

    def _op_patients(self, partner: Partner, path: str, _p: Any, query: dict[str, str], _d: Any) -> Response:
        try:
            limit = int(query.get("limit", "50"))
        except ValueError:
            return self._err(400, "INVALID_BODY", "limit must be an integer.", partner, path)
        if not 1 <= limit <= 200:
            return self._err(400, "INVALID_BODY", "limit must be 1..200.", partner, path)
        if "cursor" in query:
            return self._err(400, "INVALID_CURSOR", "Invalid cursor.", partner, path)
        return self._json(
            200, {"patients": [], "pagination": {"has_more": False, "next_cursor": None}}, partner, path
        )

    def _op_patient(self, partner: Partner, path: str, params: dict[str, str], *_: Any) -> Response:
        if not PTN_RE.match(params["pid"]):
            return self._err(400, "INVALID_BODY", "patient_id is malformed.", partner, path)
        return self._err(404, "PATIENT_NOT_FOUND", "Patient not found.", partner, path)

    def _op_advance(
        self, partner: Partner, path: str, params: dict[str, str], _q: Any, data: Any
    ) -> Response:
        if not REF_RE.match(params["rid"]):
            return self._err(400, "INVALID_BODY", "referral_id is malformed.", partner, path)
        if (
            not isinstance(data, dict)
            or set(data) != {"target_status"}
            or data["target_status"] not in STATUSES
        ):
            return self._err(400, "INVALID_BODY", "target_status is required.", partner, path)
        ref = self.referrals.get(params["rid"])
        if ref is None or self.owner[params["rid"]] != partner.partner_id:
            return self._not_found(partner, path)
        route = _path(ref["status"], data["target_status"])
        if route is None:
            return self._err(409, "INVALID_TRANSITION", "Target not reachable.", partner, path)
        for st in route:
            self._move(partner, ref, st)
        return self._json(200, self._view(partner, ref), partner, path)

    def _op_clock(self, partner: Partner, path: str, _p: Any, _q: Any, data: Any) -> Response:
        secs = data.get("seconds") if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or set(data) != {"seconds"}
            or not isinstance(secs, int)
            or isinstance(secs, bool)
            or not 1 <= secs <= 2592000
        ):
            return self._err(400, "INVALID_BODY", "seconds is required (1..2592000).", partner, path)
        partner.clock_offset += secs
        return self._json(200, {"now": now_iso(partner.now())}, partner, path)

    def _op_event(self, partner: Partner, path: str, params: dict[str, str], *_: Any) -> Response:
        if not EVT_RE.match(params["eid"]):
            return self._err(400, "INVALID_BODY", "event_id is malformed.", partner, path)
        ev = next((e for e in self.events if e.event_id == params["eid"] and e.partner is partner), None)
        if ev is None:
            return self._err(404, "EVENT_NOT_FOUND", "Event not found.", partner, path)
        return self._json(
            200,
            {
                "event_id": ev.event_id,
                "event_type": ev.payload["event_type"],
                "delivery_status": ev.status,
                "attempts": [{"at": now_iso(t), "status_code": c} for t, c in ev.attempts],
            },
            partner,
            path,
        )


def _path(src: str, dst: str) -> list[str] | None:
    if src == dst:
        return None
    todo: list[tuple[str, list[str]]] = [(src, [])]
    seen = {src}
    while todo:
        cur, route = todo.pop(0)
        for nxt in TRANSITIONS.get(cur, []):
            if nxt == dst:
                return [*route, nxt]
            if nxt not in seen:
                seen.add(nxt)
                todo.append((nxt, [*route, nxt]))
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        if isinstance(app, FakePartnerApi):
            app.stop()
