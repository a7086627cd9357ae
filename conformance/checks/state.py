"""State conflicts: cancel before and after approval, terminal states stay terminal; sandbox-only operations."""

from __future__ import annotations

from typing import Any

from ..http import Credentials, Exchange
from ..spec import Operation
from . import CheckResult, Context, check
from ._util import describe, error_code, unknown_path_values
from .referrals import CANCEL, create_referral, get_referral, op_at


def advance_op(ctx: Context, kind: str = "referrals") -> Operation | None:
    return ctx.spec.sandbox_op(f"/{kind}/{{{kind[:-1]}_id}}/advance")


def advance_body(ctx: Context, op: Operation, target: str) -> dict[str, Any]:
    schema = ctx.spec.deref(op.request_schema() or {})
    props = ctx.spec.object_properties(schema)
    body: dict[str, Any] = {}
    example = op.request_example()
    if isinstance(example, dict):
        body.update(example)
    chosen = None
    for name, sub in props.items():
        sub = ctx.spec.deref(sub)
        enum = sub.get("enum") if isinstance(sub, dict) else None
        if enum and target in enum:
            chosen = name
            break
    if chosen is None:
        if isinstance(example, dict) and any(
            isinstance(ctx.spec.deref(sub), dict) and ctx.spec.deref(sub).get("enum")
            for sub in props.values()
        ):
            return (
                body  # not a target of this control (e.g. a referral status for an appointment): its example
            )
        chosen = next((n for n in ("target_status", "to", "status", "target") if n in props), "target_status")
    body[chosen] = target
    return body


def advance(ctx: Context, creds: Credentials, referral_id: str, target: str) -> Exchange | None:
    op = advance_op(ctx)
    if op is None:
        return None
    return ctx.client.op_request(
        op, creds=creds, path_values={"referral_id": referral_id}, json_body=advance_body(ctx, op, target)
    )


def cancel(ctx: Context, creds: Credentials, referral_id: str) -> Exchange:
    op = op_at(ctx, *CANCEL)
    assert op is not None
    body = op.request_example() or {"reason": "conformance suite"}
    return ctx.client.op_request(op, creds=creds, path_values={"referral_id": referral_id}, json_body=body)


def _cancel_codes(ctx: Context) -> list[str]:
    op = op_at(ctx, *CANCEL)
    return (op.error_codes(409) if op else []) or ["REFERRAL_NOT_CANCELLABLE"]


@check(
    "state.cancel_before_approval",
    "A referral not yet approved can be cancelled; it then reads as cancelled",
    ["REF-REF-014"],
    writes=True,
)
def cancel_before_approval(ctx: Context, res: CheckResult) -> None:
    if op_at(ctx, *CANCEL) is None:
        res.omit("no cancel operation")
        return
    obj, _ = create_referral(ctx, res, hint="cxl")
    if obj is None:
        return
    ex = cancel(ctx, ctx.primary, obj["referral_id"])
    body = ex.json if isinstance(ex.json, dict) else {}
    res.expect(
        ex.status == 200 and body.get("status") == "cancelled",
        f"cancelling a new referral: expected 200 status cancelled, got {describe(ex)}",
        ex,
    )
    res.expect(isinstance(body.get("cancelled_at"), str), "the cancel response has no cancelled_at", ex)
    got = get_referral(ctx, ctx.primary, obj["referral_id"])
    res.expect(
        (got.json or {}).get("status") == "cancelled" if isinstance(got.json, dict) else False,
        f"after cancelling, the referral reads {describe(got)} status "
        f"{(got.json or {}).get('status') if isinstance(got.json, dict) else '?'}",
        got,
    )
    ctx.state["cancelled_referral"] = obj["referral_id"]


