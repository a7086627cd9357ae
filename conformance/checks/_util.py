"""Helpers shared by checks: well-formed ids that do not exist, id harvesting, list paging."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

from ..http import Credentials, Exchange
from ..spec import Operation

_QUANT = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def unknown_id(param: dict[str, Any]) -> str:
    """A syntactically valid value for an id parameter that no server will have issued."""
    schema = param.get("schema") or {}
    pattern = schema.get("pattern") or ""
    examples = schema.get("examples") or ([schema["example"]] if "example" in schema else [])
    if pattern.startswith("^"):
        body = pattern[1:].rstrip("$")
        cut = min([i for i in (body.find("["), body.find("("), body.find("\\")) if i >= 0] or [len(body)])
        prefix = body[:cut]
        m = _QUANT.search(body[cut:])
        length = 12
        if m:
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) else (lo if m.group(2) is None else lo + 20)
            length = max(lo, min(hi, 24))
        return prefix + secrets.token_hex(16)[:length]
    if examples and isinstance(examples[0], str):
        ex = examples[0]
        m2 = re.match(r"^([A-Za-z]+[_-])", ex)
        return (m2.group(1) if m2 else "") + "0" * 4 + secrets.token_hex(6)
    return "nonexistent" + secrets.token_hex(6)


def unknown_path_values(op: Operation) -> dict[str, str]:
    return {p["name"]: unknown_id(p) for p in op.path_params}


def harvest_ids(value: Any, out: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """Every string under a key ending in ``_id`` anywhere in a JSON value, by key."""
    out = out if out is not None else {}
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and k.endswith("_id") and v:
                out.setdefault(k, set()).add(v)
            else:
                harvest_ids(v, out)
    elif isinstance(value, list):
        for v in value:
            harvest_ids(v, out)
    return out


def item_id_key(items: list[Any], op: Operation | None = None) -> str | None:
    """The identifying key of list items: the first *_id key present in every item."""
    if not items or not isinstance(items[0], dict):
        return None
    keys = [k for k in items[0] if k.endswith("_id") and all(isinstance(i, dict) and k in i for i in items)]
    return keys[0] if keys else None


def page_through(
    ctx: Any,
    op: Operation,
    creds: Credentials,
    list_key: str,
    *,
    limit: int = 2,
    params: dict[str, Any] | None = None,
    max_pages: int = 25,
    between_pages: Any = None,
) -> Iterator[tuple[Exchange, list[Any]]]:
    cursor = None
    for page in range(max_pages):
        q = dict(params or {})
        q["limit"] = limit
        if cursor:
            q["cursor"] = cursor
        ex = ctx.client.op_request(op, creds=creds, params=q)
        body = ex.json
        if ex.status != 200 or not isinstance(body, dict):
            yield ex, []
            return
        items = body.get(list_key) or []
        yield ex, items
        pag = body.get("pagination") or {}
        cursor = pag.get("next_cursor")
        if not pag.get("has_more") or not cursor:
            return
        if between_pages is not None:
            between_pages(page)


def error_code(ex: Exchange) -> str | None:
    body = ex.json
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return code if isinstance(code, str) else None
    return None


def describe(ex: Exchange) -> str:
    code = error_code(ex)
    return f"{ex.method} {ex.path} -> {ex.status if ex.status is not None else ex.error}" + (
        f" {code}" if code else ""
    )
