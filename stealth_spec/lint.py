"""Our own spec lint rules: what Redocly's rules do not cover (see spec/STYLE.md, spec/EXTENSIONS.md).

Each rule is a small function with an id, registered with ``@rule``. A rule gets a ``Context`` (the bundled
document, the API profile, the source directory when linting a source root) and yields ``Finding``s.
Every finding is an error: the bar is zero findings.

Usage:
    python -m stealth_spec.lint spec/partner-api spec/pharmacy-api build/openapi/*.json
    python -m stealth_spec.lint --list-rules
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stealth_spec.bundle import BundleError, Bundler, iter_example_problems, load_yaml
from stealth_spec.walk import (
    HTTP_METHODS,
    Operation,
    all_schemas,
    deref,
    esc,
    iter_media,
    iter_schemas,
    operations,
    reachable_components,
    unesc,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_EXTENSIONS_MD = REPO / "spec" / "EXTENSIONS.md"
TIERS = ("referral", "clinical", "prescriber")
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
CONDITIONAL = re.compile(r"/(if|then|else|not|dependentSchemas)(/|$)")

PARTNER_RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-Request-Id")
RETRY_STATUSES = ("429", "503")

# Imperative verbs an operation summary may start with ("Get a referral"). Extend when a new verb is right.
SUMMARY_VERBS = frozenset(
    [
        "get",
        "list",
        "create",
        "cancel",
        "redeliver",
        "deactivate",
        "activate",
        "register",
        "submit",
        "route",
        "advance",
        "trigger",
        "refund",
        "move",
        "delete",
        "update",
        "replace",
        "set",
        "read",
        "retrieve",
        "summarize",
        "generate",
        "request",
        "receive",
        "send",
        "check",
        "verify",
        "search",
        "look",
        "fetch",
        "issue",
        "rotate",
        "revoke",
        "reset",
        "simulate",
        "record",
        "acknowledge",
        "notify",
        "approve",
        "deny",
        "reject",
        "sign",
        "fill",
        "ship",
        "deliver",
        "start",
        "stop",
        "pause",
        "resume",
        "enroll",
        "count",
        "download",
        "upload",
        "attach",
        "remove",
        "add",
        "make",
        "show",
        "return",
        "mark",
        "change",
        "view",
    ]
)


@dataclass(frozen=True)
class Finding:
    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: [{self.rule}] {self.message}"


@dataclass
class Context:
    doc: dict[str, Any]
    api: str  # "partner" or "pharmacy"
    label: str
    spec_dir: Path | None = None  # set when linting a source root
    tier: str | None = None  # set when linting a per-tier subset
    extensions: frozenset[str] = frozenset()
    root: dict[str, Any] = field(default_factory=dict)  # the source root index, when linting a source root

    def where(self, pointer: str) -> str:
        """A human location: the source file when known, then the JSON pointer inside the bundle."""
        parts = pointer.lstrip("/").split("/")
        if self.spec_dir is not None and len(parts) >= 2:
            if parts[0] in ("paths", "webhooks"):
                ref = ((self.root.get(parts[0]) or {}).get(unesc(parts[1])) or {}).get("$ref")
                if ref:
                    return f"{self.spec_dir / ref}#/{'/'.join(parts[2:])}"
            if parts[0] == "components" and len(parts) >= 3:
                candidate = self.spec_dir / "components" / parts[1] / f"{unesc(parts[2])}.yaml"
                if candidate.is_file():
                    return f"{candidate}#/{'/'.join(parts[3:])}"
        return f"{self.label}#{pointer}"

    @property
    def full(self) -> bool:
        return self.tier is None

    def catalog(self) -> dict[str, Any]:
        for _, schema in ((self.doc.get("components") or {}).get("schemas") or {}).items():
            if isinstance(schema, dict) and isinstance(schema.get("x-error-catalog"), dict):
                return schema["x-error-catalog"]
        return {}

    def error_codes(self) -> set[str]:
        for _, schema in ((self.doc.get("components") or {}).get("schemas") or {}).items():
            if isinstance(schema, dict) and isinstance(schema.get("x-error-catalog"), dict):
                return set(schema.get("enum") or [])
        return set()


RuleFn = Callable[[Context], Iterator[Finding]]


@dataclass(frozen=True)
class Rule:
    id: str
    scope: str  # "document": any bundle; "full": not tier subsets; "source": source roots only
    apis: tuple[str, ...]
    doc: str
    fn: RuleFn


RULES: dict[str, Rule] = {}


def rule(rule_id: str, scope: str = "document", apis: tuple[str, ...] = ("partner", "pharmacy")):
    def register(fn: RuleFn) -> RuleFn:
        RULES[rule_id] = Rule(rule_id, scope, apis, (fn.__doc__ or "").strip().splitlines()[0], fn)
        return fn

    return register


def _f(ctx: Context, rule_id: str, pointer: str, message: str) -> Finding:
    return Finding(rule_id, ctx.where(pointer), message)


def _path_ops(ctx: Context) -> Iterator[Operation]:
    return (o for o in operations(ctx.doc) if not o.is_webhook)


def _responses(ctx: Context, o: Operation) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for status, resp in (o.op.get("responses") or {}).items():
        target = deref(ctx.doc, resp)
        if isinstance(target, dict):
            yield str(status), f"{o.pointer}/responses/{esc(status)}", target


def _examples_of(media: dict[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if "example" in media:
        out.append(("example", media["example"]))
    for name, ex in (media.get("examples") or {}).items():
        if isinstance(ex, dict) and "value" in ex:
            out.append((f"examples/{esc(name)}", ex["value"]))
    return out


def _error_code_of(value: Any) -> str | None:
    if isinstance(value, dict):
        err = value.get("error")
        if isinstance(err, dict) and isinstance(err.get("code"), str):
            return err["code"]
        for key in ("code", "error_code"):
            if isinstance(value.get(key), str):
                return value[key]
    return None


# --- operations ----------------------------------------------------------------------------------------


@rule("operation-fields")
def operation_fields(ctx: Context) -> Iterator[Finding]:
    """operationId (camelCase), summary, description, tags (defined) and x-access-tier on every operation."""
    defined_tags = {t.get("name") for t in ctx.doc.get("tags") or [] if isinstance(t, dict)}
    for o in operations(ctx.doc):
        for key in ("operationId", "summary", "description"):
            if not isinstance(o.op.get(key), str) or not o.op[key].strip():
                yield _f(ctx, "operation-fields", o.pointer, f"missing {key}")
        op_id = o.op.get("operationId")
        if isinstance(op_id, str) and not CAMEL.match(op_id):
            yield _f(ctx, "operation-fields", o.pointer, f"operationId {op_id!r} is not camelCase")
        tags = o.op.get("tags")
        if not isinstance(tags, list) or not tags:
            yield _f(ctx, "operation-fields", o.pointer, "missing tags")
        else:
            for tag in tags:
                if tag not in defined_tags:
                    yield _f(ctx, "operation-fields", o.pointer, f"tag {tag!r} is not in the root tags list")
        if ctx.api == "partner":
            tiers = o.op.get("x-access-tier")
            if tiers is None:
                yield _f(ctx, "operation-fields", o.pointer, "missing x-access-tier")
            else:
                values = [tiers] if isinstance(tiers, str) else tiers
                if not isinstance(values, list) or not values or any(t not in TIERS for t in values):
                    yield _f(
                        ctx,
                        "operation-fields",
                        o.pointer,
                        f"x-access-tier {tiers!r} must be one of {TIERS} or a list of them",
                    )


@rule("summary-style")
def summary_style(ctx: Context) -> Iterator[Finding]:
    """Summaries are sentence case without a final period; path operations start with an imperative verb."""
    for o in operations(ctx.doc):
        summary = o.op.get("summary")
        if not isinstance(summary, str) or not summary:
            continue
        if summary.rstrip().endswith("."):
            yield _f(ctx, "summary-style", o.pointer, f"summary {summary!r} ends with a period")
        if not summary[0].isupper():
            yield _f(ctx, "summary-style", o.pointer, f"summary {summary!r} does not start with a capital")
        words = summary.split()
        title_words = [w for w in words[1:] if re.match(r"^[A-Z][a-z]+$", w)]
        if len(words) > 2 and len(title_words) == len(words) - 1:
            yield _f(ctx, "summary-style", o.pointer, f"summary {summary!r} is Title Case, not sentence case")
        if not o.is_webhook and words[0].lower() not in SUMMARY_VERBS:
            yield _f(
                ctx,
                "summary-style",
                o.pointer,
                f"summary {summary!r} does not start with an imperative verb (known: lint.SUMMARY_VERBS)",
            )


def _required_statuses(ctx: Context, o: Operation) -> set[str]:
    has_body = "requestBody" in o.op
    has_params = bool(o.parameters(ctx.doc))
    required = {"401", "403", "429", "500", "503"}
    if has_params or has_body:
        required.add("400")
    if "{" in o.key:
        required.add("404")
    if has_body:
        required |= {"413", "415"}
    return required


@rule("responses-required")
def responses_required(ctx: Context) -> Iterator[Finding]:
    """A 2xx response, 400 (params or body), 401, 403, 404 (path parameter), 413/415 (body), 429, 500, 503."""
    for o in _path_ops(ctx):
        responses = {str(s) for s in (o.op.get("responses") or {})}
        if not any(s.startswith("2") for s in responses):
            yield _f(ctx, "responses-required", o.pointer, "no success (2xx) response")
        for status in sorted(_required_statuses(ctx, o) - responses):
            yield _f(ctx, "responses-required", o.pointer, f"missing the {status} response")


def _rate_headers(ctx: Context) -> tuple[str, ...]:
    if ctx.api == "partner":
        return PARTNER_RATE_HEADERS
    names = sorted((ctx.doc.get("components") or {}).get("headers") or {})
    return tuple(n for n in names if "ratelimit" in n.lower().replace("-", "") or n.lower() == "x-request-id")


@rule("response-headers")
def response_headers(ctx: Context) -> Iterator[Finding]:
    """Rate-limit headers and X-Request-Id on every response; Retry-After on 429 and 503."""
    required = _rate_headers(ctx)
    if not required:
        yield _f(ctx, "response-headers", "/components/headers", "the API declares no rate-limit headers")
    for o in _path_ops(ctx):
        for status, pointer, resp in _responses(ctx, o):
            headers = resp.get("headers") or {}
            for name in required:
                if name not in headers:
                    yield _f(ctx, "response-headers", pointer, f"missing header {name}")
            if status in RETRY_STATUSES and "Retry-After" not in headers:
                yield _f(ctx, "response-headers", pointer, "missing header Retry-After")


def _reaches_phi(ctx: Context, schema: Any, seen: set[int] | None = None) -> bool:
    seen = seen if seen is not None else set()
    schema = deref(ctx.doc, schema)
    if not isinstance(schema, dict) or id(schema) in seen:
        return False
    seen.add(id(schema))
    for _, node in iter_schemas(schema, ""):
        if node.get("x-phi") is True:
            return True
        if "$ref" in node and node is not schema and _reaches_phi(ctx, node, seen):
            return True
    return False


@rule("phi-cache-control", apis=("partner",))
def phi_cache_control(ctx: Context) -> Iterator[Finding]:
    """Success responses of clinical/prescriber-only operations that carry PHI declare Cache-Control."""
    for o in _path_ops(ctx):
        if "referral" in o.tiers() or not o.tiers():
            continue
        for status, pointer, resp in _responses(ctx, o):
            if not status.startswith("2"):
                continue
            carries_phi = any(_reaches_phi(ctx, m.get("schema")) for _, m in iter_media(resp, pointer))
            if carries_phi and "Cache-Control" not in (resp.get("headers") or {}):
                yield _f(
                    ctx, "phi-cache-control", pointer, "response carries PHI but has no Cache-Control header"
                )


@rule("examples-present")
def examples_present(ctx: Context) -> Iterator[Finding]:
    """A named example on every request body and every success response with content."""
    for o in operations(ctx.doc):
        body = deref(ctx.doc, o.op.get("requestBody"))
        for pointer, media in iter_media(body, f"{o.pointer}/requestBody"):
            if not _examples_of(media):
                yield _f(ctx, "examples-present", pointer, "request body has no example")
        for status, pointer, resp in _responses(ctx, o):
            if status.startswith("2"):
                for mpointer, media in iter_media(resp, pointer):
                    if not _examples_of(media):
                        yield _f(ctx, "examples-present", mpointer, "success response has no example")


@rule("example-valid")
def example_valid(ctx: Context) -> Iterator[Finding]:
    """Every example validates against its schema (JSON Schema 2020-12, formats asserted)."""
    for where, message in iter_example_problems(ctx.doc):
        yield _f(ctx, "example-valid", where, message)


@rule("pagination", apis=("partner",))
def pagination(ctx: Context) -> Iterator[Finding]:
    """Lists (a success body with `pagination`) take `limit` and `cursor`, and vice versa."""
    for o in _path_ops(ctx):
        names = {p.get("name") for p in o.parameters(ctx.doc)}
        paged = False
        for status, pointer, resp in _responses(ctx, o):
            if status.startswith("2"):
                for _, media in iter_media(resp, pointer):
                    schema = deref(ctx.doc, media.get("schema"))
                    if isinstance(schema, dict) and "pagination" in (schema.get("properties") or {}):
                        paged = True
        if paged and not {"limit", "cursor"} <= names:
            yield _f(ctx, "pagination", o.pointer, "paginated list without the limit and cursor parameters")
        if not paged and {"limit", "cursor"} & names:
            yield _f(
                ctx, "pagination", o.pointer, "limit/cursor parameters but no pagination in the response"
            )


@rule("links", apis=("partner",))
def links(ctx: Context) -> Iterator[Finding]:
    """Creates (POST with 201) carry links; every link names an operationId of the document."""
    op_ids = {o.op.get("operationId") for o in operations(ctx.doc)}
    for o in _path_ops(ctx):
        for status, pointer, resp in _responses(ctx, o):
            resp_links = resp.get("links") or {}
            if o.method == "post" and status == "201" and not resp_links and ctx.full:
                yield _f(ctx, "links", pointer, "create response has no links to its reads and follow-ups")
            for name, link in resp_links.items():
                link = deref(ctx.doc, link)
                if isinstance(link, dict) and "operationId" in link and link["operationId"] not in op_ids:
                    yield _f(
                        ctx,
                        "links",
                        f"{pointer}/links/{esc(name)}",
                        f"link to unknown operationId {link['operationId']!r}",
                    )


@rule("security", apis=("partner",))
def security(ctx: Context) -> Iterator[Finding]:
    """Every operation is authenticated; clinical-only operations also require the AccessTier scheme."""
    schemes = set((ctx.doc.get("components") or {}).get("securitySchemes") or {})
    root_sec = ctx.doc.get("security")
    for o in _path_ops(ctx):
        sec = o.op.get("security", root_sec)
        if not sec:
            yield _f(ctx, "security", o.pointer, "operation has no security requirement")
            continue
        for req in sec:
            for name in req:
                if name not in schemes:
                    yield _f(ctx, "security", o.pointer, f"unknown security scheme {name!r}")
        if o.tiers() == {"clinical"} and not all("AccessTier" in req for req in sec):
            yield _f(ctx, "security", o.pointer, "clinical operation does not require the AccessTier scheme")


@rule("sandbox", apis=("partner",))
def sandbox(ctx: Context) -> Iterator[Finding]:
    """x-sandbox-only is `true` exactly on operations tagged Sandbox; x-sandbox-scenarios are well formed."""
    for o in operations(ctx.doc):
        flag = o.op.get("x-sandbox-only")
        tagged = "Sandbox" in (o.op.get("tags") or [])
        if flag is not None and flag is not True:
            yield _f(ctx, "sandbox", o.pointer, "x-sandbox-only must be true or absent")
        if tagged != (flag is True):
            yield _f(ctx, "sandbox", o.pointer, "tag Sandbox and x-sandbox-only: true go together")
        scenarios = o.op.get("x-sandbox-scenarios")
        if scenarios is None:
            continue
        pointer = f"{o.pointer}/x-sandbox-scenarios"
        body = deref(ctx.doc, o.op.get("requestBody"))
        schema = None
        for _, media in iter_media(body, ""):
            schema = media.get("schema")
        if not isinstance(scenarios, list) or not scenarios:
            yield _f(ctx, "sandbox", pointer, "x-sandbox-scenarios must be a non-empty list")
            continue
        if schema is None:
            yield _f(ctx, "sandbox", pointer, "x-sandbox-scenarios on an operation without a request body")
        names: set[str] = set()
        for i, sc in enumerate(scenarios):
            if not isinstance(sc, dict) or set(sc) != {"name", "field", "value", "outcome"}:
                yield _f(
                    ctx, "sandbox", f"{pointer}/{i}", "a scenario has exactly name, field, value, outcome"
                )
                continue
            if sc["name"] in names:
                yield _f(ctx, "sandbox", f"{pointer}/{i}", f"duplicate scenario name {sc['name']!r}")
            names.add(sc["name"])
            if schema is not None:
                prop = _pointer_property(ctx, schema, sc["field"])
                if prop is None:
                    yield _f(
                        ctx,
                        "sandbox",
                        f"{pointer}/{i}",
                        f"field {sc['field']!r} is not a JSON pointer to a request-body property",
                    )
                elif not _valid(ctx, prop, sc["value"]):
                    yield _f(
                        ctx,
                        "sandbox",
                        f"{pointer}/{i}",
                        f"value {sc['value']!r} is not valid for {sc['field']}",
                    )


def _pointer_property(ctx: Context, schema: Any, pointer: Any) -> Any:
    if not isinstance(pointer, str) or not pointer.startswith("/"):
        return None
    node = deref(ctx.doc, schema)
    for part in pointer[1:].split("/"):
        node = deref(ctx.doc, node)
        if not isinstance(node, dict):
            return None
        if part.isdigit() and isinstance(node.get("items"), dict):
            node = node["items"]
            continue
        candidates = [
            node,
            *[deref(ctx.doc, b) for b in (node.get("oneOf") or []) + (node.get("anyOf") or [])],
        ]
        found = None
        for cand in candidates:
            if isinstance(cand, dict) and unesc(part) in (cand.get("properties") or {}):
                found = cand["properties"][unesc(part)]
                break
        if found is None:  # a key of a map, e.g. /metadata/sandbox_scenario
            for cand in candidates:
                extra = cand.get("additionalProperties") if isinstance(cand, dict) else None
                if isinstance(extra, dict) or extra is True:
                    found = extra if isinstance(extra, dict) else {}
                    break
        if found is None:
            return None
        node = found
    return node


def _valid(ctx: Context, schema: Any, value: Any) -> bool:
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    uri = "urn:stealth:lint"
    registry = Registry().with_resource(uri, Resource(ctx.doc, specification=DRAFT202012))

    def rebase(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (uri + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else rebase(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rebase(v) for v in node]
        return node

    validator = Draft202012Validator(rebase(schema), registry=registry, format_checker=FormatChecker())
    return validator.is_valid(value)


@rule("path-style")
def path_style(ctx: Context) -> Iterator[Finding]:
    """URL path segments are kebab-case words or `{snake_case}` parameters (webhook names are event types)."""
    for url in ctx.doc.get("paths") or {}:
        for segment in url.strip("/").split("/"):
            if not (KEBAB.match(segment) or re.match(r"^\{[a-z][a-z0-9_]*\}$", segment)):
                yield _f(
                    ctx,
                    "path-style",
                    f"/paths/{esc(url)}",
                    f"segment {segment!r} is not kebab-case or {{snake_case}}",
                )


# --- schemas -------------------------------------------------------------------------------------------


def _documented(ctx: Context, node: dict[str, Any], key: str) -> bool:
    if key == "examples":
        if isinstance(node.get("examples"), list) and node["examples"]:
            return True
    elif isinstance(node.get(key), str) and node[key].strip():
        return True
    target = deref(ctx.doc, node) if "$ref" in node else None
    return target is not None and target is not node and _documented(ctx, target, key)


@rule("schema-docs")
def schema_docs(ctx: Context) -> Iterator[Finding]:
    """Every component schema and every property has a description and examples."""
    for name, schema in ((ctx.doc.get("components") or {}).get("schemas") or {}).items():
        pointer = f"/components/schemas/{esc(name)}"
        if isinstance(schema, dict):
            for key in ("description", "examples"):
                if not _documented(ctx, schema, key):
                    yield _f(ctx, "schema-docs", pointer, f"component schema {name} has no {key}")
    for pointer, schema in all_schemas(ctx.doc):
        if CONDITIONAL.search(pointer):
            continue  # if/then/else/dependentSchemas only refine properties documented where declared
        for prop, sub in (schema.get("properties") or {}).items():
            if not isinstance(sub, dict):
                continue
            for key in ("description", "examples"):
                if not _documented(ctx, sub, key):
                    yield _f(
                        ctx,
                        "schema-docs",
                        f"{pointer}/properties/{esc(prop)}",
                        f"property {prop} has no {key}",
                    )


# Keywords next to a property's $ref that only annotate it: the generated field keeps the component's type.
ANNOTATIONS = frozenset(
    {"description", "examples", "title", "deprecated", "readOnly", "writeOnly", "default"}
)
CONSTRAINTS = (
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
)


def _inline_model_problem(node: dict[str, Any], position: str) -> str | None:
    """Why the generator would make a class for this inline schema (its name would not be a component name)."""
    if "$ref" in node:
        siblings = set(node) - {"$ref"}
        constraining = {k for k in siblings if k not in ANNOTATIONS and not k.startswith("x-")}
        if constraining:
            return (
                f"$ref with constraining siblings {sorted(constraining)}: the generator makes a numbered copy of the"
                " component; drop the $ref (e.g. plain `type: string` + `const`) or the constraint"
            )
        if position in ("items", "additionalProperties") and siblings:
            return f"$ref in {position} with sibling keywords {sorted(siblings)} (the generator copies the component as <Name>1)"
        return None
    if isinstance(node.get("properties"), dict) and node["properties"]:
        return "inline object with properties"
    if isinstance(node.get("enum"), list) and [v for v in node["enum"] if v is not None]:
        return "inline enum"
    if position in ("items", "additionalProperties") and any(k in node for k in CONSTRAINTS):
        return f"inline constrained {position} schema"
    return None


@rule("inline-model")
def inline_model(ctx: Context) -> Iterator[Finding]:
    """Schemas that would become generated classes are components: no inline objects, enums, constrained items
    or $refs with siblings in items (generated names must equal component names, never `Error1`)."""
    component_roots = {id(s) for s in ((ctx.doc.get("components") or {}).get("schemas") or {}).values()}
    for pointer, schema in all_schemas(ctx.doc):
        if CONDITIONAL.search(pointer):
            continue  # conditional refinements of declared properties generate no class
        children: list[tuple[str, str, Any]] = []
        for prop, sub in (schema.get("properties") or {}).items():
            children.append((f"{pointer}/properties/{esc(prop)}", "property", sub))
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                children.append((f"{pointer}/{key}", key, schema[key]))
        for kw in ("oneOf", "anyOf", "allOf"):
            for i, sub in enumerate(schema.get(kw) or []):
                children.append((f"{pointer}/{kw}/{i}", kw, sub))
        for child_pointer, position, sub in children:
            if isinstance(sub, dict) and id(sub) not in component_roots:
                problem = _inline_model_problem(sub, position)
                if problem:
                    yield _f(
                        ctx,
                        "inline-model",
                        child_pointer,
                        problem if "$ref" in problem else f"{problem}: make it a component schema",
                    )


@rule("snake-case")
def snake_case(ctx: Context) -> Iterator[Finding]:
    """Property names and query/path/cookie parameter names are snake_case (header names are exempt)."""
    for pointer, schema in all_schemas(ctx.doc):
        for prop in schema.get("properties") or {}:
            if not SNAKE.match(prop):
                yield _f(
                    ctx,
                    "snake-case",
                    f"{pointer}/properties/{esc(prop)}",
                    f"property {prop!r} is not snake_case",
                )
        for req in schema.get("required") or []:
            if req not in (schema.get("properties") or {}) and "properties" in schema:
                yield _f(ctx, "snake-case", pointer, f"required {req!r} is not a declared property")
    for o in operations(ctx.doc):
        for p in o.parameters(ctx.doc):
            if p.get("in") in ("query", "path", "cookie") and not SNAKE.match(str(p.get("name"))):
                yield _f(
                    ctx,
                    "snake-case",
                    o.pointer,
                    f"{p.get('in')} parameter {p.get('name')!r} is not snake_case",
                )


def load_extensions(path: Path = DEFAULT_EXTENSIONS_MD) -> frozenset[str]:
    """The `x-` names in the first column of the table in spec/EXTENSIONS.md."""
    names = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^\|\s*`(x-[a-z0-9-]+)`\s*\|", line)
        if m:
            names.add(m.group(1))
    return frozenset(names)


def _x_keys(node: Any, pointer: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(k, str) and k.startswith("x-"):
                yield pointer, k
                continue  # an extension's value is its own business
            if k in ("example", "examples", "enum", "const", "default"):
                if k == "examples" and isinstance(v, dict):  # media-type examples: skip only the values
                    for name, ex in v.items():
                        if isinstance(ex, dict):
                            for ek in ex:
                                if isinstance(ek, str) and ek.startswith("x-"):
                                    yield f"{pointer}/examples/{esc(name)}", ek
                continue
            if k == "properties" and isinstance(v, dict):
                for name, sub in v.items():
                    yield from _x_keys(sub, f"{pointer}/properties/{esc(name)}")
                continue
            yield from _x_keys(v, f"{pointer}/{esc(k)}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _x_keys(v, f"{pointer}/{i}")


@rule("known-extensions")
def known_extensions(ctx: Context) -> Iterator[Finding]:
    """Every `x-` key is defined in spec/EXTENSIONS.md."""
    for pointer, key in _x_keys(ctx.doc, ""):
        if key not in ctx.extensions:
            yield _f(
                ctx, "known-extensions", pointer, f"extension {key} is not defined in spec/EXTENSIONS.md"
            )


@rule("phi-marks", apis=("partner",))
def phi_marks(ctx: Context) -> Iterator[Finding]:
    """`x-phi` is `true` when present, and only on schema properties and parameters."""
    for pointer, schema in all_schemas(ctx.doc):
        for prop, sub in (schema.get("properties") or {}).items():
            if isinstance(sub, dict) and "x-phi" in sub and sub["x-phi"] is not True:
                yield _f(
                    ctx, "phi-marks", f"{pointer}/properties/{esc(prop)}", "x-phi must be true (or absent)"
                )
    prop_nodes = {id(sub) for _, s in all_schemas(ctx.doc) for sub in (s.get("properties") or {}).values()}
    for pointer, schema in all_schemas(ctx.doc):
        if "x-phi" in schema and id(schema) not in prop_nodes:
            yield _f(ctx, "phi-marks", pointer, "x-phi belongs on a schema property, not on a whole schema")
    for op in operations(ctx.doc):
        for param in op.parameters(ctx.doc):
            if "x-phi" in param and param["x-phi"] is not True:
                where = f"{op.pointer}/parameters ({param.get('name')})"
                yield _f(ctx, "phi-marks", where, "x-phi must be true (or absent)")


@rule("phi-required", scope="full", apis=("partner",))
def phi_required(ctx: Context) -> Iterator[Finding]:
    """No x-phi property is required in a schema the referral tier can receive or send."""
    from stealth_spec import tiers as tiers_mod

    view = copy.deepcopy(ctx.doc)
    tiers_mod._filter_operations(view, "referral")
    try:
        tiers_mod._filter_branches(view, "referral")
    except tiers_mod.TierError as exc:
        yield _f(ctx, "phi-required", "", str(exc))
        return
    # Walk what the referral tier receives: its operations, through $refs, but not into PHI properties (the
    # referral-tier bundle drops those whole). A required PHI property met on the way cannot be dropped.
    seen: set[int] = set()
    found: list[Finding] = []

    def visit(node: Any, pointer: str) -> None:
        if isinstance(node, list):
            for i, v in enumerate(node):
                visit(v, f"{pointer}/{i}")
            return
        if not isinstance(node, dict) or id(node) in seen:
            return
        seen.add(id(node))
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            visit(deref(view, node), ref[1:])
        required = set(node.get("required") or []) if isinstance(node.get("required"), list) else set()
        for key, value in node.items():
            if key in ("example", "examples", "$ref") or key.startswith("x-"):
                continue
            if key == "properties" and isinstance(value, dict):
                for prop, sub in value.items():
                    phi = isinstance(sub, dict) and sub.get("x-phi") is True
                    if phi and prop in required:
                        found.append(
                            _f(
                                ctx,
                                "phi-required",
                                f"{pointer}/properties/{esc(prop)}",
                                f"PHI property {prop} is required in a shape the referral tier receives",
                            )
                        )
                    if not phi:
                        visit(sub, f"{pointer}/properties/{esc(prop)}")
            else:
                visit(value, f"{pointer}/{esc(key)}")

    for section in ("paths", "webhooks"):
        for key, item in (view.get(section) or {}).items():
            visit(item, f"/{section}/{esc(key)}")
    yield from found


# --- errors --------------------------------------------------------------------------------------------


@rule("error-catalog")
def error_catalog(ctx: Context) -> Iterator[Finding]:
    """The error-code enum equals the keys of its x-error-catalog; each entry has status, retryable, description."""
    found = False
    for name, schema in ((ctx.doc.get("components") or {}).get("schemas") or {}).items():
        if not isinstance(schema, dict) or "x-error-catalog" not in schema:
            continue
        found = True
        pointer = f"/components/schemas/{esc(name)}"
        catalog = schema["x-error-catalog"]
        enum = schema.get("enum") or []
        if len(enum) != len(set(enum)):
            yield _f(ctx, "error-catalog", pointer, "duplicate codes in the enum")
        for code in sorted(set(enum) - set(catalog)):
            yield _f(ctx, "error-catalog", pointer, f"code {code} is in the enum but not in x-error-catalog")
        for code in sorted(set(catalog) - set(enum)):
            yield _f(ctx, "error-catalog", pointer, f"code {code} is in x-error-catalog but not in the enum")
        for code, entry in catalog.items():
            if not isinstance(entry, dict):
                yield _f(ctx, "error-catalog", pointer, f"catalog entry {code} is not an object")
                continue
            if not isinstance(entry.get("status"), int) or not 400 <= entry["status"] <= 599:
                yield _f(ctx, "error-catalog", pointer, f"catalog entry {code} has no 4xx/5xx integer status")
            if not isinstance(entry.get("retryable"), bool):
                yield _f(ctx, "error-catalog", pointer, f"catalog entry {code} has no boolean retryable")
            if not isinstance(entry.get("description"), str) or not entry["description"]:
                yield _f(ctx, "error-catalog", pointer, f"catalog entry {code} has no description")
    if not found and ctx.api == "partner":
        yield _f(ctx, "error-catalog", "/components/schemas", "no schema carries x-error-catalog")


def _error_responses(ctx: Context) -> Iterator[tuple[Operation, str, str, dict[str, Any]]]:
    for o in _path_ops(ctx):
        for status, pointer, resp in _responses(ctx, o):
            if status[:1] in ("4", "5"):
                yield o, status, pointer, resp


@rule("error-codes")
def error_codes(ctx: Context) -> Iterator[Finding]:
    """Error responses list x-error-codes; each code is in the catalog with the response's status."""
    catalog = ctx.catalog()
    if not catalog:
        return
    for _o, status, pointer, resp in _error_responses(ctx):
        codes = resp.get("x-error-codes")
        if not isinstance(codes, list) or not codes:
            yield _f(ctx, "error-codes", pointer, f"{status} response lists no x-error-codes")
            continue
        for code in codes:
            entry = catalog.get(code)
            if entry is None:
                yield _f(ctx, "error-codes", pointer, f"x-error-codes lists unknown code {code}")
            elif str(entry.get("status")) != status:
                yield _f(
                    ctx,
                    "error-codes",
                    pointer,
                    f"code {code} has status {entry.get('status')} in the catalog but is used under {status}",
                )