@check(
    "state.cancel_terminal",
    "Cancelling a cancelled referral replays the first cancellation (DECISIONS R-005) and it stays cancelled",
    ["REF-REF-015", "REF-LC-002"],
    writes=True,
)
def cancel_terminal(ctx: Context, res: CheckResult) -> None:
    if op_at(ctx, *CANCEL) is None:
        res.omit("no cancel operation")
        return
    rid = ctx.state.get("cancelled_referral")
    first = None
    if rid is None:
        obj, _ = create_referral(ctx, res, hint="cxl2")
        if obj is None:
            return
        rid = obj["referral_id"]
        first = cancel(ctx, ctx.primary, rid)
        if first.status != 200:
            res.skip(f"could not cancel a new referral: {describe(first)}")
            return
    again = cancel(ctx, ctx.primary, rid)
    # a repeated cancel is a safe retry: 200, Idempotent-Replayed: true, the original cancelled_at.
    res.expect(
        again.status == 200 and (again.header("Idempotent-Replayed") or "").lower() == "true",
        f"cancelling a cancelled referral: expected a 200 replay with Idempotent-Replayed: true, got {describe(again)}",
        again,
    )
    if first is not None and isinstance(first.json, dict) and isinstance(again.json, dict):
        res.expect(
            again.json.get("cancelled_at") == first.json.get("cancelled_at"),
            f"the replayed cancel moved cancelled_at from {first.json.get('cancelled_at')!r} "
            f"to {again.json.get('cancelled_at')!r}",
            again,
        )
    if ctx.sandbox and advance_op(ctx) is not None:
        ex = advance(ctx, ctx.primary, rid, "approved")
        assert ex is not None
        res.expect(
            ex.status is not None and ex.status >= 400,
            f"moving a cancelled referral to approved with the sandbox control was accepted: {describe(ex)}",
            ex,
        )
    got = get_referral(ctx, ctx.primary, rid)
    status = (got.json or {}).get("status") if isinstance(got.json, dict) else None
    res.expect(status == "cancelled", f"the cancelled referral now reads status {status!r}", got)


@check(
    "state.cancel_after_approval",
    "Cancelling an approved referral gets 409 REFERRAL_NOT_CANCELLABLE",
    ["REF-REF-015", "REF-REF-014"],
    writes=True,
    sandbox_only=True,
)
def cancel_after_approval(ctx: Context, res: CheckResult) -> None:
    if op_at(ctx, *CANCEL) is None:
        res.omit("no cancel operation")
        return
    if advance_op(ctx) is None:
        res.skip("the spec has no sandbox advance operation to approve a referral with")
        return
    obj, _ = create_referral(ctx, res, hint="appr")
    if obj is None:
        return
    adv = advance(ctx, ctx.primary, obj["referral_id"], "approved")
    assert adv is not None
    if adv.status != 200:
        res.skip(f"could not approve the referral with the sandbox control: {describe(adv)}")
        return
    ex = cancel(ctx, ctx.primary, obj["referral_id"])
    codes = _cancel_codes(ctx)
    res.expect(
        ex.status == 409 and error_code(ex) in codes,
        f"cancelling an approved referral: expected 409 {'/'.join(codes)}, got {describe(ex)}",
        adv,
        ex,
    )
    got = get_referral(ctx, ctx.primary, obj["referral_id"])
    status = (got.json or {}).get("status") if isinstance(got.json, dict) else None
    res.expect(
        status not in (None, "cancelled"), f"after the refused cancel the referral reads {status!r}", got
    )
    ctx.state["approved_referral"] = obj["referral_id"]


@check(
    "sandbox.production_refuses",
    "Production refuses every sandbox-only operation with 403 SANDBOX_ONLY_OPERATION",
    ["GLO-ENV-002"],
)
def production_refuses(ctx: Context, res: CheckResult) -> None:
    ops = ctx.spec.sandbox_operations()
    if not ops:
        res.omit("the spec has no sandbox-only operations")
        return
    if ctx.sandbox:
        res.omit("the target is a sandbox (sandbox-only operations apply)")
        return
    for op in ops:
        if op.writes and not op.path_params and not ctx.allow_writes:
            # Without an id to make it harmless, a production server that wrongly honoured it would act on it.
            res.omit(f"{op.key}: not probed in a read-only run")
            continue
        body = op.request_example() if op.method in ("POST", "PUT", "PATCH") else None
        ex = ctx.client.op_request(op, creds=ctx.primary, path_values=unknown_path_values(op), json_body=body)
        res.expect(
            ex.status == 403 and error_code(ex) == "SANDBOX_ONLY_OPERATION",
            f"{op.key} on production: expected 403 SANDBOX_ONLY_OPERATION, got {describe(ex)}",
            ex,
        )


