"""The contract as the conformance suite reads it: operations, tiers, error codes, PHI marks, lifecycles, webhooks.

Loaded from a bundled OpenAPI 3.1 document (JSON or YAML, a file or a URL) whose refs are all internal
(``#/components/...``), as ``stealth_spec.bundle`` writes them.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from stealth_spec.walk import nodes

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TIERS = ("referral", "clinical", "prescriber")
SPEC_URI = "urn:stealth-conformance:spec"

# Names that are PHI whatever the spec says about them when they appear where the schema does not declare them
# (an unknown extra property named like a PHI field is treated as a leak).
HEURISTIC_PHI_NAMES = frozenset(
    {
        "first_name",
        "last_name",
        "name",
        "full_name",
        "dob",
        "date_of_birth",
        "gender",
        "sex",
        "email",
        "phone",
        "address",
        "street",
        "line1",
        "line2",
        "postal_code",
        "zip",
        "ssn",
        "tracking_number",
        "shipping_label",
        "label_url",
        "intake_answers",
        "intake_responses",
        "answers",
        "responses",
        "medications",
        "medication",
        "dosage",
        "dosage_instructions",
        "diagnosis_codes",
        "notes",
        "doctor_notes",
        "allergies",
        "symptoms",
        "conditions",
        "prescription",
        "patient",
        "patient_snapshot",
        "messages",
        "body",
        "last4",
        "patient_email",
        "patient_id",
        "appointment_id",
        "prescriber",
        "dea_number",
        "npi",
        "age",
    }
)


def load_document(location: str | Path) -> dict[str, Any]:
    """Read a bundle from a path or an http(s) URL (JSON or YAML)."""
    loc = str(location)
    if loc.startswith(("http://", "https://")):
        resp = httpx.get(loc, timeout=30)
        resp.raise_for_status()
        text = resp.text
    else:
        text = Path(loc).read_text(encoding="utf-8")
    doc = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    if not isinstance(doc, dict) or "openapi" not in doc:
        raise ValueError(f"{loc}: not an OpenAPI document")
    return doc


def access_tiers(node: dict[str, Any]) -> set[str]:
    value = node.get("x-access-tier")
    if value is None:
        return set()
    return {value} if isinstance(value, str) else set(value)


@dataclass
class Operation:
    method: str  # upper case
    path: str
    operation_id: str
    tiers: set[str]
    sandbox_only: bool
    raw: dict[str, Any]
    parameters: list[dict[str, Any]]
    spec: Spec = field(repr=False)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def writes(self) -> bool:
        return self.method not in READ_METHODS

    @property
    def path_params(self) -> list[dict[str, Any]]:
        return [p for p in self.parameters if p.get("in") == "path"]

    @property
    def query_params(self) -> list[dict[str, Any]]:
        return [p for p in self.parameters if p.get("in") == "query"]

    def param(self, name: str) -> dict[str, Any] | None:
        return next((p for p in self.parameters if p.get("name") == name), None)

    def allowed_for(self, tier: str) -> bool:
        return "referral" in self.tiers or tier in self.tiers

    @property
    def needs_access_tier_header(self) -> bool:
        return "clinical" in self.tiers and "referral" not in self.tiers

    def response(self, status: int | str) -> dict[str, Any] | None:
        responses = self.raw.get("responses") or {}
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in responses:
                return self.spec.deref(responses[key])
        return None

    def response_schema(self, status: int | str) -> dict[str, Any] | None:
        resp = self.response(status)
        if not resp:
            return None
        content = resp.get("content") or {}
        media = content.get("application/json") or next(iter(content.values()), None)
        if not media:
            return None
        return media.get("schema")

    def documented_statuses(self) -> set[str]:
        return set((self.raw.get("responses") or {}).keys())

    def error_codes(self, status: int | str) -> list[str]:
        resp = self.response(status)
        return list((resp or {}).get("x-error-codes") or [])

    def all_error_codes(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for status in self.documented_statuses():
            resp = self.response(status) or {}
            if resp.get("x-error-codes"):
                out[status] = list(resp["x-error-codes"])
        return out

    def request_schema(self) -> dict[str, Any] | None:
        body = self.spec.deref(self.raw.get("requestBody") or {})
        media = (body.get("content") or {}).get("application/json")
        return (media or {}).get("schema")

    def request_example(self) -> Any:
        """The first named example of the JSON request body (or the schema's first example), deep-copied."""
        examples = self.request_examples()
        return examples[0] if examples else None

    def request_examples(self) -> list[Any]:
        """Every example of the JSON request body (named ones first), deep-copied."""
        body = self.spec.deref(self.raw.get("requestBody") or {})
        media = (body.get("content") or {}).get("application/json") or {}
        out = []
        for ex in (media.get("examples") or {}).values():
            ex = self.spec.deref(ex)
            if "value" in ex:
                out.append(copy.deepcopy(ex["value"]))
        if "example" in media:
            out.append(copy.deepcopy(media["example"]))
        schema = self.spec.deref(media.get("schema") or {})
        out += [copy.deepcopy(x) for x in schema.get("examples") or []]
        return out

    @property
    def idempotency(self) -> dict[str, Any] | None:
        return self.raw.get("x-idempotency")

    @property
    def success_status(self) -> int | None:
        codes = sorted(int(s) for s in self.documented_statuses() if s.isdigit() and s.startswith("2"))
        return codes[0] if codes else None

    def path_regex(self) -> re.Pattern[str]:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(self.path))
        return re.compile(f"^{pattern}$")