@rule("error-examples")
def error_examples(ctx: Context) -> Iterator[Finding]:
    """Each x-error-codes code has a named example; every example's code is one of the response's codes."""
    if not ctx.catalog():
        return
    seen: set[int] = set()
    for _o, _status, pointer, resp in _error_responses(ctx):
        codes = resp.get("x-error-codes")
        if not isinstance(codes, list) or id(resp) in seen:
            continue
        seen.add(id(resp))
        shown: set[str] = set()
        for mpointer, media in iter_media(resp, pointer):
            for name, value in _examples_of(media):
                code = _error_code_of(value)
                if code is None:
                    yield _f(ctx, "error-examples", f"{mpointer}/{name}", "example carries no error code")
                elif code not in codes:
                    yield _f(
                        ctx,
                        "error-examples",
                        f"{mpointer}/{name}",
                        f"example code {code} is not in x-error-codes",
                    )
                else:
                    shown.add(code)
        for code in codes:
            if code not in shown:
                yield _f(ctx, "error-examples", pointer, f"no example shows code {code}")


@rule("error-code-values")
def error_code_values(ctx: Context) -> Iterator[Finding]:
    """x-validation-order, x-error-code and x-idempotency.conflict_code name codes of the catalog and the op."""
    codes = ctx.error_codes()
    if not codes:
        return
    for o in _path_ops(ctx):
        documented = {c for _, _, r in _responses(ctx, o) for c in (r.get("x-error-codes") or [])}
        order = o.op.get("x-validation-order")
        if order is not None:
            if not isinstance(order, list) or len(order) != len(set(order)):
                yield _f(
                    ctx,
                    "error-code-values",
                    f"{o.pointer}/x-validation-order",
                    "must be a list without repeats",
                )
            else:
                for code in order:
                    if code not in codes:
                        yield _f(
                            ctx,
                            "error-code-values",
                            f"{o.pointer}/x-validation-order",
                            f"unknown code {code}",
                        )
                    elif code not in documented:
                        yield _f(
                            ctx,
                            "error-code-values",
                            f"{o.pointer}/x-validation-order",
                            f"code {code} is in no x-error-codes of this operation's responses",
                        )
        idem = o.op.get("x-idempotency")
        if idem is not None:
            if not isinstance(idem, dict) or set(idem) != {"key", "replay_status", "conflict_code"}:
                yield _f(
                    ctx,
                    "error-code-values",
                    f"{o.pointer}/x-idempotency",
                    "x-idempotency has exactly key, replay_status, conflict_code",
                )
            elif idem["conflict_code"] not in codes:
                yield _f(
                    ctx,
                    "error-code-values",
                    f"{o.pointer}/x-idempotency",
                    f"unknown conflict_code {idem['conflict_code']}",
                )
    for pointer, schema in all_schemas(ctx.doc):
        for prop, sub in (schema.get("properties") or {}).items():
            if isinstance(sub, dict) and "x-error-code" in sub and sub["x-error-code"] not in codes:
                yield _f(
                    ctx,
                    "error-code-values",
                    f"{pointer}/properties/{esc(prop)}",
                    f"x-error-code {sub['x-error-code']} is not an ErrorCode value",
                )


