"""Read what the portal needs out of a bundled OpenAPI document (only ``#/...`` refs inside)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from stealth_spec.walk import deref

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def access_tiers(op: dict[str, Any]) -> list[str]:
    value = op.get("x-access-tier")
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def iter_operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, operation) for every operation under ``paths``, in document order."""
    for path, item in (doc.get("paths") or {}).items():
        item = deref(doc, item)
        for method in HTTP_METHODS:
            if isinstance(item.get(method), dict):
                yield method, path, item[method]


def iter_webhooks(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(event_type, method, operation) for every webhook."""
    for name, item in (doc.get("webhooks") or {}).items():
        item = deref(doc, item)
        for method in HTTP_METHODS:
            if isinstance(item.get(method), dict):
                yield name, method, item[method]


def path_parameters(doc: dict[str, Any], path: str, op: dict[str, Any]) -> list[dict[str, Any]]:
    """Resolved parameters of an operation (path-item level ones included, operation level wins)."""
    item = deref(doc, (doc.get("paths") or {}).get(path, {}))
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for p in list(item.get("parameters") or []) + list(op.get("parameters") or []):
        p = deref(doc, p)
        if isinstance(p, dict) and "name" in p:
            merged[(p.get("in", ""), p["name"])] = p
    return list(merged.values())


def parameter_example(doc: dict[str, Any], param: dict[str, Any]) -> Any:
    if "example" in param:
        return param["example"]
    examples = param.get("examples")
    if isinstance(examples, dict):
        for ex in examples.values():
            ex = deref(doc, ex)
            if isinstance(ex, dict) and "value" in ex:
                return ex["value"]
    schema = deref(doc, param.get("schema") or {})
    if isinstance(schema, dict):
        if isinstance(schema.get("examples"), list) and schema["examples"]:
            return schema["examples"][0]
        if "example" in schema:
            return schema["example"]
        if "default" in schema:
            return schema["default"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
    return None


def request_example(doc: dict[str, Any], op: dict[str, Any]) -> tuple[bool, Any]:
    """(has_json_body, first named example of the JSON request body or None)."""
    body = deref(doc, op.get("requestBody"))
    if not isinstance(body, dict):
        return False, None
    content = body.get("content") or {}
    media = content.get("application/json")
    if media is None:
        media = next((m for mt, m in content.items() if mt.endswith("json")), None)
    if not isinstance(media, dict):
        return False, None
    if "example" in media:
        return True, media["example"]
    for ex in (media.get("examples") or {}).values():
        ex = deref(doc, ex)
        if isinstance(ex, dict) and "value" in ex:
            return True, ex["value"]
    schema = deref(doc, media.get("schema") or {})
    if isinstance(schema, dict) and isinstance(schema.get("examples"), list) and schema["examples"]:
        return True, schema["examples"][0]
    return True, {}


def security_headers(doc: dict[str, Any], op: dict[str, Any]) -> list[str]:
    """Header names of the apiKey-in-header schemes of the operation's first security requirement."""
    reqs = op.get("security", doc.get("security")) or []
    schemes = (doc.get("components") or {}).get("securitySchemes") or {}
    names: list[str] = []
    for req in reqs[:1]:
        for scheme_name in req:
            scheme = deref(doc, schemes.get(scheme_name) or {})
            if scheme.get("type") == "apiKey" and scheme.get("in") == "header" and scheme.get("name"):
                names.append(scheme["name"])
    return names


def lifecycles(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(schema name, x-lifecycle) of every component schema that carries one, sorted by schema name."""
    out = []
    for name, schema in ((doc.get("components") or {}).get("schemas") or {}).items():
        if isinstance(schema, dict) and isinstance(schema.get("x-lifecycle"), dict):
            out.append((name, schema["x-lifecycle"]))
    return out


def error_catalog(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``x-error-catalog`` of the ``ErrorCode`` schema (code -> {status, retryable, description, ...})."""
    schemas = (doc.get("components") or {}).get("schemas") or {}
    code = schemas.get("ErrorCode")
    if isinstance(code, dict) and isinstance(code.get("x-error-catalog"), dict):
        return code["x-error-catalog"]
    for schema in schemas.values():
        if isinstance(schema, dict) and isinstance(schema.get("x-error-catalog"), dict):
            return schema["x-error-catalog"]
    return {}


def sandbox_scenarios(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ``x-sandbox-scenarios`` entry, with the operation it belongs to."""
    rows = []
    for method, path, op in iter_operations(doc):
        for sc in op.get("x-sandbox-scenarios") or []:
            if isinstance(sc, dict):
                rows.append(
                    {"method": method.upper(), "path": path, "operationId": op.get("operationId", ""), **sc}
                )
    return rows
