"""Authentication negatives and tier enforcement."""

from __future__ import annotations

import secrets

from ..http import Credentials
from . import CheckResult, Context, check
from ._util import describe, error_code, unknown_path_values


def _probe_ops(ctx: Context, *, writes_ok: bool):
    """Operations to probe without valid credentials: reads always; writes only when the run may write."""
    for op in ctx.spec.operations:
        if op.sandbox_only and not ctx.sandbox:
            continue
        if op.writes and not writes_ok:
            continue
        yield op


def _expect_401(ctx: Context, res: CheckResult, op, headers: dict[str, str], code: str, what: str) -> None:
    body = op.request_example() if op.method in ("POST", "PUT", "PATCH") else None
    ex = ctx.client.op_request(
        op, creds=None, path_values=unknown_path_values(op), json_body=body, headers=headers
    )
    got = error_code(ex)
    if ex.status == 401 and got == code:
        res.ok()
    else:
        res.fail(f"{what}: expected 401 {code}, got {describe(ex)}", ex)


@check(
    "auth.missing_credentials",
    "Missing X-Partner-ID or X-Api-Key gets 401 MISSING_CREDENTIALS on every operation",
    ["REF-AUTH-001", "GLO-AUTH-001", "GLO-ERR-001", "PRS-AUTH-001", "CLN-AUTH-002"],
)
def missing_credentials(ctx: Context, res: CheckResult) -> None:
    p = ctx.primary
    for op in _probe_ops(ctx, writes_ok=ctx.allow_writes):
        _expect_401(ctx, res, op, {}, "MISSING_CREDENTIALS", f"{op.key} without credentials")
    op = next((o for o in _probe_ops(ctx, writes_ok=False) if not o.path_params), None)
    if op is not None:
        _expect_401(
            ctx, res, op, {"X-Partner-ID": p.partner_id}, "MISSING_CREDENTIALS", f"{op.key} without X-Api-Key"
        )
        _expect_401(
            ctx, res, op, {"X-Api-Key": p.api_key}, "MISSING_CREDENTIALS", f"{op.key} without X-Partner-ID"
        )
        _expect_401(
            ctx,
            res,
            op,
            {"X-Partner-ID": p.partner_id, "X-Api-Key": ""},
            "MISSING_CREDENTIALS",
            f"{op.key} with an empty X-Api-Key",
        )


@check(
    "auth.invalid_credentials",
    "A wrong key or an unknown partner gets 401 INVALID_CREDENTIALS",
    ["REF-AUTH-002", "GLO-ERR-002", "PRS-AUTH-001", "CLN-AUTH-002"],
)
def invalid_credentials(ctx: Context, res: CheckResult) -> None:
    p = ctx.primary
    prefix = "sk_live_" if p.api_key.startswith("sk_live_") else "sk_test_"
    wrong_key = prefix + secrets.token_hex(32)
    cases = [
        ({"X-Partner-ID": p.partner_id, "X-Api-Key": wrong_key}, "wrong key for a known partner"),
        ({"X-Partner-ID": "ptr_unknown_" + secrets.token_hex(4), "X-Api-Key": p.api_key}, "unknown partner"),
        (
            {
                "X-Partner-ID": p.partner_id,
                "X-Api-Key": p.api_key[:-1] + ("0" if p.api_key[-1:] != "0" else "1"),
            },
            "key differing in its last character",
        ),
    ]
    if ctx.second is not None:
        cases.append(
            ({"X-Partner-ID": p.partner_id, "X-Api-Key": ctx.second.api_key}, "another partner's key")
        )
    for op in _probe_ops(ctx, writes_ok=False):
        headers, what = cases[0]
        _expect_401(ctx, res, op, headers, "INVALID_CREDENTIALS", f"{op.key} with {what}")
    op = next((o for o in _probe_ops(ctx, writes_ok=False) if not o.path_params), None)
    if op is not None:
        for headers, what in cases[1:]:
            _expect_401(ctx, res, op, headers, "INVALID_CREDENTIALS", f"{op.key} with {what}")


