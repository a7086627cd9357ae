"""Per-tier subsets of the bundled partner API: only what a tier may call and receive.

For a tier ``T`` (``referral``, ``clinical`` or ``prescriber``), starting from the full bundle:

1. Keep the operations and webhooks whose ``x-access-tier`` includes ``T`` or ``referral`` (the referral
   surface is part of every tier); drop every ``x-sandbox-only`` operation; drop path items left empty.
2. Drop ``oneOf``/``anyOf`` branches whose schema-level ``x-access-tier`` (on the branch, or on the component
   it ``$ref``s) excludes ``T``; a ``oneOf``/``anyOf`` left with one branch collapses into that branch, and
   ``discriminator.mapping`` entries of dropped branches go too.
3. Referral tier only: remove every property marked ``x-phi: true`` (and its name from ``required``), and
   every optional parameter marked ``x-phi: true`` (a referral-tier partner never holds such a value).
4. Examples follow the schemas: in the referral tier, the keys of removed PHI properties are stripped from
   every example (media-type and schema-level), walking the example alongside its schema. Any example that
   still does not validate against the subset's schema (it showed a shape of another tier) is dropped. A
   request body or success response left with no example is an error: the spec must add one for the tier.
5. ``links`` to operations outside the subset are dropped, then unreferenced components (and tags no
   operation uses, and security schemes no requirement names) are pruned until nothing changes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from stealth_spec.walk import deref, nodes

TIERS = ("referral", "clinical", "prescriber")
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class TierError(Exception):
    """The subset cannot be made valid (for example a body left without any example)."""


def access_tiers(node: dict[str, Any]) -> set[str] | None:
    """The tiers named by ``x-access-tier`` (a string or a list), or None when absent."""
    value = node.get("x-access-tier")
    if value is None:
        return None
    return {value} if isinstance(value, str) else set(value)


def op_in_tier(op: dict[str, Any], tier: str) -> bool:
    if op.get("x-sandbox-only") is True:
        return False
    tiers = access_tiers(op) or set()
    return tier in tiers or "referral" in tiers


def _branch_tiers(doc: dict[str, Any], branch: Any) -> set[str] | None:
    if not isinstance(branch, dict):
        return None
    own = access_tiers(branch)
    if own is not None:
        return own
    target = deref(doc, branch)
    return access_tiers(target) if isinstance(target, dict) else None


def _filter_operations(doc: dict[str, Any], tier: str) -> None:
    for section in ("paths", "webhooks"):
        items = doc.get(section) or {}
        for key in list(items):
            item = items[key]
            for method in HTTP_METHODS:
                if method in item and not op_in_tier(item[method], tier):
                    del item[method]
            if not any(m in item for m in HTTP_METHODS):
                del items[key]
        if section in doc and not items and section == "webhooks":
            del doc[section]


def _filter_branches(doc: dict[str, Any], tier: str) -> None:
    # Decide every branch against the unmodified document first, then rewrite.
    changed = True
    while changed:
        changed = False
        for node in list(nodes(doc)):
            for kw in ("oneOf", "anyOf"):
                branches = node.get(kw)
                if not isinstance(branches, list) or not all(isinstance(b, dict) for b in branches):
                    continue
                keep = [b for b in branches if (t := _branch_tiers(doc, b)) is None or tier in t]
                if len(keep) == len(branches) and len(keep) != 1:
                    continue
                if not keep:
                    raise TierError(f"every {kw} branch excludes tier {tier}: {branches!r:.200}")
                dropped_refs = {b.get("$ref") for b in branches if b not in keep}
                disc = node.get("discriminator")
                if isinstance(disc, dict) and isinstance(disc.get("mapping"), dict):
                    disc["mapping"] = {k: v for k, v in disc["mapping"].items() if v not in dropped_refs}
                if len(keep) == 1:
                    del node[kw]
                    node.pop("discriminator", None)
                    only = keep[0]
                    for k, v in only.items():
                        if k not in node or k == "$ref":
                            node[k] = v
                else:
                    node[kw] = keep
                changed = True


def _strip_phi(doc: dict[str, Any]) -> dict[int, set[str]]:
    """Remove ``x-phi`` properties; return, per schema node id, the names removed from it."""
    removed: dict[int, set[str]] = {}
    for node in nodes(doc):
        props = node.get("properties")
        if not isinstance(props, dict):
            continue
        phi = {name for name, sub in props.items() if isinstance(sub, dict) and sub.get("x-phi") is True}
        if not phi:
            continue
        node["properties"] = {k: v for k, v in props.items() if k not in phi}
        if isinstance(node.get("required"), list):
            node["required"] = [r for r in node["required"] if r not in phi]
            if not node["required"]:
                del node["required"]
        removed[id(node)] = phi
    return removed


def _strip_phi_parameters(doc: dict[str, Any]) -> None:
    """Remove optional parameters marked ``x-phi`` from every operation (a required one is an error)."""
    for path, item in (doc.get("paths") or {}).items():
        holders = [item] + [item[m] for m in HTTP_METHODS if isinstance(item.get(m), dict)]
        for holder in holders:
            params = holder.get("parameters")
            if not isinstance(params, list):
                continue
            keep = []
            for param in params:
                target = deref(doc, param)
                if isinstance(target, dict) and target.get("x-phi") is True:
                    if target.get("required") is True:
                        raise TierError(
                            f"{path}: required PHI parameter {target.get('name')} in the referral tier"
                        )
                    continue
                keep.append(param)
            if keep:
                holder["parameters"] = keep
            else:
                del holder["parameters"]


def _strip_example(
    doc: dict[str, Any], value: Any, schema: Any, removed: dict[int, set[str]], depth: int = 0
) -> Any:
    """Return ``value`` without the keys removed from ``schema`` (recursively)."""
    if depth > 64 or not isinstance(schema, dict):
        return value
    schema = deref(doc, schema)
    if not isinstance(schema, dict):
        return value
    for kw in ("oneOf", "anyOf", "allOf"):
        if isinstance(schema.get(kw), list):
            for branch in schema[kw]:
                value = _strip_example(doc, value, branch, removed, depth + 1)
    if isinstance(value, dict):
        gone = removed.get(id(schema), set())
        value = {k: v for k, v in value.items() if k not in gone}
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        out = {}
        for k, v in value.items():
            if k in props:
                out[k] = _strip_example(doc, v, props[k], removed, depth + 1)
            elif isinstance(extra, dict):
                out[k] = _strip_example(doc, v, extra, removed, depth + 1)
            else:
                out[k] = v
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_strip_example(doc, v, schema["items"], removed, depth + 1) for v in value]
    return value


def _validator(doc: dict[str, Any]):
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    uri = "urn:stealth:tier"
    registry = Registry().with_resource(uri, Resource(doc, specification=DRAFT202012))
    checker = FormatChecker()

    def is_valid(schema: dict[str, Any], value: Any) -> bool:
        validator = Draft202012Validator(_rebase(schema, uri), registry=registry, format_checker=checker)
        return validator.is_valid(value)

    return is_valid


def _rebase(node: Any, uri: str) -> Any:
    """Make ``#/...`` refs of an extracted schema point into the registered document."""
    if isinstance(node, dict):
        return {
            k: (f"{uri}{v}" if k == "$ref" and isinstance(v, str) and v.startswith("#") else _rebase(v, uri))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v, uri) for v in node]
    return node


