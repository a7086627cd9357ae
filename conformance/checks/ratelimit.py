"""Rate-limit headers on every response; a burst past the limit gets 429 RATE_LIMIT_EXCEEDED with Retry-After."""

from __future__ import annotations

import time

from . import CheckResult, Context, check
from ._util import describe, error_code
from .preflight import probe_operation

HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


@check(
    "ratelimit.headers",
    "X-RateLimit-Limit, -Remaining and -Reset on every response, with consistent values",
    ["REF-RL-002", "PRS-RL-001", "REF-RL-001", "GLO-RL-001", "CLN-RL-001"],
    phase="observe",
)
def headers(ctx: Context, res: CheckResult) -> None:
    exchanges = [e for e in ctx.client.exchanges if e.status is not None and "/partner" in e.path]
    if not exchanges:
        res.skip("no response was observed")
        return
    missing: dict[str, int] = {}
    for ex in exchanges:
        absent = [h for h in HEADERS if ex.header(h) is None]
        if absent:
            key = f"{ex.operation_id or ex.path} {ex.status}"
            missing[key] = missing.get(key, 0) + 1
            if missing[key] == 1:
                res.fail(f"{describe(ex)}: missing {', '.join(absent)}", ex)
            continue
        limit, remaining, reset = (_int(ex.header(h)) for h in HEADERS)
        problems = []
        if limit is None or limit < 1:
            problems.append(f"X-RateLimit-Limit {ex.header(HEADERS[0])!r} is not a positive integer")
        if remaining is None or remaining < 0 or (limit is not None and remaining > limit):
            problems.append(f"X-RateLimit-Remaining {ex.header(HEADERS[1])!r} is not within 0..limit")
        if reset is None or reset < 0:
            problems.append(f"X-RateLimit-Reset {ex.header(HEADERS[2])!r} is not a non-negative integer")
        if problems:
            key = f"values {ex.operation_id} {problems[0][:20]}"
            missing[key] = missing.get(key, 0) + 1
            if missing[key] == 1:
                res.fail(f"{describe(ex)}: {'; '.join(problems)}", ex)
        else:
            res.ok()
    for key, n in missing.items():
        if n > 1:
            res.fail(f"({n - 1} more response(s) of {key} with the same problem)")


@check(
    "ratelimit.burst",
    "A burst past the limit gets 429 RATE_LIMIT_EXCEEDED with Retry-After and the rate headers",
    ["GLO-ERR-004", "GLO-RL-002", "CLN-RL-001", "REF-RL-001", "GLO-RL-001"],
    phase="late",
    opt_in_production=True,
)
def burst(ctx: Context, res: CheckResult) -> None:
    op = probe_operation(ctx)
    if op is None:
        res.skip("no read-only operation to burst with")
        return
    # Limits are per partner: burst with the key of the lowest limit (the primary's when they are equal).
    firsts = [(ctx.client.op_request(op, creds=c, unlimited=True), c) for c in ctx.all_credentials()]
    first, creds = min(firsts, key=lambda fc: _int(fc[0].header("X-RateLimit-Limit")) or 10**9)
    limit = _int(first.header("X-RateLimit-Limit"))
    budget = (limit or 300) + 20
    got_429 = None
    sent = 1
    deadline = time.monotonic() + 30
    while sent < budget and time.monotonic() < deadline:
        ex = ctx.client.op_request(op, creds=creds, unlimited=True)
        sent += 1
        if ex.status == 429:
            got_429 = ex
            break
    if got_429 is None:
        res.fail(
            f"{sent} requests in a burst with the {creds.label} key (X-RateLimit-Limit "
            f"{limit if limit is not None else 'absent'}) never got 429",
            first,
        )
        return
    ex = got_429
    res.expect(
        error_code(ex) == "RATE_LIMIT_EXCEEDED", f"429 carries {error_code(ex)}, not RATE_LIMIT_EXCEEDED", ex
    )
    err = (ex.json or {}).get("error") if isinstance(ex.json, dict) else None
    res.expect(
        isinstance(err, dict) and isinstance(err.get("message"), str), "429 without the error envelope", ex
    )
    res.expect(ex.header("X-RateLimit-Limit") is not None, "429 without X-RateLimit-Limit", ex)
    retry = _int(ex.header("Retry-After"))
    res.expect(
        retry is not None and retry >= 0,
        f"429 without a valid Retry-After ({ex.header('Retry-After')!r})",
        ex,
    )
    for h in ("X-RateLimit-Remaining", "X-RateLimit-Reset"):
        res.expect(ex.header(h) is not None, f"429 without {h}", ex)
    res.expect(_int(ex.header("X-RateLimit-Remaining")) == 0, "429 with X-RateLimit-Remaining not 0", ex)
    remaining = _int(first.header("X-RateLimit-Remaining"))
    if remaining is not None:
        res.expect(
            sent - 1 >= remaining - 1,
            f"429 after {sent - 1} more requests although X-RateLimit-Remaining promised {remaining}",
            ex,
        )
    ctx.state["rate_limited_until"] = time.monotonic() + (retry or 60)
