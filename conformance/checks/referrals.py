"""Referral creates, read-back, filters, idempotency on partner_reference, and pagination."""

from __future__ import annotations

import copy
import time
from datetime import datetime, timedelta
from typing import Any

from ..http import Credentials, Exchange
from ..spec import Operation
from . import CheckResult, Context, check
from ._util import describe, error_code, harvest_ids, item_id_key, page_through

CREATE = ("POST", "/partner/referrals")
GET = ("GET", "/partner/referrals/{referral_id}")
LIST = ("GET", "/partner/referrals")
CANCEL = ("POST", "/partner/referrals/{referral_id}/cancel")
TRACKING = ("GET", "/partner/referrals/{referral_id}/tracking-link")


def op_at(ctx: Context, method: str, path: str) -> Operation | None:
    return next((o for o in ctx.spec.operations if o.method == method and o.path == path), None)


def _categories(ctx: Context, creds: Credentials) -> list[str]:
    key = f"categories:{creds.label}"
    if key not in ctx.state:
        cats: list[str] = []
        op = op_at(ctx, "GET", "/partner/products")
        if op is not None:
            ex = ctx.client.op_request(op, creds=creds)
            body = ex.json
            if ex.status == 200 and isinstance(body, dict):
                for p in body.get("products") or []:
                    if isinstance(p, dict):
                        cat = p.get("category") or p.get("category_id")
                        if isinstance(cat, str):
                            cats.append(cat)
        ctx.state[key] = cats
    return ctx.state[key]


def referral_body(ctx: Context, creds: Credentials, hint: str = "") -> dict[str, Any] | None:
    op = op_at(ctx, *CREATE)
    if op is None:
        return None
    body = op.request_example() or {}
    body = copy.deepcopy(body) if isinstance(body, dict) else {}
    body["partner_reference"] = ctx.fresh_reference(hint)
    body.setdefault("product_category", "trt-cream")
    body["metadata"] = {"conformance_run": ctx.run_tag}
    schema = op.request_schema()
    for cat in _categories(ctx, creds):
        candidate = dict(body, product_category=cat)
        if schema is None or not ctx.spec.validation_errors(schema, candidate, limit=1):
            return candidate
    return body


def create_referral(
    ctx: Context, res: CheckResult, creds: Credentials | None = None, hint: str = ""
) -> tuple[dict[str, Any] | None, Exchange | None]:
    """Create a referral; record a skip (could not verify) when the deployment will not create one."""
    creds = creds or ctx.primary
    op = op_at(ctx, *CREATE)
    body = referral_body(ctx, creds, hint)
    if op is None or body is None:
        res.omit("the spec has no POST /partner/referrals")
        return None, None
    ex = ctx.client.op_request(op, creds=creds, json_body=body)
    obj = ex.json
    if (
        ex.status not in (200, 201)
        or not isinstance(obj, dict)
        or not isinstance(obj.get("referral_id"), str)
    ):
        res.skip(f"could not create a referral to test with: {describe(ex)}")
        return None, ex
    ctx.created.setdefault("referrals", []).append((obj, creds))
    return obj, ex


def get_referral(ctx: Context, creds: Credentials, referral_id: str) -> Exchange:
    op = op_at(ctx, *GET)
    assert op is not None
    return ctx.client.op_request(op, creds=creds, path_values={"referral_id": referral_id})


def _ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@check(
    "referrals.create",
    "POST /partner/referrals returns 201 with a ref_ id, status created and a 7-day expiry",
    ["REF-REF-001", "REF-REF-005", "GLO-ID-001"],
    writes=True,
)
def create(ctx: Context, res: CheckResult) -> None:
    obj, ex = create_referral(ctx, res, hint="create")
    if obj is None or ex is None:
        return
    res.expect(ex.status == 201, f"create answered {ex.status}, expected 201", ex)
    res.expect(str(obj.get("referral_id", "")).startswith("ref_"), "referral_id does not start with ref_", ex)
    lc = next((lc for lc in ctx.spec.lifecycles if lc.name == "referral"), None)
    # A referral created by the partner starts in `created` (seed 000 §6.1), itself an initial state of the lifecycle.
    initial = "created" if lc is None or not lc.initial or "created" in lc.initial else lc.initial[0]
    res.expect(
        obj.get("status") == initial, f"a new referral has status {obj.get('status')!r}, not {initial!r}", ex
    )
    res.expect(isinstance(obj.get("enrollment_url"), str), "no enrollment_url in the create response", ex)
    created, expires = _ts(obj.get("created_at")), _ts(obj.get("expires_at"))
    if created and expires:
        delta = expires - created
        res.expect(
            abs(delta - timedelta(days=7)) <= timedelta(minutes=5),
            f"expires_at - created_at is {delta}, not 7 days",
            ex,
        )
    else:
        res.fail("created_at / expires_at missing or not date-times", ex)


