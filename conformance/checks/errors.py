"""The error envelope and the documented code and status of every error response observed during the run."""

from __future__ import annotations

import secrets

from ..http import Exchange
from . import CheckResult, Context, check
from ._util import describe, error_code, unknown_path_values


def _grouped_fail(res: CheckResult, seen: dict[str, int], key: str, message: str, ex: Exchange) -> None:
    seen[key] = seen.get(key, 0) + 1
    if seen[key] == 1:
        res.fail(message, ex)


def _partner_exchanges(ctx: Context) -> list[Exchange]:
    return [e for e in ctx.client.exchanges if e.status is not None and "/partner" in e.path]


@check(
    "errors.envelope",
    'Every error response has the envelope {"error": {"code", "message", "details"}}',
    ["REF-ERR-003", "PRS-ERR-001", "GLO-ERR-006", "CLN-BP-006"],
    phase="observe",
)
def envelope(ctx: Context, res: CheckResult) -> None:
    seen: dict[str, int] = {}
    errors = [e for e in _partner_exchanges(ctx) if e.status is not None and e.status >= 400]
    if not errors:
        res.skip("no error response was observed")
        return
    catalog = ctx.spec.error_catalog
    for ex in errors:
        body = ex.json
        err = body.get("error") if isinstance(body, dict) else None
        ctype = (ex.header("content-type") or "").split(";")[0].strip()
        if not isinstance(err, dict):
            _grouped_fail(
                res,
                seen,
                f"shape {ex.operation_id} {ex.status}",
                f"{describe(ex)}: body is not the error envelope: {ex.response_text[:200]!r}",
                ex,
            )
            continue
        problems = []
        if ctype != "application/json":
            problems.append(f"content type {ctype or 'missing'}")
        if not isinstance(err.get("code"), str):
            problems.append("error.code missing")
        elif catalog and err["code"] not in catalog:
            problems.append(f"error.code {err['code']} is not in the ErrorCode catalog")
        if not isinstance(err.get("message"), str) or not err.get("message"):
            problems.append("error.message missing")
        if "details" in err and err["details"] is not None and not isinstance(err["details"], dict):
            problems.append("error.details is neither an object nor null")
        extra = set(body) - {"error"}
        if extra:
            problems.append(f"unexpected top-level keys {sorted(extra)}")
        if problems:
            _grouped_fail(
                res,
                seen,
                f"{ex.operation_id} {ex.status} {problems[0]}",
                f"{describe(ex)}: {'; '.join(problems)}",
                ex,
            )
        else:
            res.ok()
    for key, n in seen.items():
        if n > 1:
            res.fail(f"({n - 1} more response(s) like: {key})")


@check(
    "errors.documented_code",
    "Each error code comes with its catalog status and is documented for the operation",
    ["REF-ERR-001", "REF-ERR-004", "CLN-ERR-001", "PRS-ERR-002", "PRS-APT-002", "PRS-RT-001"],
    phase="observe",
)
def documented_code(ctx: Context, res: CheckResult) -> None:
    catalog = ctx.spec.error_catalog
    if not catalog:
        res.skip("the spec has no x-error-catalog")
        return
    seen: dict[str, int] = {}
    observed = 0
    for ex in _partner_exchanges(ctx):
        code = error_code(ex)
        if ex.status is None or ex.status < 400 or code is None:
            continue
        observed += 1
        entry = catalog.get(code)
        if entry is None:
            continue  # reported by errors.envelope
        if int(entry.get("status", 0)) != ex.status:
            _grouped_fail(
                res,
                seen,
                f"status {code} {ex.status}",
                f"{describe(ex)}: {code} is documented with status {entry.get('status')}",
                ex,
            )
            continue
        if entry.get("deprecated"):
            _grouped_fail(
                res, seen, f"deprecated {code}", f"{describe(ex)}: {code} is deprecated and never sent", ex
            )
            continue
        op = ctx.spec.find_operation(ex.method, ex.path)
        if op is None:
            res.ok()
            continue
        documented = op.error_codes(ex.status)
        if str(ex.status) not in op.documented_statuses() and "default" not in op.documented_statuses():
            _grouped_fail(
                res,
                seen,
                f"undocumented status {op.key} {ex.status}",
                f"{describe(ex)}: status {ex.status} is not documented for {op.key}",
                ex,
            )
        elif documented and code not in documented:
            _grouped_fail(
                res,
                seen,
                f"undocumented code {op.key} {code}",
                f"{describe(ex)}: {code} is not among the documented codes {documented} of {op.key} {ex.status}",
                ex,
            )
        else:
            res.ok()
    if not observed:
        res.skip("no error response with a code was observed")


@check(
    "errors.not_found_codes",
    "An id that does not exist gets 404 with the operation's documented not-found code",
    ["REF-ERR-002", "CLN-PAT-002", "CLN-APT-002", "CLN-TXN-001", "CLN-PRB-003", "PRS-RX-001", "CLN-ERR-001"],
)
def not_found_codes(ctx: Context, res: CheckResult) -> None:
    ops = [op for op in ctx.spec.operations if op.path_params and not op.writes and not op.sandbox_only]
    if not ops:
        res.omit("no read operation takes an id")
        return
    for op in ops:
        ex = ctx.client.op_request(op, creds=ctx.primary, path_values=unknown_path_values(op))
        codes = op.error_codes(404)
        if ex.status == 404 and (not codes or error_code(ex) in codes):
            res.ok()
        else:
            res.fail(
                f"{op.key} with an unknown id: expected 404 {'/'.join(codes) or ''}, got {describe(ex)}", ex
            )


@check(
    "errors.invalid_body",
    "A request body that fails schema validation gets 400 with a documented code and details",
    ["GLO-ERR-005"],
    writes=True,
)
def invalid_body(ctx: Context, res: CheckResult) -> None:
    ops = [
        op
        for op in ctx.spec.operations
        if op.method == "POST" and op.request_schema() and not op.sandbox_only and not op.path_params
    ]
    if not ops:
        res.omit("no create operation with a JSON body")
        return
    for op in ops:
        for body, what in (
            ({"unexpected_" + secrets.token_hex(3): 1}, "an unknown property and no required ones"),
            ([], "a JSON array instead of an object"),
        ):
            ex = ctx.client.op_request(op, creds=ctx.primary, json_body=body)
            codes = op.error_codes(400)
            ok = ex.status == 400 and (not codes or error_code(ex) in codes)
            res.expect(ok, f"{op.key} with {what}: expected 400 {'/'.join(codes)}, got {describe(ex)}", ex)
        ex = ctx.client.op_request(
            op,
            creds=ctx.primary,
            raw_body=b'{"truncated": ',
            headers={"Content-Type": "application/json"},
            timeout=5.0,
        )
        res.expect(ex.status == 400, f"{op.key} with malformed JSON: expected 400, got {describe(ex)}", ex)
