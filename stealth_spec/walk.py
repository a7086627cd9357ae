"""Walkers over a bundled OpenAPI 3.1 document: operations, schemas, media types, refs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Keywords whose value is a schema, a list of schemas, or a map of name -> schema.
SCHEMA_KEYS = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)
SCHEMA_LIST_KEYS = ("oneOf", "anyOf", "allOf", "prefixItems")
SCHEMA_MAP_KEYS = ("properties", "patternProperties", "$defs", "dependentSchemas")


def esc(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def unesc(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def resolve_pointer(doc: Any, pointer: str) -> Any:
    node = doc
    for part in pointer.lstrip("/").split("/") if pointer.strip("/") else []:
        part = unesc(part)
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict in a document, depth first (schemas, operations, examples alike)."""
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from nodes(v)
    elif isinstance(node, list):
        for v in node:
            yield from nodes(v)


def deref(doc: dict[str, Any], node: Any) -> Any:
    """Follow internal ``#/...`` refs until a node without ``$ref``."""
    seen: set[str] = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#"):
        ref = node["$ref"]
        if ref in seen:
            break
        seen.add(ref)
        try:
            node = resolve_pointer(doc, ref[1:])
        except (KeyError, IndexError, ValueError):
            return node
    return node


@dataclass(frozen=True)
class Operation:
    section: str  # "paths" or "webhooks"
    key: str  # the URL path or the webhook name
    method: str
    op: dict[str, Any]
    item: dict[str, Any]

    @property
    def pointer(self) -> str:
        return f"/{self.section}/{esc(self.key)}/{self.method}"

    @property
    def is_webhook(self) -> bool:
        return self.section == "webhooks"

    def tiers(self) -> set[str]:
        value = self.op.get("x-access-tier")
        if value is None:
            return set()
        return {value} if isinstance(value, str) else set(value)

    def parameters(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        params = [deref(doc, p) for p in (self.item.get("parameters") or [])]
        params += [deref(doc, p) for p in (self.op.get("parameters") or [])]
        return [p for p in params if isinstance(p, dict)]


def operations(doc: dict[str, Any]) -> Iterator[Operation]:
    for section in ("paths", "webhooks"):
        for key, item in (doc.get(section) or {}).items():
            if not isinstance(item, dict):
                continue
            for method in HTTP_METHODS:
                if isinstance(item.get(method), dict):
                    yield Operation(section, key, method, item[method], item)


def iter_schemas(node: Any, pointer: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node at or below the schema ``node`` (refs are not followed)."""
    if not isinstance(node, dict):
        return
    yield pointer, node
    for key in SCHEMA_KEYS:
        if isinstance(node.get(key), dict):
            yield from iter_schemas(node[key], f"{pointer}/{key}")
    for key in SCHEMA_LIST_KEYS:
        if isinstance(node.get(key), list):
            for i, sub in enumerate(node[key]):
                yield from iter_schemas(sub, f"{pointer}/{key}/{i}")
    for key in SCHEMA_MAP_KEYS:
        if isinstance(node.get(key), dict):
            for name, sub in node[key].items():
                yield from iter_schemas(sub, f"{pointer}/{key}/{esc(name)}")


def iter_media(node: Any, pointer: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Media type objects under ``node``'s ``content`` map."""
    if isinstance(node, dict) and isinstance(node.get("content"), dict):
        for mt, media in node["content"].items():
            if isinstance(media, dict):
                yield f"{pointer}/content/{esc(mt)}", media


def schema_roots(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Top-level schema positions: component schemas and every inline schema of params/headers/media."""
    for name, schema in ((doc.get("components") or {}).get("schemas") or {}).items():
        if isinstance(schema, dict):
            yield f"/components/schemas/{esc(name)}", schema

    def walk(node: Any, pointer: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("example", "examples") or k.startswith("x-"):
                    continue
                if k == "schema" and isinstance(v, dict):
                    yield f"{pointer}/schema", v
                elif k == "schemas" and pointer == "/components":
                    continue
                else:
                    yield from walk(v, f"{pointer}/{esc(k)}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from walk(v, f"{pointer}/{i}")

    yield from walk(doc, "")


def all_schemas(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for pointer, root in schema_roots(doc):
        yield from iter_schemas(root, pointer)


def refs_in(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            elif k == "discriminator" and isinstance(v, dict):
                yield from (m for m in (v.get("mapping") or {}).values() if isinstance(m, str))
            elif k not in ("example", "examples"):
                yield from refs_in(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs_in(v)


def reachable_components(doc: dict[str, Any], roots: Any | None = None) -> set[tuple[str, str]]:
    """(type, name) of every component reachable from ``roots`` (default: all but ``components``)."""
    comps = doc.get("components") or {}
    if roots is None:
        roots = {k: v for k, v in doc.items() if k != "components"}
    seen: set[tuple[str, str]] = set()
    todo = list(refs_in(roots))
    while todo:
        ref = todo.pop()
        if not ref.startswith("#/components/"):
            continue
        parts = ref[len("#/components/") :].split("/")
        if len(parts) < 2:
            continue
        key = (parts[0], unesc(parts[1]))
        if key in seen or key[1] not in (comps.get(key[0]) or {}):
            continue
        seen.add(key)
        todo.extend(refs_in(comps[key[0]][key[1]]))
    return seen
