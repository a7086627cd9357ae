"""PHI redaction derived from the spec's ``x-phi`` marks (never a hand-kept list of fields).

At startup :class:`PhiMap` compiles, per operation, the request body schema and every response schema into a
:class:`Shape`: which properties (at which JSON positions) are PHI, following ``$ref``, ``allOf``/``oneOf``/
``anyOf``, arrays and ``additionalProperties``. Parameters marked ``x-phi`` (``search``, ``patient_email``, the
patient, appointment and transaction ids) are known per operation too, and webhook payloads per event type.

:meth:`Redactor.value` replaces the value of every PHI property with ``"[redacted]"`` and remembers the
literal values it removed, so :meth:`Redactor.text` can mask them wherever else they appear (an error message
that quotes an invalid email, for instance). A key the schema does not declare at its position is redacted
when its name is marked ``x-phi`` anywhere in the spec.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from stealth_spec.walk import SCHEMA_LIST_KEYS, deref, nodes, operations

MASK = "[redacted]"
MAX_DEPTH = 64
# A shorter PHI value (a state code, "M") is masked only where quoted, never as a bare substring.
MIN_BARE_LENGTH = 4


@dataclass
class Shape:
    """Where PHI sits inside one JSON value."""

    phi: bool = False  # the whole value is PHI
    props: dict[str, Shape] = field(default_factory=dict)
    items: Shape | None = None
    extra: Shape | None = None  # additionalProperties / patternProperties

    @property
    def has_phi(self) -> bool:
        return self._has_phi(0)

    def _has_phi(self, depth: int) -> bool:
        if self.phi:
            return True
        if depth > MAX_DEPTH:
            return False
        subs = [*self.props.values(), self.items, self.extra]
        return any(s is not None and s._has_phi(depth + 1) for s in subs)


PHI = Shape(phi=True)


def _mask_match(match: re.Match[str]) -> str:
    form = match.group(0)
    quoted = len(form) >= 2 and form[0] in "\"'" and form[-1] == form[0]
    return f'"{MASK}"' if quoted else MASK


def _merge(a: Shape | None, b: Shape | None, depth: int = 0) -> Shape | None:
    if a is None or b is None:
        return a or b
    if a.phi or b.phi:
        return PHI
    if a is b or depth > MAX_DEPTH:
        return a
    props = dict(a.props)
    for name, sub in b.props.items():
        props[name] = _merge(props.get(name), sub, depth + 1) or Shape()
    return Shape(
        props=props,
        items=_merge(a.items, b.items, depth + 1),
        extra=_merge(a.extra, b.extra, depth + 1),
    )


class _Compiler:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.memo: dict[int, Shape | None] = {}

    def schema(self, node: Any, depth: int = 0) -> Shape | None:
        """The shape of a schema node (None: nothing is declared about its contents)."""
        if not isinstance(node, dict) or depth > MAX_DEPTH:
            return None
        if node.get("x-phi") is True:
            return PHI
        target = deref(self.doc, node)
        own = {k: v for k, v in node.items() if k != "$ref"} if target is not node else None
        shape = self._resolved(target, depth) if isinstance(target, dict) else None
        if own:
            shape = _merge(shape, self._body(own, depth))
        return shape

    def _resolved(self, node: dict[str, Any], depth: int) -> Shape | None:
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = None  # a cycle reads "nothing declared" rather than recursing forever
        shape = self._body(node, depth)
        self.memo[key] = shape
        return shape

    def _body(self, node: dict[str, Any], depth: int) -> Shape | None:
        if node.get("x-phi") is True:
            return PHI
        shape: Shape | None = None
        props = node.get("properties")
        if isinstance(props, dict):
            shape = Shape(props={name: self.schema(sub, depth + 1) or Shape() for name, sub in props.items()})
        items = node.get("items")
        if isinstance(items, dict):
            shape = _merge(shape, Shape(items=self.schema(items, depth + 1)))
        for key in ("prefixItems",):
            for sub in node.get(key) or []:
                shape = _merge(shape, Shape(items=self.schema(sub, depth + 1)))
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            shape = _merge(shape, Shape(extra=self.schema(extra, depth + 1)))
        for sub in (node.get("patternProperties") or {}).values():
            shape = _merge(shape, Shape(extra=self.schema(sub, depth + 1)))
        for key in SCHEMA_LIST_KEYS:
            if key == "prefixItems":
                continue
            for sub in node.get(key) or []:
                shape = _merge(shape, self.schema(sub, depth + 1))
        for key in ("then", "else"):
            shape = _merge(shape, self.schema(node.get(key), depth + 1))
        return shape

    def media(self, holder: Any) -> Shape | None:
        """The merged shape of a request body's or response's JSON media types."""
        holder = deref(self.doc, holder)
        if not isinstance(holder, dict):
            return None
        shape: Shape | None = None
        for mt, media in (holder.get("content") or {}).items():
            if "json" in mt and isinstance(media, dict):
                shape = _merge(shape, self.schema(media.get("schema")))
        return shape


@dataclass(frozen=True)
class OperationPhi:
    request: Shape | None
    responses: dict[str, Shape | None]  # status code, "4XX" or "default" -> shape
    phi_params: frozenset[tuple[str, str]]  # (in, name) of parameters marked x-phi
    params: frozenset[tuple[str, str]] = frozenset()  # (in, name) of every declared parameter

    def response(self, status: int) -> Shape | None:
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in self.responses:
                return self.responses[key]
        return None

    @property
    def response_has_phi(self) -> bool:
        return any(s is not None and s.has_phi for k, s in self.responses.items() if k.startswith("2"))


class PhiMap:
    """The redaction map of one bundled spec, compiled once."""

    def __init__(self, document: dict[str, Any]) -> None:
        compiler = _Compiler(document)
        self.operations: dict[str, OperationPhi] = {}
        self.webhooks: dict[str, Shape | None] = {}
        self.names: set[str] = set()  # property and parameter names marked x-phi anywhere
        for node in nodes(document):
            for name, sub in (
                (node.get("properties") or {}).items() if isinstance(node.get("properties"), dict) else ()
            ):
                if isinstance(sub, dict) and sub.get("x-phi") is True:
                    self.names.add(name)
            if isinstance(node.get("name"), str) and node.get("in") and node.get("x-phi") is True:
                self.names.add(node["name"])
        for op in operations(document):
            if op.is_webhook:
                self.webhooks[op.key] = compiler.media(op.op.get("requestBody"))
                continue
            op_id = op.op.get("operationId")
            if not isinstance(op_id, str):
                continue
            declared = op.parameters(document)
            params = frozenset(
                (str(p.get("in")), str(p.get("name"))) for p in declared if p.get("x-phi") is True
            )
            self.operations[op_id] = OperationPhi(
                request=compiler.media(op.op.get("requestBody")),
                responses={
                    str(code): compiler.media(resp) for code, resp in (op.op.get("responses") or {}).items()
                },
                phi_params=params,
                params=frozenset((str(p.get("in")), str(p.get("name"))) for p in declared),
            )

    def redactor(self) -> Redactor:
        return Redactor(self.names)


class Redactor:
    """Redacts JSON values along shapes and remembers the literal PHI values it took out."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.values: set[str] = set()
        self._compiled: tuple[int, re.Pattern[str] | None] | None = None

    def value(self, value: Any, shape: Shape | None, depth: int = 0) -> Any:
        if shape is not None and shape.phi:
            return self._take(value)
        if depth > MAX_DEPTH:
            return MASK
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, sub in value.items():
                declared = shape.props.get(key) if shape is not None else None
                if declared is not None:
                    out[key] = self.value(sub, declared, depth + 1)
                elif shape is not None and shape.extra is not None:
                    out[key] = self.value(sub, shape.extra, depth + 1)
                elif key in self.names:
                    out[key] = self._take(sub)
                else:
                    out[key] = self.value(sub, None, depth + 1)
            return out
        if isinstance(value, list):
            item = shape.items if shape is not None else None
            return [self.value(v, item, depth + 1) for v in value]
        return value

    def _take(self, value: Any) -> Any:
        if value is None:
            return None
        self.learn(value)
        return MASK

    def learn(self, value: Any) -> None:
        """Remember every scalar inside a PHI value, to mask it wherever it shows up later."""
        if isinstance(value, dict):
            for v in value.values():
                self.learn(v)
        elif isinstance(value, list):
            for v in value:
                self.learn(v)
        elif isinstance(value, str):
            if value:
                self.values.add(value)
        elif (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and len(str(value)) >= MIN_BARE_LENGTH
        ):
            self.values.add(str(value))

    def text(self, text: str) -> str:
        """Mask every remembered PHI value inside free text (quoted, JSON-escaped or bare)."""
        pattern = self._pattern()
        return pattern.sub(_mask_match, text) if pattern is not None else text

    def _pattern(self) -> re.Pattern[str] | None:
        if self._compiled is not None and self._compiled[0] == len(self.values):
            return self._compiled[1]
        forms: set[str] = set()
        for v in self.values:
            forms |= {json.dumps(v), repr(v)}
            if len(v) >= MIN_BARE_LENGTH:
                forms |= {v, json.dumps(v)[1:-1], repr(v)[1:-1]}
        forms.discard("")
        pattern = (
            re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
            if forms
            else None
        )
        self._compiled = (len(self.values), pattern)
        return pattern

    def strings(self, value: Any, depth: int = 0) -> Any:
        """Apply :meth:`text` to every string of an already redacted JSON value."""
        if depth > MAX_DEPTH:
            return MASK
        if isinstance(value, dict):
            return {k: self.strings(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.strings(v, depth + 1) for v in value]
        if isinstance(value, str) and value != MASK and self.values:
            return self.text(value)
        return value