@check(
    "auth.environment_key",
    "A key of the other environment (sk_live_ on the sandbox, sk_test_ on production) is refused",
    ["GLO-ENV-001", "CLN-ENV-001", "CLN-BP-011"],
)
def environment_key(ctx: Context, res: CheckResult) -> None:
    p = ctx.primary
    own, other = ("sk_test_", "sk_live_") if ctx.sandbox else ("sk_live_", "sk_test_")
    body = p.api_key[len(own) :] if p.api_key.startswith(own) else p.api_key.split("_")[-1]
    op = next((o for o in _probe_ops(ctx, writes_ok=False) if not o.path_params), None)
    if op is None:
        res.skip("no read-only operation without parameters to probe")
        return
    # The same secret with the other environment's prefix must not authenticate.
    _expect_401(
        ctx,
        res,
        op,
        {"X-Partner-ID": p.partner_id, "X-Api-Key": other + body},
        "INVALID_CREDENTIALS",
        f"{op.key} with the {other} form of the key",
    )


def _forbidden_code(op) -> set[str]:
    codes = set(op.error_codes(403))
    wanted = set()
    if "clinical" in op.tiers:
        wanted.add("CLINICAL_ACCESS_REQUIRED")
    if "prescriber" in op.tiers:
        wanted.add("PRESCRIBER_ACCESS_REQUIRED")
    return (wanted & codes) or wanted


@check(
    "tier.enforcement",
    "Each clinical and prescriber operation refuses a referral-tier key with its 403 code",
    [
        "CLN-TIER-001",
        "GLO-AUTH-003",
        "GLO-ERR-003",
        "PRS-TIER-001",
        "CLN-PRB-001",
        "CLN-PHI-002",
        "CLN-PHI-001",
    ],
    needs=("referral_key",),
)
def tier_enforcement(ctx: Context, res: CheckResult) -> None:
    creds = ctx.creds_of_tier("referral")
    assert creds is not None
    ops = [op for op in ctx.spec.full_operations() if "referral" not in op.tiers and not op.sandbox_only]
    if not ops:
        res.omit("the spec has no clinical or prescriber operations")
        return
    for op in ops:
        if op.writes and not ctx.allow_writes and not ctx.sandbox:
            continue  # a broken production server could act on it
        body = op.request_example() if op.method in ("POST", "PUT", "PATCH") else None
        for with_header in [True, False] if "clinical" in op.tiers else [False]:
            ex = ctx.client.op_request(
                op, creds=creds, path_values=unknown_path_values(op), json_body=body, access_tier=with_header
            )
            expected = _forbidden_code(op)
            if ex.status == 403 and error_code(ex) in expected:
                res.ok()
            else:
                res.fail(
                    f"{op.key} with a referral-tier key{' and X-Access-Tier: clinical' if with_header else ''}: "
                    f"expected 403 {'/'.join(sorted(expected))}, got {describe(ex)}",
                    ex,
                )


@check(
    "tier.access_tier_header",
    "A clinical key without X-Access-Tier: clinical gets 403 CLINICAL_ACCESS_REQUIRED",
    ["CLN-AUTH-001", "GLO-AUTH-003"],
    needs=("clinical_key",),
)
def access_tier_header(ctx: Context, res: CheckResult) -> None:
    creds: Credentials | None = ctx.creds_of_tier("clinical")
    assert creds is not None
    for op in ctx.spec.operations:
        if not op.needs_access_tier_header or op.writes or op.sandbox_only:
            continue
        ex = ctx.client.op_request(op, creds=creds, path_values=unknown_path_values(op), access_tier=False)
        if ex.status == 403 and error_code(ex) == "CLINICAL_ACCESS_REQUIRED":
            res.ok()
        else:
            res.fail(
                f"{op.key} without X-Access-Tier: expected 403 CLINICAL_ACCESS_REQUIRED, got {describe(ex)}",
                ex,
            )
