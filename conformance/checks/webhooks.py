"""Webhooks received by the suite's receiver: delivery, signature, payload, event ids, retries, dead letters."""

from __future__ import annotations

import re
from typing import Any

from ..receiver import Delivery, verify
from ..spec import Operation
from . import CheckResult, Context, check
from ._util import describe
from .referrals import create_referral, get_referral
from .state import advance, advance_op, cancel

EVENT_ID = re.compile(r"^evt_[0-9a-f]{24}$")
RETRY_OFFSETS = (30, 300, 1800, 7200, 43200)  # seconds after the first attempt (attempts 2..6)


def _deliveries(ctx: Context) -> list[Delivery]:
    return ctx.receiver.deliveries() if ctx.receiver is not None else []


def _for_object(d: Delivery, object_id: str) -> bool:
    p = d.json
    return isinstance(p, dict) and object_id in {v for k, v in p.items() if k.endswith("_id")}


@check(
    "webhooks.delivery",
    "A status change is delivered to the partner's webhook URL",
    ["REF-WH-001", "REF-ENV-004"],
    writes=True,
    needs=("webhooks",),
)
def delivery(ctx: Context, res: CheckResult) -> None:
    assert ctx.receiver is not None
    obj, _ = create_referral(ctx, res, hint="wh")
    if obj is None:
        return
    rid = obj["referral_id"]
    expected = ["referral.cancelled"]
    if ctx.sandbox and advance_op(ctx) is not None:
        adv = advance(ctx, ctx.primary, rid, "pending_review")
        if adv is not None and adv.status == 200:
            expected = ["referral.enrolled", "referral.pending_review", "referral.cancelled"]
    ex = cancel(ctx, ctx.primary, rid)
    if ex.status != 200:
        res.skip(f"could not cancel the referral to cause an event: {describe(ex)}")
        return
    got = ctx.receiver.wait_for(
        lambda d: _for_object(d, rid) and (d.json or {}).get("event_type") == "referral.cancelled",
        timeout=ctx.webhook_wait_s,
    )
    if not got:
        res.fail(
            f"no referral.cancelled webhook for {rid} within {ctx.webhook_wait_s:.0f}s of cancelling it "
            f"(is the partner's webhook URL {ctx.receiver.public_url}?)",
            ex,
        )
        return
    types = []
    for d in _deliveries(ctx):
        if _for_object(d, rid):
            t = (d.json or {}).get("event_type")
            if t not in types:
                types.append(t)
    # The status events must arrive in the order of the transitions; other documented events of the referral
    # (payment_due, ...) may come in between.
    status_events = [t for t in types if t in expected]
    res.expect(
        status_events == expected,
        f"events for {rid} arrived as {types}, expected {expected} in this order",
        *(d.as_exchange() for d in got[:1]),
    )
    ctx.state.setdefault("webhook_objects", []).append(rid)


@check(
    "webhooks.signature",
    "Every delivery carries a valid X-Stealth-Signature over the raw body",
    ["REF-SEC-001", "REF-WH-006", "CLN-WH-001", "PRS-WH-001", "GLO-WH-001", "GLO-WH-002"],
    phase="observe",
    needs=("webhooks",),
)
def signature(ctx: Context, res: CheckResult) -> None:
    assert ctx.receiver is not None
    ds = _deliveries(ctx)
    if not ds:
        res.skip("no webhook was delivered during the run")
        return
    for d in ds:
        header = d.header("X-Stealth-Signature")
        if verify(ctx.receiver.secret, d.body, header):
            res.ok()
        else:
            res.fail(
                f"delivery {(d.json or {}).get('event_id') if isinstance(d.json, dict) else '?'}: "
                f"X-Stealth-Signature {'missing' if not header else 'does not match HMAC-SHA256 of the raw body'}",
                d.as_exchange(),
            )


