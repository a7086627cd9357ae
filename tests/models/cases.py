"""Cases for the model tests: every example of the bundles, and invalid payloads derived from each schema."""

from __future__ import annotations

import copy
import importlib
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Annotated, Any

from pydantic import TypeAdapter

from stealth_spec.walk import deref, esc
from tests.conftest import SPECS, bundled

APIS = tuple(api for api, path in SPECS.items() if (path / "openapi.yaml").is_file())


@dataclass(frozen=True)
class Example:
    api: str
    schema: str  # component schema name = generated model name
    where: str  # JSON pointer of the example in the bundle
    value: Any

    @property
    def id(self) -> str:
        return f"{self.api}:{self.where}"


@dataclass(frozen=True)
class Invalid:
    api: str
    schema: str
    kind: str  # missing-required | wrong-enum | too-long | extra-property
    field: str
    value: Any

    @property
    def id(self) -> str:
        return f"{self.api}:{self.schema}:{self.kind}:{self.field}"


def model(api: str, name: str) -> Any:
    return getattr(importlib.import_module(f"stealth_models.{api}"), name, None)


def validator_for(api: str, name: str) -> Any:
    """The generated model of component ``name``; for a scalar component the generator collapsed into the fields
    that use it (``--collapse-root-models``: no class of its own), a TypeAdapter of such a field's type."""
    cls = model(api, name)
    if cls is not None:
        return cls
    for owner, schema in ((bundled(api).get("components") or {}).get("schemas") or {}).items():
        for prop, sub in (schema.get("properties") or {}).items():
            owner_cls = model(api, owner)
            if (
                _ref_name(sub) == name
                and owner_cls is not None
                and prop in getattr(owner_cls, "model_fields", {})
            ):
                field = owner_cls.model_fields[prop]
                return TypeAdapter(Annotated[field.annotation, field])
    return None


def _ref_name(schema: Any) -> str | None:
    """``Name`` for a ``$ref`` to a component schema; ``A|B`` for an inline oneOf/anyOf of such refs."""
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
        ref = schema["$ref"]
        if ref.startswith("#/components/schemas/"):
            return ref.rsplit("/", 1)[1]
    if isinstance(schema, dict) and set(schema) & {"oneOf", "anyOf"}:
        names = [_ref_name(b) for b in schema.get("oneOf") or schema.get("anyOf") or []]
        if names and all(n and "|" not in n for n in names):
            return "|".join(n for n in names if n)
    return None


@cache
def examples(api: str) -> tuple[Example, ...]:
    """Schema-level examples of component schemas, and media-type examples whose schema is a component."""
    doc = bundled(api)
    out: list[Example] = []
    for name, schema in ((doc.get("components") or {}).get("schemas") or {}).items():
        for i, value in enumerate(schema.get("examples") or []):
            out.append(Example(api, name, f"/components/schemas/{esc(name)}/examples/{i}", value))

    def walk(node: Any, pointer: str) -> None:
        if isinstance(node, dict):
            name = _ref_name(node.get("schema")) if "in" not in node else None
            if name is not None:
                if "example" in node:
                    out.append(Example(api, name, f"{pointer}/example", node["example"]))
                for ex_name, ex in (node.get("examples") or {}).items():
                    if isinstance(ex, dict) and "value" in ex:
                        out.append(Example(api, name, f"{pointer}/examples/{esc(ex_name)}", ex["value"]))
            for key, value in node.items():
                if key not in ("examples", "example", "schemas") and not str(key).startswith("x-"):
                    walk(value, f"{pointer}/{esc(key)}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{pointer}/{i}")

    walk({k: v for k, v in doc.items() if k != "components"}, "")
    walk({"components": {k: v for k, v in (doc.get("components") or {}).items() if k != "schemas"}}, "")
    return tuple(out)


def all_examples() -> list[Example]:
    return [ex for api in APIS for ex in examples(api)]


def _types(schema: dict[str, Any]) -> set[str]:
    t = schema.get("type")
    return {t} if isinstance(t, str) else set(t or [])


@cache
def invalids(api: str) -> tuple[Invalid, ...]:
    """Payloads each object schema must reject: a required field dropped, a wrong enum value, a too-long string,
    an undeclared property where additionalProperties is false. Derived from the schema's first example."""
    doc = bundled(api)
    base_by_schema: dict[str, Any] = {}
    for ex in examples(api):
        if isinstance(ex.value, dict):
            base_by_schema.setdefault(ex.schema, ex.value)
    out: list[Invalid] = []
    for name, schema in ((doc.get("components") or {}).get("schemas") or {}).items():
        base = base_by_schema.get(name)
        if base is None or "object" not in _types(schema) or not isinstance(schema.get("properties"), dict):
            continue
        for req in schema.get("required") or []:
            if req in base:
                value = {k: v for k, v in base.items() if k != req}
                out.append(Invalid(api, name, "missing-required", req, value))
        for prop, sub in schema["properties"].items():
            target = deref(doc, sub)
            if not isinstance(target, dict):
                continue
            if isinstance(target.get("enum"), list) or "const" in target:
                out.append(
                    Invalid(api, name, "wrong-enum", prop, {**copy.deepcopy(base), prop: "__not_a_value__"})
                )
            if isinstance(target.get("maxLength"), int) and "string" in _types(target):
                too_long = "x" * (target["maxLength"] + 1)
                out.append(Invalid(api, name, "too-long", prop, {**copy.deepcopy(base), prop: too_long}))
        if schema.get("additionalProperties") is False:
            out.append(Invalid(api, name, "extra-property", "__undeclared__", {**base, "__undeclared__": 1}))
    return tuple(out)


def all_invalids() -> list[Invalid]:
    return [inv for api in APIS for inv in invalids(api)]


def is_enum(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, Enum)