# --- lifecycles ----------------------------------------------------------------------------------------


def _enum_of(ctx: Context, schema: Any) -> list[Any] | None:
    schema = deref(ctx.doc, schema)
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("enum"), list):
        return [v for v in schema["enum"] if v is not None]
    for kw in ("oneOf", "anyOf"):
        for branch in schema.get(kw) or []:
            values = _enum_of(ctx, branch)
            if values:
                return values
    return None


@rule("lifecycle")
def lifecycle(ctx: Context) -> Iterator[Finding]:
    """x-lifecycle: states equal the status enum, transitions use known states, terminals have no way out,
    every event names a webhook, every state is reachable from the initial state."""
    webhooks = set(ctx.doc.get("webhooks") or {})
    for pointer, schema in all_schemas(ctx.doc):
        lc = schema.get("x-lifecycle")
        if lc is None:
            continue
        p = f"{pointer}/x-lifecycle"
        keys = {"name", "property", "initial", "terminal", "states", "transitions"}
        if not isinstance(lc, dict) or not keys <= set(lc):
            yield _f(ctx, "lifecycle", p, f"x-lifecycle needs {sorted(keys)}")
            continue
        states = lc["states"] if isinstance(lc["states"], dict) else {}
        prop = (schema.get("properties") or {}).get(lc["property"])
        if prop is None:
            yield _f(ctx, "lifecycle", p, f"property {lc['property']!r} is not a property of the schema")
        else:
            enum = _enum_of(ctx, prop)
            if enum is None:
                yield _f(ctx, "lifecycle", p, f"property {lc['property']!r} has no enum")
            else:
                for s in sorted(set(enum) - set(states)):
                    yield _f(ctx, "lifecycle", p, f"status {s!r} of the enum is not a state")
                for s in sorted(set(states) - set(enum)):
                    yield _f(ctx, "lifecycle", p, f"state {s!r} is not in the status enum")
        initial = lc["initial"]
        initials = [initial] if isinstance(initial, str) else initial if isinstance(initial, list) else []
        for s in initials:
            if s not in states:
                yield _f(ctx, "lifecycle", p, f"initial state {s!r} is not a state")
        terminal = lc["terminal"] if isinstance(lc["terminal"], list) else []
        for s in terminal:
            if s not in states:
                yield _f(ctx, "lifecycle", p, f"terminal state {s!r} is not a state")
        graph: dict[str, set[str]] = {}
        for i, t in enumerate(lc["transitions"] if isinstance(lc["transitions"], list) else []):
            tp = f"{p}/transitions/{i}"
            if not isinstance(t, dict) or "from" not in t or "to" not in t:
                yield _f(ctx, "lifecycle", tp, "a transition needs from and to")
                continue
            sources = t["from"] if isinstance(t["from"], list) else [t["from"]]
            for s in sources:
                if s not in states:
                    yield _f(ctx, "lifecycle", tp, f"from state {s!r} is not a state")
                if s in terminal:
                    yield _f(ctx, "lifecycle", tp, f"terminal state {s!r} has an outgoing transition")
                graph.setdefault(s, set()).add(t["to"])
            if t["to"] not in states:
                yield _f(ctx, "lifecycle", tp, f"to state {t['to']!r} is not a state")
            event = t.get("event")
            if event is not None and ctx.full and event not in webhooks:
                yield _f(ctx, "lifecycle", tp, f"event {event!r} is not a webhook of this document")
        seen = set(initials)
        todo = list(initials)
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        for s in sorted(set(states) - seen):
            yield _f(ctx, "lifecycle", p, f"state {s!r} cannot be reached from the initial state")
        for s in sorted(set(states) - set(terminal) - set(graph)):
            yield _f(ctx, "lifecycle", p, f"non-terminal state {s!r} has no outgoing transition")