@check(
    "referrals.read_back",
    "A created referral reads back with the same id, reference, status and history",
    ["REF-REF-007", "REF-MOD-001"],
    writes=True,
)
def read_back(ctx: Context, res: CheckResult) -> None:
    obj, _ex = create_referral(ctx, res, hint="read")
    if obj is None:
        return
    ex = get_referral(ctx, ctx.primary, obj["referral_id"])
    got = ex.json if isinstance(ex.json, dict) else {}
    if not res.expect(ex.status == 200, f"reading back the new referral: {describe(ex)}", ex):
        return
    for key in ("referral_id", "partner_reference", "product_category"):
        res.expect(
            got.get(key) == obj.get(key),
            f"{key} reads back as {got.get(key)!r}, created as {obj.get(key)!r}",
            ex,
        )
    res.expect(got.get("metadata") == {"conformance_run": ctx.run_tag}, "metadata is not echoed as sent", ex)
    hist = got.get("status_history")
    if isinstance(hist, list) and hist:
        res.expect(hist[0].get("status") == "created", "status_history does not start with created", ex)
        res.expect(
            hist[-1].get("status") == got.get("status"), "the last status_history entry is not the status", ex
        )
    else:
        res.fail("status_history missing or empty", ex)


@check(
    "referrals.invalid_category",
    "A product category not available to the partner is refused",
    ["REF-REF-003", "REF-ERR-004"],
    writes=True,
)
def invalid_category(ctx: Context, res: CheckResult) -> None:
    op = op_at(ctx, *CREATE)
    body = referral_body(ctx, ctx.primary, "cat")
    if op is None or body is None:
        res.omit("no POST /partner/referrals")
        return
    body["product_category"] = "no-such-category"
    ex = ctx.client.op_request(op, creds=ctx.primary, json_body=body)
    ok = (
        ex.status is not None
        and 400 <= ex.status < 500
        and error_code(ex) in ("INVALID_PRODUCT_CATEGORY", "INVALID_BODY", "VALIDATION_ERROR")
    )
    res.expect(ok, f"unknown product_category: expected 4xx INVALID_PRODUCT_CATEGORY, got {describe(ex)}", ex)


@check(
    "referrals.metadata_limits",
    "metadata over 20 keys or with a value over 500 characters is refused",
    ["REF-REF-004"],
    writes=True,
)
def metadata_limits(ctx: Context, res: CheckResult) -> None:
    op = op_at(ctx, *CREATE)
    if op is None:
        res.omit("no POST /partner/referrals")
        return
    for meta, what in (
        ({f"k{i}": "v" for i in range(21)}, "21 metadata keys"),
        ({"k": "x" * 501}, "a 501-character value"),
    ):
        body = referral_body(ctx, ctx.primary, "meta") or {}
        body["metadata"] = meta
        ex = ctx.client.op_request(op, creds=ctx.primary, json_body=body)
        res.expect(ex.status == 400, f"{what}: expected 400, got {describe(ex)}", ex)


