"""Object-level authorization with two partners: no data of partner A ever reaches partner B."""

from __future__ import annotations

from ..http import Credentials
from ..spec import Operation
from . import CheckResult, Context, check
from ._util import describe, harvest_ids
from .referrals import create_referral, get_referral

# Ids that name shared catalog objects rather than a partner's own data.
SHARED_ID_KEYS = {
    "pharmacy_id",
    "preferred_pharmacy_id",
    "pharmacy_location_id",
    "category_id",
    "question_id",
    "invoice_id",
    "request_id",
    "correlation_id",
}


def owned_ids(ctx: Context, creds: Credentials) -> dict[str, set[str]]:
    """Every *_id value seen in this partner's successful responses (and objects it created)."""
    ids: dict[str, set[str]] = {}
    for ex in ctx.client.exchanges:
        if ex.credential == creds.label and ex.status is not None and 200 <= ex.status < 300:
            harvest_ids(ex.json, ids)
    for objs in ctx.created.values():
        for obj, c in objs:
            if c is creds:
                harvest_ids(obj, ids)
    for k in SHARED_ID_KEYS:
        ids.pop(k, None)
    return ids


def _ops_with_ids(
    ctx: Context, ids: dict[str, set[str]], *, writes: bool
) -> list[tuple[Operation, dict[str, str]]]:
    out = []
    ops = list(ctx.spec.operations)
    if ctx.sandbox:
        ops += [o for o in ctx.spec.sandbox_operations() if o.key not in {x.key for x in ops}]
    for op in ops:
        if not op.path_params or op.writes != writes:
            continue
        if op.sandbox_only and not ctx.sandbox:
            continue
        values = {}
        for p in op.path_params:
            got = sorted(ids.get(p["name"]) or [])
            if not got:
                break
            values[p["name"]] = got[0]
        else:
            out.append((op, values))
    return out


def _expected_status(op: Operation, creds: Credentials) -> int:
    """404 where partner B may call the operation (never reveal that A's object exists); 403 where its tier may not."""
    return 404 if op.allowed_for(creds.tier) else 403


def _prepare(ctx: Context, res: CheckResult) -> dict[str, set[str]]:
    if ctx.allow_writes and not any(c is ctx.primary for _, c in ctx.created.get("referrals", [])):
        create_referral(ctx, res, hint="bola")
    return owned_ids(ctx, ctx.primary)


@check(
    "bola.reads",
    "Partner B reading partner A's ids gets 404, never A's data",
    [
        "REF-ERR-002",
        "CLN-PHI-001",
        "CLN-PAT-002",
        "CLN-APT-001",
        "CLN-APT-002",
        "CLN-MSG-001",
        "CLN-TXN-001",
        "CLN-PRB-003",
        "PRS-APT-006",
        "PRS-RX-001",
    ],
    needs=("second",),
)
def reads(ctx: Context, res: CheckResult) -> None:
    assert ctx.second is not None
    ids = _prepare(ctx, res)
    targets = _ops_with_ids(ctx, ids, writes=False)
    if not targets:
        res.skip(
            "partner A has no objects whose ids the read operations take (run with --allow-writes to create some)"
        )
        return
    for op, values in targets:
        ex = ctx.client.op_request(op, creds=ctx.second, path_values=values)
        leaked = (
            [v for v in values.values() if v in ex.response_text] if ex.status and ex.status < 300 else []
        )
        expected = _expected_status(op, ctx.second)
        if ex.status == expected:
            res.ok()
        else:
            res.fail(
                f"partner B read {op.key} with partner A's {values}: expected {expected}, got {describe(ex)}"
                + (" and A's id is in the body" if leaked else ""),
                ex,
            )


@check(
    "bola.lists",
    "Partner B's lists never contain partner A's objects",
    ["REF-REF-008", "CLN-PAT-001", "PRS-APT-005"],
    needs=("second",),
)
def lists(ctx: Context, res: CheckResult) -> None:
    assert ctx.second is not None
    a_ids = _prepare(ctx, res)
    flat_a = {v for vals in a_ids.values() for v in vals}
    if not flat_a:
        res.skip("partner A has no objects (run with --allow-writes to create some)")
        return
    for op in ctx.spec.operations:
        if op.method != "GET" or op.path_params or op.sandbox_only:
            continue
        params = {"limit": 200} if op.param("limit") else None
        ex = ctx.client.op_request(op, creds=ctx.second, params=params)
        if ex.status != 200:
            continue
        b_ids: dict[str, set[str]] = {}
        harvest_ids(ex.json, b_ids)
        for k in SHARED_ID_KEYS:
            b_ids.pop(k, None)
        overlap = flat_a & {v for vals in b_ids.values() for v in vals}
        res.expect(not overlap, f"partner B's {op.key} returned partner A's ids {sorted(overlap)[:5]}", ex)


@check(
    "bola.actions",
    "Partner B acting on partner A's ids gets 404 and A's object is unchanged",
    ["REF-ERR-002", "CLN-PHI-001"],
    needs=("second",),
    writes=True,
)
def actions(ctx: Context, res: CheckResult) -> None:
    assert ctx.second is not None
    obj, _ = create_referral(ctx, res, hint="bolaact")
    if obj is None:
        return
    ids = owned_ids(ctx, ctx.primary)
    ids["referral_id"] = {obj["referral_id"]}
    targets = _ops_with_ids(ctx, ids, writes=True)
    if not targets:
        res.omit("no action operation takes an id")
        return
    before = get_referral(ctx, ctx.primary, obj["referral_id"])
    for op, values in targets:
        body = op.request_example() if op.method in ("POST", "PUT", "PATCH") else None
        if op.sandbox_only:
            from .state import advance_body

            body = advance_body(ctx, op, "enrolled") if op.path.endswith("/advance") else body
        ex = ctx.client.op_request(op, creds=ctx.second, path_values=values, json_body=body)
        res.expect(
            ex.status == _expected_status(op, ctx.second),
            f"partner B called {op.key} on partner A's {values}: expected {_expected_status(op, ctx.second)}, got {describe(ex)}",
            ex,
        )
    after = get_referral(ctx, ctx.primary, obj["referral_id"])
    b, a = (before.json or {}), (after.json or {})
    res.expect(
        isinstance(a, dict) and isinstance(b, dict) and a.get("status") == b.get("status"),
        "partner A's referral changed after partner B's calls",
        before,
        after,
    )
