"""Every example of the specs parses into its generated model and serializes back to the same JSON;
payloads derived from each schema's constraints are rejected."""

from __future__ import annotations

import importlib
import inspect
from datetime import datetime
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from tests.conftest import bundled
from tests.models.cases import (
    APIS,
    Example,
    Invalid,
    all_examples,
    all_invalids,
    is_enum,
    model,
    validator_for,
)

EXAMPLES = all_examples()
INVALIDS = all_invalids()


def _normalize(value: Any) -> Any:
    """Date-times compare as instants: pydantic writes `2024-01-15T10:00:00.000Z` back as `...T10:00:00Z`."""
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v) for v in value]
    if isinstance(value, str) and len(value) >= 20 and value[4:5] == "-" and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


def test_there_are_examples_and_invalid_payloads() -> None:
    assert len(EXAMPLES) > 0
    assert len(INVALIDS) > 0


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_round_trips(example: Example) -> None:
    if "|" in example.schema:  # an inline oneOf of components: the example round-trips through one branch
        for name in example.schema.split("|"):
            try:
                model(example.api, name).model_validate(example.value)
            except ValidationError:
                continue
            example = Example(example.api, name, example.where, example.value)
            break
        else:
            pytest.fail(f"no branch of {example.schema} accepts the example")
    cls = validator_for(example.api, example.schema)
    assert cls is not None, f"no generated model stealth_models.{example.api}.{example.schema}"
    if is_enum(cls):
        assert cls(example.value).value == example.value
        return
    if isinstance(cls, TypeAdapter):
        dumped = cls.dump_python(cls.validate_python(example.value), mode="json", by_alias=True)
    else:
        assert issubclass(cls, BaseModel)
        parsed = cls.model_validate(example.value)
        dumped = parsed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert _normalize(dumped) == _normalize(example.value)


@pytest.mark.parametrize("invalid", INVALIDS, ids=[i.id for i in INVALIDS])
def test_invalid_payload_is_rejected(invalid: Invalid) -> None:
    cls = model(invalid.api, invalid.schema)
    assert cls is not None and issubclass(cls, BaseModel)
    with pytest.raises(ValidationError):
        cls.model_validate(invalid.value)


@pytest.mark.parametrize("api", APIS)
def test_generated_names_are_component_names(api: str) -> None:
    """Every generated class is named after a component schema: no `Error1` or field-derived names."""
    module = importlib.import_module(f"stealth_models.{api}")
    classes = {
        n
        for n, obj in inspect.getmembers(module, inspect.isclass)
        if obj.__module__ == module.__name__ and "[" not in n
    }
    components = set(bundled(api)["components"]["schemas"])
    assert sorted(classes - components) == []


@pytest.mark.parametrize("api", APIS)
def test_every_component_schema_has_a_model(api: str) -> None:
    """Every component schema is a generated class, or a scalar alias collapsed into the fields that use it."""
    doc = bundled(api)
    missing = [
        name
        for name, schema in doc["components"]["schemas"].items()
        if validator_for(api, name) is None
        and ("enum" in schema or "properties" in schema or "oneOf" in schema)
    ]
    assert missing == []