@check(
    "referrals.filters",
    "List filters return only matching items (status, partner_reference, ...)",
    ["REF-REF-009"],
)
def filters(ctx: Context, res: CheckResult) -> None:
    op = op_at(ctx, *LIST)
    if op is None:
        res.omit("no GET /partner/referrals")
        return
    created = [o for o, c in ctx.created.get("referrals", []) if c is ctx.primary]
    if created:
        ref = created[0]["partner_reference"]
        ex = ctx.client.op_request(op, creds=ctx.primary, params={"partner_reference": ref})
        items = (ex.json or {}).get("referrals") if isinstance(ex.json, dict) else None
        res.expect(
            isinstance(items, list) and [i.get("partner_reference") for i in items] == [ref],
            f"filtering by partner_reference={ref} did not return exactly that referral: {describe(ex)}",
            ex,
        )
    for param in op.query_params:
        schema = ctx.spec.deref(param.get("schema") or {})
        values = schema.get("enum") or []
        if not values or param["name"] in ("period",):
            continue
        value = values[0]
        ex = ctx.client.op_request(op, creds=ctx.primary, params={param["name"]: value, "limit": 20})
        body = ex.json if isinstance(ex.json, dict) else {}
        if ex.status != 200:
            res.fail(f"filter {param['name']}={value}: {describe(ex)}", ex)
            continue
        field = "status" if param["name"] == "status" else param["name"]
        for item in body.get("referrals") or []:
            actual = item.get(field)
            if param["name"] == "fulfillment_status":
                actual = (item.get("fulfillment") or {}).get("status")
            if actual is not None and actual != value:
                res.fail(f"filter {param['name']}={value} returned an item with {field}={actual!r}", ex)
                break
        else:
            res.ok()


@check(
    "referrals.tracking_link_before_shipment",
    "The tracking link of a referral without a shipment is 404",
    ["REF-REF-013"],
    writes=True,
)
def tracking_link(ctx: Context, res: CheckResult) -> None:
    op = op_at(ctx, *TRACKING)
    if op is None:
        res.omit("no tracking-link operation")
        return
    obj, _ = create_referral(ctx, res, hint="trk")
    if obj is None:
        return
    ex = ctx.client.op_request(op, creds=ctx.primary, path_values={"referral_id": obj["referral_id"]})
    codes = op.error_codes(404)
    res.expect(
        ex.status == 404 and (not codes or error_code(ex) in codes),
        f"tracking link before shipment: expected 404 {'/'.join(codes)}, got {describe(ex)}",
        ex,
    )


# ---- idempotency ----------------------------------------------------------------------------------------------
def _idempotent_creates(ctx: Context) -> list[Operation]:
    return [op for op in ctx.spec.operations if op.idempotency and not op.path_params and not op.sandbox_only]


def _fresh_body(ctx: Context, op: Operation, key: str) -> dict[str, Any] | None:
    if (op.method, op.path) == CREATE:
        return referral_body(ctx, ctx.primary, "idem")
    # Point the example's references (prescriber_id, referral_id, ...) at objects this run created: the spec's
    # example ids belong to nobody on a real deployment. The example with the fewest references that all resolve
    # wins (a prescription for an inline patient needs only a prescriber of the run), else the first one.
    own: dict[str, set[str]] = {}
    for objs in ctx.created.values():
        for obj, creds in objs:
            if creds is ctx.primary:
                harvest_ids(obj, own)
    candidates = [b for b in op.request_examples() if isinstance(b, dict)]
    by_refs = sorted(candidates, key=lambda b: sum(1 for k in b if k.endswith("_id")))
    for body in by_refs:
        unresolved = [k for k in body if k.endswith("_id") and isinstance(body[k], str) and not own.get(k)]
        for k in list(body):
            if k.endswith("_id") and isinstance(body[k], str) and own.get(k):
                body[k] = sorted(own[k])[0]
        if not unresolved:
            break
    else:
        body = candidates[0] if candidates else None
    if body is None:
        return None
    body[key] = ctx.fresh_reference("idem")
    return body