# --- components and files ------------------------------------------------------------------------------


@rule("no-unused-components", scope="full")
def no_unused_components(ctx: Context) -> Iterator[Finding]:
    """Every component is reachable from a path or webhook (security schemes: named by a requirement)."""
    reach = reachable_components(ctx.doc)
    for ctype, entries in (ctx.doc.get("components") or {}).items():
        if ctype == "securitySchemes":
            continue
        for name in entries or {}:
            if (ctype, name) not in reach:
                yield _f(
                    ctx,
                    "no-unused-components",
                    f"/components/{ctype}/{esc(name)}",
                    f"component {ctype}/{name} is not referenced by any path or webhook",
                )


@rule("component-files", scope="source")
def component_files(ctx: Context) -> Iterator[Finding]:
    """Every file under components/<type>/ is registered in the root index under its file name."""
    assert ctx.spec_dir is not None
    registered = ctx.root.get("components") or {}
    for path in sorted((ctx.spec_dir / "components").glob("*/*")):
        ctype, name = path.parent.name, path.stem
        if path.suffix != ".yaml":
            yield Finding("component-files", str(path), "component files end in .yaml")
            continue
        entry = (registered.get(ctype) or {}).get(name)
        if entry is None:
            yield Finding(
                "component-files", str(path), f"not registered in the root as components/{ctype}/{name}"
            )
        elif isinstance(entry, dict) and entry.get("$ref") != f"components/{ctype}/{path.name}":
            yield Finding(
                "component-files", str(path), f"root registers {ctype}/{name} as {entry.get('$ref')!r}"
            )
    for ctype, entries in registered.items():
        if ctype == "securitySchemes":
            continue
        for name, entry in (entries or {}).items():
            if isinstance(entry, dict) and "$ref" in entry and not (ctx.spec_dir / entry["$ref"]).is_file():
                yield Finding(
                    "component-files",
                    str(ctx.spec_dir / "openapi.yaml"),
                    f"components/{ctype}/{name} points at missing {entry['$ref']}",
                )


