"""Configuration: the deployment is reachable, the credentials work, and each key has the tier declared for it."""

from __future__ import annotations

from ..http import Credentials
from . import CheckResult, Context, check
from ._util import describe, error_code


def probe_operation(ctx: Context):
    """A read-only referral-tier operation without path parameters to probe the deployment with."""
    ops = [
        op
        for op in ctx.spec.operations
        if op.method == "GET" and not op.path_params and "referral" in op.tiers and not op.sandbox_only
    ]
    ops.sort(key=lambda o: (o.path != "/partner/products", len(o.query_params), o.path))
    return ops[0] if ops else None


def tier_probe(ctx: Context, tier: str):
    for op in ctx.spec.operations:
        if op.method == "GET" and not op.path_params and op.tiers == {tier} and not op.sandbox_only:
            return op
    return None


def _verify(ctx: Context, res: CheckResult, creds: Credentials) -> bool:
    op = probe_operation(ctx)
    if op is None:
        res.skip("the spec has no read-only referral-tier operation to probe with")
        return False
    ex = ctx.client.op_request(op, creds=creds)
    if ex.status is None:
        res.fail(f"{ctx.client.base_url} is not reachable: {ex.error}", ex)
        return False
    if ex.status == 401:
        res.fail(
            f"the {creds.label} credentials (partner {creds.partner_id}) were rejected: {error_code(ex) or 401}",
            ex,
        )
        return False
    if ex.status >= 500 or ex.status == 404:
        res.fail(f"the probe {describe(ex)} failed; is {ctx.client.base_url} a Partner API deployment?", ex)
        return False
    res.ok(f"{creds.label} credentials accepted by {describe(ex)}", ex)
    if creds is ctx.primary and ctx.client.limiter.rps is None:
        limit = ex.header("X-RateLimit-Limit")
        try:
            per_min = int(limit) if limit else 0
        except ValueError:
            per_min = 0
        rps = max(0.5, 0.8 * per_min / 60) if per_min else 5.0
        ctx.client.set_rps(rps)
        ctx.notes.append(
            f"request rate capped at {rps:.2f}/s ({'80% of X-RateLimit-Limit ' + str(per_min) + '/min' if per_min else 'no X-RateLimit-Limit seen; default'})"
        )
    # Tier as declared.
    for tier in ("clinical", "prescriber"):
        probe = tier_probe(ctx, tier)
        if probe is None:
            continue
        ex2 = ctx.client.op_request(probe, creds=creds, access_tier=(tier == "clinical"))
        has = ex2.status is not None and 200 <= ex2.status < 300
        declared = creds.tier == tier
        if declared and not has:
            res.fail(
                f"the {creds.label} key is declared {tier}-tier but {describe(ex2)}: check --tier and the key",
                ex2,
            )
            return False
        if not declared and has and creds.tier == "referral":
            res.fail(
                f"the {creds.label} key is declared {creds.tier}-tier but has {tier} access: {describe(ex2)}",
                ex2,
            )
            return False
        res.ok()
    return True


@check(
    "config.preflight",
    "Deployment reachable, credentials valid, tier as declared",
    ["REF-AUTH-002", "GLO-ENV-001"],
    phase="preflight",
)
def preflight(ctx: Context, res: CheckResult) -> None:
    if not _verify(ctx, res, ctx.primary):
        return
    key = ctx.primary.api_key
    if not (key.startswith("sk_test_") or key.startswith("sk_live_")):
        ctx.notes.append("the API key does not start with sk_test_ / sk_live_ (glossary ID prefixes)")
    if ctx.second is not None:
        if ctx.second.partner_id == ctx.primary.partner_id:
            res.fail("the second partner must be a different partner (same X-Partner-ID given twice)")
            return
        _verify(ctx, res, ctx.second)
    if ctx.referral_key is not None:
        if ctx.referral_key.partner_id in {c.partner_id for c in (ctx.primary, ctx.second) if c is not None}:
            res.fail("the referral-tier probe partner must differ from the primary and second partners")
            return
        _verify(ctx, res, ctx.referral_key)