@check(
    "webhooks.payload_schema",
    "Every payload is valid against the spec's webhooks entry for its event type",
    [
        "REF-WH-003",
        "REF-WH-004",
        "REF-WH-005",
        "GLO-WH-007",
        "CLN-WH-004",
        "PRS-WH-002",
        "PRS-WH-003",
        "GLO-IDEM-002",
    ],
    phase="observe",
    needs=("webhooks",),
)
def payload_schema(ctx: Context, res: CheckResult) -> None:
    ds = _deliveries(ctx)
    if not ds:
        res.skip("no webhook was delivered during the run")
        return
    for d in ds:
        p = d.json
        if not isinstance(p, dict):
            res.fail("a delivery body is not a JSON object", d.as_exchange())
            continue
        et = str(p.get("event_type"))
        schema = ctx.spec.webhook_schema(et)
        if schema is None:
            res.fail(f"event type {et!r} is not in the spec's webhooks", d.as_exchange())
            continue
        errors = ctx.spec.validation_errors(schema, p)
        if errors:
            res.fail(f"{et} {p.get('event_id')}: payload invalid: {'; '.join(errors)}", d.as_exchange())
        else:
            res.ok()
        ctype = (d.header("Content-Type") or "").split(";")[0]
        res.expect(
            ctype == "application/json", f"{et} delivered with Content-Type {ctype!r}", d.as_exchange()
        )


@check(
    "webhooks.known_event_types",
    "Only documented event types, and only those of the partner's tier, are delivered",
    ["REF-WH-004", "GLO-WH-006", "CLN-WH-004", "PRS-WH-002"],
    phase="observe",
    needs=("webhooks",),
)
def known_event_types(ctx: Context, res: CheckResult) -> None:
    ds = _deliveries(ctx)
    if not ds:
        res.skip("no webhook was delivered during the run")
        return
    for d in ds:
        et = str((d.json or {}).get("event_type")) if isinstance(d.json, dict) else "?"
        if et not in ctx.spec.webhooks:
            res.fail(f"undocumented event type {et!r}", d.as_exchange())
            continue
        tiers = ctx.spec.webhook_tiers(et)
        res.expect(
            "referral" in tiers or ctx.tier in tiers,
            f"{et} (for {sorted(tiers)}) was delivered to a {ctx.tier}-tier partner",
            d.as_exchange(),
        )


@check(
    "webhooks.event_id_stable",
    "event_id is evt_ + 24 hex, unique per event and identical across retries",
    ["REF-WH-002", "REF-WH-011", "CLN-WH-003", "GLO-WH-005"],
    phase="observe",
    needs=("webhooks",),
)
def event_id_stable(ctx: Context, res: CheckResult) -> None:
    ds = [d for d in _deliveries(ctx) if isinstance(d.json, dict)]
    if not ds:
        res.skip("no webhook was delivered during the run")
        return
    by_id: dict[str, list[Delivery]] = {}
    for d in ds:
        eid = str(d.json.get("event_id"))
        if not EVENT_ID.match(eid):
            res.fail(f"event_id {eid!r} is not evt_ + 24 lowercase hex", d.as_exchange())
        by_id.setdefault(eid, []).append(d)
    identity: dict[tuple[Any, ...], str] = {}
    for eid, group in by_id.items():
        bodies = {d.body for d in group}
        if len(bodies) > 1:
            res.fail(
                f"{eid} was delivered {len(group)} times with different bodies (retries must resend the same bytes)",
                group[0].as_exchange(),
                group[1].as_exchange(),
            )
        else:
            res.ok()
        p = group[0].json
        key = (
            p.get("event_type"),
            tuple(
                sorted(
                    (k, v)
                    for k, v in p.items()
                    if k.endswith("_id") and k != "event_id" and isinstance(v, str)
                )
            ),
            (p.get("data") or {}).get("occurred_at") if isinstance(p.get("data"), dict) else None,
        )
        if key in identity and identity[key] != eid:
            res.fail(
                f"the same event ({key[0]} of {dict(key[1])}) arrived under two event ids {identity[key]} and {eid}",
                group[0].as_exchange(),
            )
        identity[key] = eid


