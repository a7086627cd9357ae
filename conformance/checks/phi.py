"""No x-phi property ever reaches a referral-tier partner, in responses or webhooks."""

from __future__ import annotations

from typing import Any

from ..spec import HEURISTIC_PHI_NAMES, Spec
from . import CheckResult, Context, check

MAX_DEPTH = 12


def phi_leaks(spec: Spec, instance: Any, schema: Any, path: str = "", depth: int = 0) -> list[str]:
    """JSON paths in ``instance`` that carry PHI according to the full spec's x-phi marks.

    A property is PHI when its schema (in any oneOf/anyOf branch) is marked ``x-phi``; a property the schema
    does not declare is PHI when its name is marked ``x-phi`` anywhere in the spec or looks like a PHI field.
    """
    if depth > MAX_DEPTH:
        return []
    out: list[str] = []
    if isinstance(instance, dict):
        props = spec.object_properties(schema) if schema is not None else {}
        for key, value in instance.items():
            sub = props.get(key)
            here = f"{path}/{key}"
            if sub is not None:
                if spec.is_phi_property(sub):
                    if value is not None:
                        out.append(here)
                    continue
                out += phi_leaks(spec, value, sub, here, depth + 1)
            else:
                phi_only = key in spec.phi_names and key not in spec.non_phi_names
                if value is not None and (phi_only or key in HEURISTIC_PHI_NAMES):
                    out.append(here + " (undeclared)")
                    continue
                out += phi_leaks(spec, value, None, here, depth + 1)
    elif isinstance(instance, list):
        item = spec.item_schema(schema) if schema is not None else None
        for i, value in enumerate(instance[:200]):
            out += phi_leaks(spec, value, item, f"{path}/{i}", depth + 1)
    return out


def _full_schema(ctx: Context, method: str, path: str, status: int) -> Any:
    op = next(
        (o for o in ctx.spec.full_operations() if o.method == method and o.path_regex().match(path)), None
    )
    return op.response_schema(status) if op else None


@check(
    "phi.referral_responses",
    "No x-phi property (nor a PHI-named extra one) in any referral-tier response",
    ["REF-PHI-001", "REF-PHI-002", "REF-PHI-003", "CLN-PHI-002", "CLN-REF-001", "REF-REF-012", "CLN-BP-008"],
    phase="observe",
)
def referral_responses(ctx: Context, res: CheckResult) -> None:
    labels = {c.label for c in ctx.all_credentials() if c.tier == "referral"}
    if not labels:
        res.omit("no referral-tier key in this run")
        return
    probe = ctx.referral_key
    if probe is not None and not any(
        e.credential == probe.label and e.status is not None and e.status < 300 for e in ctx.client.exchanges
    ):
        # The referral-tier key of a clinical or prescriber run only probed refusals so far: read what it may.
        for op in ctx.spec.operations:
            if (
                op.method == "GET"
                and not op.path_params
                and not op.sandbox_only
                and op.allowed_for("referral")
            ):
                ctx.client.op_request(op, creds=probe)
    seen: set[str] = set()
    checked = 0
    for ex in ctx.client.exchanges:
        if ex.credential not in labels or ex.status is None or not 200 <= ex.status < 300:
            continue
        body = ex.json
        if body is None:
            continue
        checked += 1
        schema = _full_schema(ctx, ex.method, ex.path.split("?")[0], ex.status)
        leaks = phi_leaks(ctx.spec, body, schema)
        if leaks:
            key = f"{ex.operation_id}:{','.join(sorted(leaks)[:3])}"
            if key not in seen:
                seen.add(key)
                res.fail(
                    f"{ex.method} {ex.path} -> {ex.status} sent PHI to a referral-tier partner: "
                    f"{', '.join(leaks[:8])}",
                    ex,
                )
        else:
            res.ok()
    if not checked:
        res.skip("no successful referral-tier response was observed")


@check(
    "phi.referral_webhooks",
    "No x-phi property in any webhook delivered to a referral-tier partner",
    ["REF-PHI-001", "REF-PHI-002", "REF-PHI-003", "CLN-PHI-002", "GLO-WH-006"],
    phase="observe",
    needs=("webhooks",),
    tiers=["referral"],
)
def referral_webhooks(ctx: Context, res: CheckResult) -> None:
    assert ctx.receiver is not None
    deliveries = ctx.receiver.deliveries()
    if not deliveries:
        res.skip("no webhook was delivered during the run")
        return
    for d in deliveries:
        payload = d.json
        if not isinstance(payload, dict):
            continue
        schema = ctx.spec.webhook_schema(str(payload.get("event_type")))
        leaks = phi_leaks(ctx.spec, payload, schema)
        if leaks:
            res.fail(
                f"webhook {payload.get('event_type')} {payload.get('event_id')} carried PHI: {', '.join(leaks[:8])}",
                d.as_exchange(),
            )
        else:
            res.ok()