@check(
    "sandbox.review_fee_simulated",
    "In the sandbox a submitted appointment's review_fee.status is simulated",
    ["PRS-BILL-002"],
    writes=True,
    sandbox_only=True,
    tiers=["prescriber"],
)
def review_fee_simulated(ctx: Context, res: CheckResult) -> None:
    op = op_at(ctx, "POST", "/partner/appointments")
    if op is None:
        res.omit("no POST /partner/appointments")
        return
    body = op.request_example()
    if not isinstance(body, dict):
        res.skip("no request example for POST /partner/appointments")
        return
    body["partner_reference"] = ctx.fresh_reference("fee")
    ex = ctx.client.op_request(op, creds=ctx.primary, json_body=body)
    if ex.status not in (200, 201):
        res.skip(f"could not submit an appointment: {describe(ex)}")
        return
    fee = (ex.json or {}).get("review_fee") if isinstance(ex.json, dict) else None
    res.expect(
        isinstance(fee, dict) and fee.get("status") == "simulated",
        f"sandbox review_fee is {fee!r}, expected status simulated",
        ex,
    )
    ctx.created.setdefault("appointments", []).append((ex.json, ctx.primary))


def _set_pointer(doc: Any, pointer: str, value: Any) -> bool:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]
    cur = doc
    for part in parts[:-1]:
        if isinstance(cur, list):
            if not part.isdigit() or int(part) >= len(cur):
                return False
            cur = cur[int(part)]
        elif isinstance(cur, dict):
            cur = cur.setdefault(part, {})
        else:
            return False
    last = parts[-1]
    if isinstance(cur, dict):
        cur[last] = value
        return True
    if isinstance(cur, list) and last.isdigit() and int(last) < len(cur):
        cur[int(last)] = value
        return True
    return False


@check(
    "sandbox.scenarios_refused",
    "Production refuses the sandbox's documented test values with 422 SANDBOX_SCENARIO_NOT_ALLOWED",
    ["GLO-ENV-002"],
    writes=True,
)
def scenarios_refused(ctx: Context, res: CheckResult) -> None:
    if ctx.sandbox:
        res.omit("the target is a sandbox (the test values apply there)")
        return
    from .referrals import CREATE, referral_body

    ops = [op for op in ctx.spec.operations if op.raw.get("x-sandbox-scenarios") and not op.path_params]
    if not ops:
        res.omit("no operation documents x-sandbox-scenarios")
        return
    for op in ops:
        scenario = op.raw["x-sandbox-scenarios"][-1]
        body = (
            referral_body(ctx, ctx.primary, "scn") if (op.method, op.path) == CREATE else op.request_example()
        )
        if not isinstance(body, dict) or not _set_pointer(body, scenario["field"], scenario["value"]):
            res.skip(f"{op.key}: could not build a request with the test value {scenario['value']!r}")
            continue
        if "partner_reference" in body and (op.method, op.path) != CREATE:
            body["partner_reference"] = ctx.fresh_reference("scn")
        ex = ctx.client.op_request(op, creds=ctx.primary, json_body=body)
        res.expect(
            ex.status == 422 and error_code(ex) == "SANDBOX_SCENARIO_NOT_ALLOWED",
            f"{op.key} with the sandbox test value {scenario['field']}={scenario['value']!r} on production: "
            f"expected 422 SANDBOX_SCENARIO_NOT_ALLOWED, got {describe(ex)}",
            ex,
        )