@check(
    "webhooks.metadata_echo",
    "Webhooks echo the referral's partner_reference and metadata",
    ["GLO-IDEM-002", "REF-WH-011"],
    phase="observe",
    needs=("webhooks",),
)
def metadata_echo(ctx: Context, res: CheckResult) -> None:
    created = {o["referral_id"]: o for o, _c in ctx.created.get("referrals", []) if isinstance(o, dict)}
    ds = [d for d in _deliveries(ctx) if isinstance(d.json, dict) and d.json.get("referral_id") in created]
    if not ds:
        res.skip("no webhook about a referral created by this run was delivered")
        return
    full: dict[str, dict[str, Any]] = {}
    for d in ds:
        p, obj = d.json, created[d.json["referral_id"]]
        if "metadata" not in obj:
            # The create response carries no metadata (DECISIONS R-001): read the referral itself.
            rid = p["referral_id"]
            if rid not in full:
                got = get_referral(ctx, ctx.primary, rid)
                full[rid] = got.json if isinstance(got.json, dict) else {}
            obj = {**obj, "metadata": full[rid].get("metadata")}
        res.expect(
            p.get("partner_reference") == obj.get("partner_reference"),
            f"{p.get('event_type')}: partner_reference {p.get('partner_reference')!r}, "
            f"referral has {obj.get('partner_reference')!r}",
            d.as_exchange(),
        )
        res.expect(
            p.get("metadata") == obj.get("metadata"),
            f"{p.get('event_type')}: metadata {p.get('metadata')!r} does not mirror the referral's",
            d.as_exchange(),
        )


def _events_get(ctx: Context) -> Operation | None:
    return next(
        (o for o in ctx.spec.operations if o.method == "GET" and o.path == "/partner/events/{event_id}"), None
    )


@check(
    "events.list_matches_deliveries",
    "Every delivered event is retrievable from GET /partner/events/{event_id}",
    ["REF-WH-009"],
    phase="observe",
    needs=("webhooks",),
)
def events_match(ctx: Context, res: CheckResult) -> None:
    op = _events_get(ctx)
    if op is None:
        res.omit("no GET /partner/events/{event_id}")
        return
    ds = [d for d in _deliveries(ctx) if isinstance(d.json, dict)]
    if not ds:
        res.skip("no webhook was delivered during the run")
        return
    seen = set()
    for d in ds[:20]:
        eid = d.json.get("event_id")
        if eid in seen or not isinstance(eid, str):
            continue
        seen.add(eid)
        ex = ctx.client.op_request(op, creds=ctx.primary, path_values={"event_id": eid})
        body = ex.json if isinstance(ex.json, dict) else {}
        res.expect(
            ex.status == 200 and body.get("event_type", d.json.get("event_type")) == d.json.get("event_type"),
            f"delivered event {eid} is not retrievable as the same event: {describe(ex)}",
            ex,
        )


# ---- retries and dead letters on the partner's clock (sandbox) -----------------------------------------------------
def _clock_body(ctx: Context, op: Operation, seconds: int) -> dict[str, Any]:
    props = ctx.spec.object_properties(op.request_schema() or {})
    for name, sub in props.items():
        sub = ctx.spec.deref(sub)
        t = sub.get("type") if isinstance(sub, dict) else None
        if t in ("integer", "number") or (isinstance(t, list) and ("integer" in t or "number" in t)):
            return {name: seconds}
    for name in props:
        if "duration" in name or "by" in name:
            return {name: f"PT{seconds}S"}
    return {"seconds": seconds}