def _fix_examples(doc: dict[str, Any], tier: str, removed: dict[int, set[str]]) -> list[str]:
    """Strip removed properties from examples, drop examples invalid in the subset; return errors."""
    is_valid = _validator(doc)
    errors: list[str] = []

    def media_types(where: str, content: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        if isinstance(content, dict):
            for mt, media in content.items():
                if isinstance(media, dict) and isinstance(media.get("schema"), dict):
                    yield f"{where} {mt}", media

    def fix_media(where: str, media: dict[str, Any], must_keep: bool) -> None:
        schema = media["schema"]
        if "example" in media:
            media["example"] = _strip_example(doc, media["example"], schema, removed)
            if not is_valid(schema, media["example"]):
                del media["example"]
        examples = media.get("examples")
        if isinstance(examples, dict):
            for name in list(examples):
                ex = examples[name]
                if not isinstance(ex, dict) or "value" not in ex:
                    continue
                ex["value"] = _strip_example(doc, ex["value"], schema, removed)
                if not is_valid(schema, ex["value"]):
                    del examples[name]
            if not examples:
                del media["examples"]
        if must_keep and "example" not in media and "examples" not in media:
            errors.append(f"{tier}: {where}: no example is valid for this tier; add one")

    def fix_operation(where: str, op: dict[str, Any]) -> None:
        body = deref(doc, op.get("requestBody"))
        if isinstance(body, dict):
            for w, media in media_types(f"{where} requestBody", body.get("content")):
                fix_media(w, media, must_keep=True)
        for status, resp in (op.get("responses") or {}).items():
            if isinstance(resp, dict) and "$ref" in resp:
                continue  # shared responses are fixed once, under components
            if isinstance(resp, dict):
                success = str(status).startswith("2")
                for w, media in media_types(f"{where} {status}", resp.get("content")):
                    fix_media(w, media, must_keep=success)

    for section in ("paths", "webhooks"):
        for key, item in (doc.get(section) or {}).items():
            for method in HTTP_METHODS:
                if isinstance(item.get(method), dict):
                    fix_operation(f"{section} {key} {method}", item[method])
    comps = doc.get("components") or {}
    for name, resp in (comps.get("responses") or {}).items():
        for w, media in media_types(f"components/responses/{name}", resp.get("content")):
            fix_media(w, media, must_keep=False)
    for name, body in (comps.get("requestBodies") or {}).items():
        for w, media in media_types(f"components/requestBodies/{name}", body.get("content")):
            fix_media(w, media, must_keep=True)

    # Schema-level examples (every schema node with an `examples` list).
    def walk_schemas(node: Any, in_schema: bool) -> None:
        if isinstance(node, dict):
            if in_schema and isinstance(node.get("examples"), list):
                kept = []
                for ex in node["examples"]:
                    ex = _strip_example(doc, ex, node, removed)
                    if is_valid(node, ex):
                        kept.append(ex)
                if kept:
                    node["examples"] = kept
                else:
                    del node["examples"]
            for k, v in node.items():
                if k == "properties" and isinstance(v, dict):
                    for sub in v.values():
                        walk_schemas(sub, True)
                elif k in (
                    "schema",
                    "items",
                    "additionalProperties",
                    "not",
                    "if",
                    "then",
                    "else",
                    "contains",
                ):
                    walk_schemas(v, True)
                elif k in ("oneOf", "anyOf", "allOf", "prefixItems") and isinstance(v, list):
                    for sub in v:
                        walk_schemas(sub, True)
                elif k == "schemas" and isinstance(v, dict):
                    for sub in v.values():
                        walk_schemas(sub, True)
                elif k not in ("examples", "example", "x-lifecycle", "x-error-catalog", "enum", "const"):
                    walk_schemas(v, in_schema and k in ("$defs",))
        elif isinstance(node, list):
            for v in node:
                walk_schemas(v, in_schema)

    walk_schemas(doc, False)
    return errors


def _drop_links(doc: dict[str, Any]) -> None:
    op_ids = {
        item[m]["operationId"]
        for section in ("paths", "webhooks")
        for item in (doc.get(section) or {}).values()
        for m in HTTP_METHODS
        if isinstance(item.get(m), dict) and "operationId" in item[m]
    }
    for node in nodes(doc):
        links = node.get("links")
        if isinstance(links, dict) and all(isinstance(v, dict) for v in links.values()):
            kept = {k: v for k, v in links.items() if "operationId" not in v or v["operationId"] in op_ids}
            if kept:
                node["links"] = kept
            else:
                del node["links"]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            elif k == "discriminator" and isinstance(v, dict):
                yield from (m for m in (v.get("mapping") or {}).values() if isinstance(m, str))
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def prune_components(doc: dict[str, Any]) -> None:
    """Remove components no path, webhook or kept component references (transitively)."""
    comps = doc.get("components") or {}
    roots = {k: v for k, v in doc.items() if k != "components"}
    reachable: set[tuple[str, str]] = set()
    todo = list(_refs(roots))
    while todo:
        ref = todo.pop()
        if not ref.startswith("#/components/"):
            continue
        parts = ref[len("#/components/") :].split("/")
        if len(parts) < 2:
            continue
        key = (parts[0], parts[1].replace("~1", "/").replace("~0", "~"))
        if key in reachable or key[1] not in (comps.get(key[0]) or {}):
            continue
        reachable.add(key)
        todo.extend(_refs(comps[key[0]][key[1]]))
    used_schemes = {
        name
        for node in nodes(roots)
        for req in (node.get("security") or [] if isinstance(node.get("security"), list) else [])
        if isinstance(req, dict)
        for name in req
    }
    for ctype in list(comps):
        if ctype == "securitySchemes":
            comps[ctype] = {k: v for k, v in comps[ctype].items() if k in used_schemes}
        else:
            comps[ctype] = {k: v for k, v in comps[ctype].items() if (ctype, k) in reachable}
        if not comps[ctype]:
            del comps[ctype]


def _prune_tags(doc: dict[str, Any]) -> None:
    used = {
        tag
        for section in ("paths", "webhooks")
        for item in (doc.get(section) or {}).values()
        for m in HTTP_METHODS
        if isinstance(item.get(m), dict)
        for tag in item[m].get("tags") or []
    }
    if isinstance(doc.get("tags"), list):
        doc["tags"] = [t for t in doc["tags"] if t.get("name") in used]


def tier_subset(bundle: dict[str, Any], tier: str) -> dict[str, Any]:
    """Return the subset of ``bundle`` that partners of ``tier`` may call and receive."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}; expected one of {TIERS}")
    doc = copy.deepcopy(bundle)
    info = doc.setdefault("info", {})
    info["title"] = f"{info.get('title', 'API')} ({tier} tier)"
    info["description"] = (
        f"The {tier}-tier subset of the API: only the operations and webhooks a {tier}-tier partner may call "
        "and receive, sandbox-only operations left out"
        + (", and no PHI property anywhere" if tier == "referral" else "")
        + ".\n\n"
        + str(info.get("description", ""))
    )
    _filter_operations(doc, tier)
    _filter_branches(doc, tier)
    removed = _strip_phi(doc) if tier == "referral" else {}
    if tier == "referral":
        _strip_phi_parameters(doc)
    _drop_links(doc)
    prune_components(doc)
    errors = _fix_examples(doc, tier, removed)
    if errors:
        raise TierError("\n".join(errors))
    _prune_tags(doc)
    return doc