def path_file_name(url: str) -> str:
    return "paths/" + url.lstrip("/").replace("/", "_") + ".yaml"


@rule("file-names", scope="source")
def file_names(ctx: Context) -> Iterator[Finding]:
    """Path files are named after the URL, webhook files after the event; no file is left out of the root."""
    assert ctx.spec_dir is not None
    root_file = str(ctx.spec_dir / "openapi.yaml")
    listed: set[str] = set()
    for url, item in (ctx.root.get("paths") or {}).items():
        ref = (item or {}).get("$ref")
        if ref is None:
            yield Finding("file-names", root_file, f"path {url} is inline; the root is an index of $refs")
            continue
        listed.add(ref)
        if ref != path_file_name(url):
            yield Finding(
                "file-names", root_file, f"path {url} should be in {path_file_name(url)}, not {ref}"
            )
    for name, item in (ctx.root.get("webhooks") or {}).items():
        ref = (item or {}).get("$ref")
        if ref is None:
            yield Finding("file-names", root_file, f"webhook {name} is inline; the root is an index of $refs")
            continue
        listed.add(ref)
        if ref != f"webhooks/{name}.yaml":
            yield Finding(
                "file-names", root_file, f"webhook {name} should be in webhooks/{name}.yaml, not {ref}"
            )
    for sub in ("paths", "webhooks"):
        for path in sorted((ctx.spec_dir / sub).glob("*")):
            if f"{sub}/{path.name}" not in listed:
                yield Finding("file-names", str(path), "file is not listed in the root index")
    for key in ("paths", "webhooks"):
        for url, item in (ctx.root.get(key) or {}).items():
            if isinstance(item, dict) and set(item) - {"$ref"}:
                yield Finding("file-names", root_file, f"{key} entry {url} has keys beside $ref")