@dataclass
class Lifecycle:
    name: str
    property: str
    initial: list[str]  # x-lifecycle `initial` may be one state or a list of them
    terminal: set[str]
    states: set[str]
    transitions: set[tuple[str, str]]
    events: dict[str, str]  # event type -> target state
    schema_name: str

    def legal(self, a: str, b: str) -> bool:
        return a == b or (a, b) in self.transitions

    def reachable(self, a: str, b: str) -> bool:
        if a == b:
            return True
        seen, todo = {a}, [a]
        while todo:
            cur = todo.pop()
            for x, y in self.transitions:
                if x == cur and y not in seen:
                    if y == b:
                        return True
                    seen.add(y)
                    todo.append(y)
        return False


class Spec:
    def __init__(self, doc: dict[str, Any], full: dict[str, Any] | None = None, location: str = "") -> None:
        self.doc = doc
        self.location = location
        # PHI marks and lifecycles come from the full document when the operations come from a tier subset
        # (the referral subset has its x-phi properties removed).
        self.full = full or doc
        self._full_spec: Spec | None = None
        self.operations: list[Operation] = list(self._operations())
        self.by_id = {op.operation_id: op for op in self.operations}
        self.error_catalog: dict[str, dict[str, Any]] = self._error_catalog()
        self.phi_names, self.non_phi_names = self._phi_names()
        self.lifecycles: list[Lifecycle] = self._lifecycles()
        self._rebased = _rebase(copy.deepcopy(self.full), SPEC_URI)
        self._registry = Registry().with_resource(
            SPEC_URI, Resource.from_contents(self._rebased, default_specification=DRAFT202012)
        )

    # ---- loading ------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, location: str | Path, tier: str | None = None) -> Spec:
        doc = load_document(location)
        if tier:
            return cls(subset_for_tier(doc, tier), full=doc, location=str(location))
        return cls(doc, location=str(location))

    def deref(self, node: Any, doc: dict[str, Any] | None = None) -> Any:
        doc = doc or self.doc
        seen: set[str] = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
            ref = node["$ref"]
            if ref in seen:
                break
            seen.add(ref)
            target: Any = doc
            try:
                for part in ref[2:].split("/"):
                    target = target[part.replace("~1", "/").replace("~0", "~")]
            except (KeyError, TypeError):
                if doc is not self.full:
                    return self.deref(node, self.full)
                raise
            node = target
        return node

    def _operations(self) -> Iterator[Operation]:
        for path, item in (self.doc.get("paths") or {}).items():
            item = self.deref(item)
            common = [self.deref(p) for p in item.get("parameters") or []]
            for method in HTTP_METHODS:
                op = item.get(method)
                if not isinstance(op, dict):
                    continue
                params = {(p["name"], p["in"]): p for p in common}
                for p in op.get("parameters") or []:
                    p = self.deref(p)
                    params[(p["name"], p["in"])] = p
                yield Operation(
                    method=method.upper(),
                    path=path,
                    operation_id=op.get("operationId", f"{method} {path}"),
                    tiers=access_tiers(op) or {"referral"},
                    sandbox_only=op.get("x-sandbox-only") is True,
                    raw=op,
                    parameters=list(params.values()),
                    spec=self,
                )

    def _error_catalog(self) -> dict[str, dict[str, Any]]:
        schemas = (self.full.get("components") or {}).get("schemas") or {}
        for schema in schemas.values():
            if isinstance(schema, dict) and "x-error-catalog" in schema:
                return dict(schema["x-error-catalog"])
        return {}

    def _phi_names(self) -> tuple[set[str], set[str]]:
        phi: set[str] = set()
        non: set[str] = set()
        for node in nodes(self.full):
            props = node.get("properties")
            if isinstance(props, dict):
                for name, sub in props.items():
                    if isinstance(sub, dict) and sub.get("x-phi") is True:
                        phi.add(name)
                    else:
                        non.add(name)
        return phi, non

    def _lifecycles(self) -> list[Lifecycle]:
        out = []
        schemas = (self.full.get("components") or {}).get("schemas") or {}
        for name, schema in schemas.items():
            lc = schema.get("x-lifecycle") if isinstance(schema, dict) else None
            if not isinstance(lc, dict):
                continue
            transitions = {(t["from"], t["to"]) for t in lc.get("transitions") or []}
            events = {t["event"]: t["to"] for t in lc.get("transitions") or [] if t.get("event")}
            states = set(lc.get("states") or {}) | {s for pair in transitions for s in pair}
            out.append(
                Lifecycle(
                    name=lc.get("name", name),
                    property=lc.get("property", "status"),
                    initial=[lc["initial"]]
                    if isinstance(lc.get("initial"), str)
                    else list(lc.get("initial") or []),
                    terminal=set(lc.get("terminal") or []),
                    states=states,
                    transitions=transitions,
                    events=events,
                    schema_name=name,
                )
            )
        return out

    # ---- queries -------------------------------------------------------------------------------------------
    @property
    def webhooks(self) -> dict[str, dict[str, Any]]:
        return {k: self.deref(v, self.full) for k, v in (self.full.get("webhooks") or {}).items()}

    def webhook_schema(self, event_type: str) -> dict[str, Any] | None:
        item = self.webhooks.get(event_type)
        if not item:
            return None
        op = item.get("post") or {}
        body = self.deref(op.get("requestBody") or {}, self.full)
        return ((body.get("content") or {}).get("application/json") or {}).get("schema")

    def webhook_tiers(self, event_type: str) -> set[str]:
        item = self.webhooks.get(event_type) or {}
        return access_tiers(item.get("post") or {}) or {"referral"}

    def webhook_example(self, event_type: str) -> dict[str, Any] | None:
        item = self.webhooks.get(event_type) or {}
        body = self.deref((item.get("post") or {}).get("requestBody") or {}, self.full)
        media = (body.get("content") or {}).get("application/json") or {}
        for ex in (media.get("examples") or {}).values():
            ex = self.deref(ex, self.full)
            if isinstance(ex.get("value"), dict):
                return copy.deepcopy(ex["value"])
        schema = self.deref(media.get("schema") or {}, self.full)
        if schema.get("examples"):
            return copy.deepcopy(schema["examples"][0])
        return None

    def find_operation(self, method: str, path: str) -> Operation | None:
        method = method.upper()
        path = path.split("?", 1)[0]
        ops = self.operations if self.full is self.doc else self.operations + self.full_operations()
        for op in ops:
            if op.method == method and op.path == path:
                return op
        # Prefer the most literal template (fewest parameters) among those that match.
        matches = [op for op in ops if op.method == method and op.path_regex().match(path)]
        matches.sort(key=lambda o: o.path.count("{"))
        return matches[0] if matches else None

    def full_operations(self) -> list[Operation]:
        """Every operation of the full document (the tier subset drops other tiers' and sandbox operations)."""
        if self.full is self.doc:
            return self.operations
        if self._full_spec is None:
            self._full_spec = Spec(self.full)
        return self._full_spec.operations

    def sandbox_operations(self) -> list[Operation]:
        return [op for op in self.full_operations() if op.sandbox_only]

    def sandbox_op(self, path_suffix: str, method: str = "POST") -> Operation | None:
        return next(
            (op for op in self.sandbox_operations() if op.method == method and op.path.endswith(path_suffix)),
            None,
        )

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        rebased = _rebase(copy.deepcopy(schema), SPEC_URI)
        return Draft202012Validator(
            rebased, registry=self._registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    def validation_errors(self, schema: dict[str, Any], instance: Any, limit: int = 5) -> list[str]:
        errors = []
        for err in self.validator(schema).iter_errors(instance):
            loc = "/".join(str(p) for p in err.absolute_path) or "(root)"
            errors.append(f"{loc}: {err.message[:300]}")
            if len(errors) >= limit:
                break
        return errors

    def lifecycle_for_schema(self, schema: Any) -> Lifecycle | None:
        if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            name = schema["$ref"].rsplit("/", 1)[-1]
            return next((lc for lc in self.lifecycles if lc.schema_name == name), None)
        return None

    def lifecycle_for_event(self, event_type: str) -> Lifecycle | None:
        return next((lc for lc in self.lifecycles if event_type in lc.events), None)

    def object_properties(self, schema: Any, depth: int = 0) -> dict[str, Any]:
        """Properties of an object schema, merged across oneOf/anyOf/allOf branches (x-phi wins)."""
        schema = self.deref(schema, self.full)
        if not isinstance(schema, dict) or depth > 8:
            return {}
        props: dict[str, Any] = dict(schema.get("properties") or {})
        for kw in ("oneOf", "anyOf", "allOf"):
            for branch in schema.get(kw) or []:
                for name, sub in self.object_properties(branch, depth + 1).items():
                    if name not in props or (isinstance(sub, dict) and sub.get("x-phi")):
                        props[name] = sub
        return props

    def is_phi_property(self, prop_schema: Any) -> bool:
        if not isinstance(prop_schema, dict):
            return False
        if prop_schema.get("x-phi") is True:
            return True
        target = self.deref(prop_schema, self.full)
        return isinstance(target, dict) and target.get("x-phi") is True

    def item_schema(self, schema: Any) -> Any:
        schema = self.deref(schema, self.full)
        if not isinstance(schema, dict):
            return None
        if "items" in schema:
            return schema["items"]
        for kw in ("oneOf", "anyOf"):
            for branch in schema.get(kw) or []:
                b = self.deref(branch, self.full)
                if isinstance(b, dict) and "items" in b:
                    return b["items"]
        return None

    def list_property(self, op: Operation) -> str | None:
        """The array property holding the items of a paginated list response (None if not a list)."""
        schema = op.response_schema(op.success_status or 200)
        props = self.object_properties(schema)
        if "pagination" not in props:
            return None
        for name, sub in props.items():
            sub = self.deref(sub, self.full)
            if isinstance(sub, dict) and (sub.get("type") == "array" or "items" in sub):
                return name
        return None


def subset_for_tier(doc: dict[str, Any], tier: str) -> dict[str, Any]:
    """The tier's subset of the full bundle (stealth_spec.tiers when available, else a plain operation filter)."""
    try:
        from stealth_spec.tiers import tier_subset

        return tier_subset(copy.deepcopy(doc), tier)
    except Exception:
        sub = copy.deepcopy(doc)
        for section in ("paths", "webhooks"):
            for key in list(sub.get(section) or {}):
                item = sub[section][key]
                for m in HTTP_METHODS:
                    op = item.get(m)
                    if isinstance(op, dict):
                        tiers = access_tiers(op) or {"referral"}
                        if op.get("x-sandbox-only") is True or not ("referral" in tiers or tier in tiers):
                            del item[m]
                if not any(m in item for m in HTTP_METHODS):
                    del sub[section][key]
        return sub


def _rebase(node: Any, uri: str) -> Any:
    if isinstance(node, dict):
        return {
            k: (uri + v if k == "$ref" and isinstance(v, str) and v.startswith("#") else _rebase(v, uri))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v, uri) for v in node]
    return node