def _id_of(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return None
    for k, v in obj.items():
        if k.endswith("_id") and isinstance(v, str):
            return v
    return None


@check(
    "idempotency.create_replay",
    "Replaying a create with the same partner_reference returns the same object, once",
    ["GLO-IDEM-001", "CLN-BP-005", "REF-REF-002", "CLN-PRX-004"],
    writes=True,
)
def create_replay(ctx: Context, res: CheckResult) -> None:
    ops = _idempotent_creates(ctx)
    if not ops:
        res.omit("no create operation declares x-idempotency")
        return
    for op in ops:
        spec = op.idempotency or {}
        key = spec.get("key", "partner_reference")
        replay_status = int(spec.get("replay_status", 200))
        body = _fresh_body(ctx, op, key)
        if body is None:
            res.skip(f"{op.key}: no request example to create with")
            continue
        first = ctx.client.op_request(op, creds=ctx.primary, json_body=body)
        if first.status not in (200, 201):
            res.skip(f"{op.key}: could not create with the documented example: {describe(first)}")
            continue
        second = ctx.client.op_request(op, creds=ctx.primary, json_body=body)
        id1, id2 = _id_of(first.json), _id_of(second.json)
        res.expect(
            second.status == replay_status,
            f"{op.key} replayed with the same {key}: expected {replay_status}, got {describe(second)}",
            first,
            second,
        )
        res.expect(
            id1 is not None and id1 == id2,
            f"{op.key} replayed with the same {key} returned a different object ({id1} then {id2})",
            first,
            second,
        )
        res.expect(
            (second.header("Idempotent-Replayed") or "").lower() == "true",
            f"{op.key} replay without Idempotent-Replayed: true",
            second,
        )
        if (op.method, op.path) != CREATE and isinstance(first.json, dict):
            ctx.created.setdefault(op.path, []).append((first.json, ctx.primary))
        if (op.method, op.path) == CREATE:
            ctx.created.setdefault("referrals", []).append((first.json, ctx.primary))
            lst = op_at(ctx, *LIST)
            if lst is not None and lst.param("partner_reference"):
                ex = ctx.client.op_request(lst, creds=ctx.primary, params={"partner_reference": body[key]})
                items = (ex.json or {}).get("referrals") if isinstance(ex.json, dict) else None
                res.expect(
                    isinstance(items, list) and len(items) == 1,
                    f"after a replayed create, {len(items) if isinstance(items, list) else '?'} referrals "
                    f"have partner_reference {body[key]}",
                    ex,
                )


@check(
    "idempotency.conflict",
    "The same partner_reference with a different body gets the documented conflict code",
    ["GLO-IDEM-001", "CLN-BP-005", "REF-REF-002", "PRS-APT-003"],
    writes=True,
)
def conflict(ctx: Context, res: CheckResult) -> None:
    ops = _idempotent_creates(ctx)
    if not ops:
        res.omit("no create operation declares x-idempotency")
        return
    for op in ops:
        spec = op.idempotency or {}
        key = spec.get("key", "partner_reference")
        code = spec.get("conflict_code", "DUPLICATE_REFERENCE")
        status = int(ctx.spec.error_catalog.get(code, {}).get("status", 409))
        body = _fresh_body(ctx, op, key)
        if body is None:
            res.skip(f"{op.key}: no request example to create with")
            continue
        first = ctx.client.op_request(op, creds=ctx.primary, json_body=body)
        if first.status not in (200, 201):
            res.skip(f"{op.key}: could not create with the documented example: {describe(first)}")
            continue
        changed = _changed_body(ctx, op, body, key)
        second = ctx.client.op_request(op, creds=ctx.primary, json_body=changed)
        res.expect(
            second.status == status and error_code(second) == code,
            f"{op.key} with a used {key} and a different body: expected {status} {code}, got {describe(second)}",
            first,
            second,
        )


def _changed_body(ctx: Context, op: Operation, body: dict[str, Any], key: str) -> dict[str, Any]:
    """The same create with a different, still valid body: other metadata, else another free-text value."""
    changed = copy.deepcopy(body)
    props = ctx.spec.object_properties(op.request_schema()) if op.request_schema() else {}
    if not props or "metadata" in props:
        changed["metadata"] = {"conformance_run": ctx.run_tag, "changed": "yes"}
        return changed
    for name, prop in props.items():
        prop = ctx.spec.deref(prop)
        free_text = prop.get("type") == "string" and not ({"pattern", "format", "enum", "const"} & set(prop))
        if name != key and name in body and free_text and isinstance(body[name], str):
            changed[name] = body[name] + " changed"
            return changed
    changed["metadata"] = {"conformance_run": ctx.run_tag, "changed": "yes"}
    return changed


# ---- pagination -------------------------------------------------------------------------------------------------
def _list_ops(ctx: Context) -> list[tuple[Operation, str]]:
    out = []
    for op in ctx.spec.operations:
        if op.method == "GET" and not op.path_params and op.param("cursor") and op.param("limit"):
            key = ctx.spec.list_property(op)
            if key:
                out.append((op, key))
    return out


@check(
    "pagination.no_repeat_no_drop",
    "Following next_cursor neither repeats nor drops items, even while inserting",
    ["REF-PAG-002", "CLN-PAT-001", "PRS-APT-005"],
)
def no_repeat_no_drop(ctx: Context, res: CheckResult) -> None:
    lists = _list_ops(ctx)
    if not lists:
        res.omit("no cursor-paginated list")
        return
    for op, key in lists:
        is_referrals = (op.method, op.path) == LIST
        if is_referrals and ctx.allow_writes:
            _paginate_with_inserts(ctx, res, op, key)
            continue
        seen: set[str] = set()
        for ex, items in page_through(ctx, op, ctx.primary, key, limit=2, max_pages=10):
            if ex.status != 200:
                res.fail(f"paging {op.key}: {describe(ex)}", ex)
                break
            idk = item_id_key(items)
            for item in items:
                ident = item.get(idk) if idk else repr(item)
                if ident in seen:
                    res.fail(f"{op.key}: {ident} appeared on two pages", ex)
                seen.add(ident)
            if len(items) > 2:
                res.fail(f"{op.key}?limit=2 returned {len(items)} items", ex)
        res.ok()


def _paginate_with_inserts(ctx: Context, res: CheckResult, op: Operation, key: str) -> None:
    since = datetime.now().astimezone().isoformat(timespec="seconds")
    time.sleep(1.0)
    initial = []
    for i in range(5):
        obj, _ = create_referral(ctx, res, hint=f"pg{i}")
        if obj is None:
            return
        initial.append(obj["referral_id"])
    params: dict[str, Any] = {}
    if op.param("created_after"):
        params["created_after"] = since
    inserted: list[str] = []

    def insert(_page: int) -> None:
        obj, _ = create_referral(ctx, res, hint="pgx")
        if obj is not None:
            inserted.append(obj["referral_id"])

    seen: list[str] = []
    last = None
    for ex, items in page_through(ctx, op, ctx.primary, key, limit=2, params=params, between_pages=insert):
        last = ex
        if ex.status != 200:
            res.fail(f"paging {op.key}: {describe(ex)}", ex)
            return
        seen += [i.get("referral_id") for i in items if isinstance(i, dict)]
    dupes = sorted({x for x in seen if seen.count(x) > 1})
    missing = [x for x in initial if x not in seen]
    res.expect(
        not dupes,
        f"{op.key}: items repeated across pages while inserting: {dupes}",
        *(e for e in [last] if e),
    )
    res.expect(
        not missing,
        f"{op.key}: items dropped across pages while inserting: {missing}",
        *(e for e in [last] if e),
    )


@check(
    "pagination.limit_bounds",
    "limit outside 1..200 is refused with 400; a page never exceeds its limit",
    ["REF-PAG-001"],
)
def limit_bounds(ctx: Context, res: CheckResult) -> None:
    lists = _list_ops(ctx)
    if not lists:
        res.omit("no cursor-paginated list")
        return
    for op, key in lists:
        for bad in (0, 201):
            ex = ctx.client.op_request(op, creds=ctx.primary, params={"limit": bad})
            res.expect(ex.status == 400, f"{op.key}?limit={bad}: expected 400, got {describe(ex)}", ex)
        ex = ctx.client.op_request(op, creds=ctx.primary, params={"limit": 1})
        items = (ex.json or {}).get(key) if isinstance(ex.json, dict) else None
        res.expect(
            ex.status == 200 and isinstance(items, list) and len(items) <= 1,
            f"{op.key}?limit=1: {describe(ex)} with {len(items) if isinstance(items, list) else '?'} items",
            ex,
        )
        ex = ctx.client.op_request(op, creds=ctx.primary, params={"cursor": "not-a-cursor!"})
        res.expect(ex.status == 400, f"{op.key} with a forged cursor: expected 400, got {describe(ex)}", ex)