# --- driver --------------------------------------------------------------------------------------------


def detect_api(doc: dict[str, Any]) -> str:
    paths = list(doc.get("paths") or {})
    if any(p.startswith("/partner") for p in paths) or "Stealth Health Partner API" in str(
        (doc.get("info") or {}).get("title", "")
    ):
        return "partner"
    return "pharmacy"


def run_rules(ctx: Context, only: set[str] | None = None) -> list[Finding]:
    findings: list[Finding] = []
    for r in RULES.values():
        if only is not None and r.id not in only:
            continue
        if ctx.api not in r.apis:
            continue
        if r.scope == "source" and ctx.spec_dir is None:
            continue
        if r.scope == "full" and not ctx.full:
            continue
        findings.extend(r.fn(ctx))
    return findings


def lint_source(
    spec_dir: Path, extensions: frozenset[str], allow_missing: bool = False, only: set[str] | None = None
) -> list[Finding]:
    root_file = spec_dir / "openapi.yaml"
    if not root_file.is_file():
        return [Finding("bundle", str(root_file), "root index does not exist")]
    root = load_yaml(root_file)
    bundler = Bundler(root_file, allow_missing=allow_missing)
    try:
        doc = bundler.bundle()
    except BundleError as exc:
        return [Finding("bundle", str(spec_dir), str(exc))]
    ctx = Context(
        doc=doc, api=detect_api(doc), label=str(spec_dir), spec_dir=spec_dir, extensions=extensions, root=root
    )
    return run_rules(ctx, only)