def _retry_flow(ctx: Context, res: CheckResult) -> dict[str, Any] | None:
    if "retry_flow" in ctx.state:
        return ctx.state["retry_flow"]
    assert ctx.receiver is not None
    clock = ctx.spec.sandbox_op("/clock/advance")
    if clock is None or op_cancel_missing(ctx):
        res.skip("the spec has no sandbox clock advance operation (or no cancel) to drive retries with")
        return None
    obj, _ = create_referral(ctx, res, hint="retry")
    if obj is None:
        return None
    rid = obj["referral_id"]
    previous = ctx.receiver.respond
    ctx.receiver.respond = lambda d: 503 if _for_object(d, rid) else previous(d)
    flow: dict[str, Any] = {"referral_id": rid, "early": [], "attempts": [], "exchanges": []}
    try:
        ex = cancel(ctx, ctx.primary, rid)
        flow["exchanges"].append(ex)
        if ex.status != 200:
            res.skip(f"could not cancel the referral to cause an event: {describe(ex)}")
            return None
        got = ctx.receiver.wait_for(lambda d: _for_object(d, rid), timeout=ctx.webhook_wait_s)
        if not got:
            res.fail(f"no first delivery attempt for {rid} within {ctx.webhook_wait_s:.0f}s", ex)
            return None
        elapsed = 0
        for n, offset in enumerate(RETRY_OFFSETS, start=2):
            early = max(1, int(offset * 0.9)) if offset > 30 else 25
            adv = ctx.client.op_request(
                clock, creds=ctx.primary, json_body=_clock_body(ctx, clock, early - elapsed)
            )
            flow["exchanges"].append(adv)
            if adv.status is None or adv.status >= 300:
                res.skip(f"the sandbox clock did not advance: {describe(adv)}")
                return None
            elapsed = early
            premature = ctx.receiver.wait_for(
                lambda d: _for_object(d, rid), timeout=ctx.webhook_quiet_s, count=n
            )
            if len(premature) >= n:
                flow["early"].append((n, early, premature[n - 1]))
            adv = ctx.client.op_request(
                clock, creds=ctx.primary, json_body=_clock_body(ctx, clock, offset - elapsed + 1)
            )
            flow["exchanges"].append(adv)
            elapsed = offset + 1
            arrived = ctx.receiver.wait_for(
                lambda d: _for_object(d, rid), timeout=min(ctx.webhook_wait_s, 10), count=n
            )
            flow["attempts"].append(len(arrived) >= n)
        # Long after the schedule: no seventh attempt.
        adv = ctx.client.op_request(clock, creds=ctx.primary, json_body=_clock_body(ctx, clock, 86400))
        flow["exchanges"].append(adv)
        flow["total"] = len(
            ctx.receiver.wait_for(lambda d: _for_object(d, rid), timeout=ctx.webhook_quiet_s, count=7)
        )
        flow["deliveries"] = [d for d in _deliveries(ctx) if _for_object(d, rid)]
    finally:
        ctx.receiver.respond = previous
    ctx.state["retry_flow"] = flow
    return flow


def op_cancel_missing(ctx: Context) -> bool:
    return not any(o.method == "POST" and o.path.endswith("/cancel") for o in ctx.spec.operations)


@check(
    "webhooks.retry_schedule",
    "Failed deliveries are retried at 30 s, 5 min, 30 min, 2 h and 12 h, never earlier",
    ["REF-WH-007", "CLN-WH-002", "GLO-WH-004", "PRS-WH-004"],
    writes=True,
    sandbox_only=True,
    phase="late",
    needs=("webhooks",),
)
def retry_schedule(ctx: Context, res: CheckResult) -> None:
    flow = _retry_flow(ctx, res)
    if flow is None:
        return
    for n, at, d in flow["early"]:
        res.fail(
            f"attempt {n} arrived {at}s after the first, before its {RETRY_OFFSETS[n - 2]}s offset",
            d.as_exchange(),
        )
    for i, ok in enumerate(flow["attempts"]):
        res.expect(
            ok,
            f"attempt {i + 2} did not arrive after {RETRY_OFFSETS[i]}s on the partner clock",
            *flow["exchanges"][-1:],
        )
    ids = {(d.json or {}).get("event_id") for d in flow.get("deliveries", []) if isinstance(d.json, dict)}
    res.expect(
        len(ids) == 1,
        f"the retries of one event carried {len(ids)} different event ids: {sorted(map(str, ids))}",
    )


@check(
    "webhooks.dead_letter",
    "After 6 failed attempts the event is dead-lettered: no more attempts, listed as failed",
    ["REF-WH-008", "REF-WH-009", "CLN-WH-002", "GLO-WH-004", "PRS-WH-004"],
    writes=True,
    sandbox_only=True,
    phase="late",
    needs=("webhooks",),
)
def dead_letter(ctx: Context, res: CheckResult) -> None:
    flow = _retry_flow(ctx, res)
    if flow is None:
        return
    total = flow.get("total", 0)
    res.expect(
        total == 6,
        f"{total} delivery attempts in all for one failing event, expected exactly 6",
        *flow["exchanges"][-1:],
    )
    op = _events_get(ctx)
    ds = flow.get("deliveries") or []
    if op is None or not ds:
        return
    eid = (ds[0].json or {}).get("event_id")
    ex = ctx.client.op_request(op, creds=ctx.primary, path_values={"event_id": str(eid)})
    text = ex.response_text.lower()
    res.expect(
        ex.status == 200 and ("dead" in text),
        f"event {eid} is not reported dead-lettered: {describe(ex)}",
        ex,
    )