def lint_document(path: Path, extensions: frozenset[str], only: set[str] | None = None) -> list[Finding]:
    text = path.read_text(encoding="utf-8")
    doc = (
        json.loads(text)
        if path.suffix == ".json"
        else yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    )
    m = re.search(r"\.(referral|clinical|prescriber)\.(json|yaml)$", path.name)
    ctx = Context(
        doc=doc, api=detect_api(doc), label=str(path), tier=m.group(1) if m else None, extensions=extensions
    )
    return run_rules(ctx, only)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Spec lint: our own rules (see --list-rules).")
    parser.add_argument(
        "targets", nargs="*", type=Path, help="source roots (directories) or bundled documents"
    )
    parser.add_argument("--extensions", type=Path, default=DEFAULT_EXTENSIONS_MD)
    parser.add_argument("--allow-missing", action="store_true", help="skip missing path/webhook files")
    parser.add_argument("--rule", action="append", help="run only this rule (repeatable)")
    parser.add_argument("--list-rules", action="store_true")
    args = parser.parse_args(argv)
    if args.list_rules:
        for r in RULES.values():
            print(f"{r.id:22} [{r.scope}; {','.join(r.apis)}] {r.doc}")
        return 0
    extensions = load_extensions(args.extensions)
    only = set(args.rule) if args.rule else None
    total = 0
    for target in args.targets:
        if target.is_dir():
            findings = lint_source(target, extensions, args.allow_missing, only)
        else:
            findings = lint_document(target, extensions, only)
        for finding in findings:
            print(finding)
        total += len(findings)
        print(f"{target}: {len(findings)} finding(s)", file=sys.stderr)
    return 1 if total else 0


__all__ = ["HTTP_METHODS", "RULES", "Context", "Finding", "lint_document", "lint_source", "main", "run_rules"]

if __name__ == "__main__":
    sys.exit(main())
