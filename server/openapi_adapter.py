"""Our small OpenAPI 3.1 adapter for connexion 3.3.

connexion 3.3 refuses ``openapi: 3.1.x`` (it validates the document against its 3.0 meta-schema)
and validates with JSON Schema draft 4. Upstream 3.1 support is still an open request
(spec-first/connexion#1396, PR #1951). Until it lands we:

* skip connexion's 3.0 meta-schema gate for 3.1 documents only (``make lint`` validates the spec
  with openapi-spec-validator, which knows 3.1);
* give connexion JSON Schema 2020-12 validators through ``add_api(validator_map=...)``, its public
  hook, compiled once per schema with jsonschema-rs and cached.

Failures raise :class:`server.errors.RequestValidationError` with the documented codes (INVALID_BODY,
VALIDATION_ERROR, or a property's ``x-error-code``). ``tests/server/test_openapi_adapter.py`` fails
loudly if the connexion internals this relies on change.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import jsonschema_rs
from connexion.datastructures import MediaTypeDict
from connexion.exceptions import NonConformingResponseBody, UnsupportedMediaTypeProblem
from connexion.spec import OpenAPISpecification, Specification
from connexion.validators import (
    FormDataValidator,
    JSONRequestBodyValidator,
    JSONResponseBodyValidator,
    MultiPartFormDataValidator,
    ParameterValidator,
)
from starlette.types import Scope

from server import context
from server.errors import RequestValidationError

# ----------------------------------------------------------------------------- spec gate

_ORIGINAL_VALIDATE_SPEC = Specification.__dict__["_validate_spec"]  # classmethod on the base class
_installed = False
_install_lock = threading.Lock()


def _spec_version(spec: dict[str, Any]) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in str(spec.get("openapi", "0")).split(".")[:2])
    except ValueError:
        return (0,)


def _validate_spec_31_aware(cls: type, spec: dict[str, Any]) -> None:
    if _spec_version(spec) >= (3, 1):
        return  # validated by openapi-spec-validator in `make lint`
    _ORIGINAL_VALIDATE_SPEC.__func__(cls, spec)


def install() -> None:
    """Let connexion load OpenAPI 3.1 documents (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        OpenAPISpecification._validate_spec = classmethod(_validate_spec_31_aware)  # type: ignore[method-assign,assignment]
        _installed = True


# ----------------------------------------------------------------------------- compiled schemas


class SchemaCache:
    """Compiled 2020-12 validators, one per schema object (connexion hands us the same objects)."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[dict[str, Any], Any]] = {}
        self._lock = threading.Lock()

    def get(self, schema: dict[str, Any]) -> Any:
        hit = self._by_id.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        compiled_schema = {k: v for k, v in schema.items() if k != "components"}
        validator = jsonschema_rs.Draft202012Validator(compiled_schema, validate_formats=True)
        with self._lock:
            self._by_id[id(schema)] = (schema, validator)  # keeps schema alive: the id stays unique
        return validator

    def __len__(self) -> int:
        return len(self._by_id)


SCHEMAS = SchemaCache()


def _pointer(parts: Any) -> str:
    return "/" + "/".join(str(p) for p in parts) if parts else "/"


def _walk_schema(
    schema: dict[str, Any], schema_path: list[Any]
) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """Yield (property name or None, node) along ``schema_path``."""
    node: Any = schema
    prev: Any = None
    for part in schema_path:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return
        if isinstance(node, dict):
            yield (str(part) if prev == "properties" else None), node
        prev = part


def error_code_for(schema: dict[str, Any], error: Any, default: str) -> str:
    """The ``x-error-code`` of the deepest failing property on the error's schema path, else ``default``."""
    code: str | None = None
    path = list(error.schema_path)
    for _name, node in _walk_schema(schema, path):
        if "x-error-code" in node:
            code = node["x-error-code"]
    kind = type(error.kind).__name__
    if kind == "Required":
        parent: Any = schema
        for _name, node in _walk_schema(schema, path[:-1]):
            parent = node
        prop = getattr(error.kind, "property", None)
        sub = (parent.get("properties") or {}).get(prop) if isinstance(parent, dict) else None
        if isinstance(sub, dict) and "x-error-code" in sub:
            code = sub["x-error-code"]
    return code or default


def is_deferred(schema: dict[str, Any], error: Any) -> bool:
    """Whether the error lies under a property marked ``x-error-deferred`` (judged by the handler, at the code's
    place in the operation's x-validation-order, instead of in the schema step)."""
    return any(node.get("x-error-deferred") for _name, node in _walk_schema(schema, list(error.schema_path)))


def _describe(error: Any) -> dict[str, str]:
    return {"path": _pointer(error.instance_path), "message": str(error.message)[:300]}


MAX_ERRORS = 20

# ----------------------------------------------------------------------------- parameters


class ParameterValidator2020(ParameterValidator):
    """Path, query, header and cookie parameters, validated with 2020-12 (VALIDATION_ERROR)."""

    @staticmethod
    def validate_parameter(
        parameter_type: str, value: Any, param: dict[str, Any], param_name: Any = None
    ) -> Any:
        if value is None:
            if param.get("required"):
                raise RequestValidationError(
                    "VALIDATION_ERROR",
                    f"Missing {parameter_type} parameter {param['name']}.",
                    [param.get("x-error-code", "VALIDATION_ERROR")],
                    {"parameter": param["name"], "in": parameter_type, "reason": "missing"},
                )
            return None
        schema = param.get("schema", param)
        validator = SCHEMAS.get(schema)
        error = next(iter(validator.iter_errors(value)), None)
        if error is None:
            return None
        reason = str(error.message)[:300]
        raise RequestValidationError(
            "VALIDATION_ERROR",
            f"{parameter_type.capitalize()} parameter {param['name']} is invalid: {reason}"[:1000],
            [param.get("x-error-code") or error_code_for(schema, error, "VALIDATION_ERROR")],
            {"parameter": param["name"], "in": parameter_type, "reason": reason},
        )

    def validate_request(self, request: Any) -> None:
        # Unknown query parameters are refused only where the operation has query parameters (and so
        # documents VALIDATION_ERROR for them); elsewhere they are ignored, as most APIs do.
        if self.strict_validation and self.parameters.get("query"):
            extra = self.validate_query_parameter_list(request, security_params=self.security_query_params)
            if extra:
                names = sorted(extra)
                raise RequestValidationError(
                    "VALIDATION_ERROR",
                    f"Unknown query parameter(s): {', '.join(names)}."[:1000],
                    ["VALIDATION_ERROR"],
                    {"parameter": names[0], "in": "query", "reason": "not a parameter of this operation"},
                )
        for param in self.parameters.get("path", []):
            self.validate_path_parameter(param, request)
        for param in self.parameters.get("query", []):
            self.validate_query_parameter(param, request)
        for param in self.parameters.get("header", []):
            self.validate_header_parameter(param, request)
        for param in self.parameters.get("cookie", []):
            self.validate_cookie_parameter(param, request)


# ----------------------------------------------------------------------------- request bodies


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_EMPTY_BODY = object()  # no body at all, as distinct from the JSON literal null


class JSONBodyValidator2020(JSONRequestBodyValidator):
    """JSON request bodies: strict UTF-8 JSON, then 2020-12 with ``x-error-code`` mapping."""

    async def _parse(self, stream: AsyncGenerator[bytes, None], scope: Scope) -> Any:
        raw = b"".join([chunk async for chunk in stream])
        if raw.strip() and not any(name.lower() == b"content-type" for name, _ in scope["headers"]):
            # connexion validates a body without Content-Type as its first media type, but hands the
            # handler the raw bytes: a body must say what it is (415, documented on every body operation).
            raise UnsupportedMediaTypeProblem(detail="The request has a body but no Content-Type header.")
        try:
            text = raw.decode(self._encoding)
        except (UnicodeDecodeError, LookupError):
            raise RequestValidationError(
                "INVALID_BODY",
                "The request body is not valid UTF-8 text.",
                ["INVALID_BODY"],
                {"errors": [{"path": "/", "message": "body is not valid UTF-8"}]},
            ) from None
        if not text.strip():
            return _EMPTY_BODY
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            message = str(exc) if isinstance(exc, json.JSONDecodeError) else "body is not valid JSON"
            raise RequestValidationError(
                "INVALID_BODY",
                "The request body is not valid JSON.",
                ["INVALID_BODY"],
                {"errors": [{"path": "/", "message": message[:300]}]},
            ) from None

    def _validate(self, body: Any) -> dict[str, Any] | None:
        # A JSON `null` body is validated like any other value (it is not "no body").
        if body is _EMPTY_BODY:
            if self._nullable or not self._required:
                return None
            raise RequestValidationError(
                "INVALID_BODY",
                "A JSON request body is required.",
                ["INVALID_BODY"],
                {"errors": [{"path": "/", "message": "request body is empty"}]},
            )
        validator = SCHEMAS.get(self._schema)
        try:
            if validator.is_valid(body):
                return None
        except (RecursionError, ValueError):
            pass
        errors = []
        for i, err in enumerate(validator.iter_errors(body)):
            if i >= MAX_ERRORS:
                break
            errors.append(err)
        if not errors:  # pragma: no cover - is_valid and iter_errors disagree only on recursion
            errors_desc = [{"path": "/", "message": "body failed validation"}]
            candidates = ["INVALID_BODY"]
        else:
            errors_desc = [_describe(e) for e in errors]
            candidates = [error_code_for(self._schema, e, "INVALID_BODY") for e in errors]
        error = RequestValidationError(
            "INVALID_BODY",
            "Request body failed schema validation.",
            candidates,
            {"errors": errors_desc},
        )
        if errors and all(is_deferred(self._schema, e) for e in errors) and context.defer(error):
            return None  # the handler raises it at its step (context.raise_deferred)
        raise error


# ----------------------------------------------------------------------------- responses


class JSONResponseValidator2020(JSONResponseBodyValidator):
    """Our own responses, checked against the spec; a failure is our bug and answers 500."""

    def _validate(self, body: Any) -> None:
        if not self._schema:
            return
        validator = SCHEMAS.get(self._schema)
        if validator.is_valid(body):
            return
        err = next(iter(validator.iter_errors(body)))
        # No instance values in the detail: they may be PHI.
        raise NonConformingResponseBody(
            detail=f"response body does not match the spec at {_pointer(err.instance_path)} "
            f"(schema {_pointer(err.schema_path)})"
        )


def validator_map() -> dict[str, Any]:
    """The ``validator_map`` to pass to ``add_api``."""
    return {
        "parameter": ParameterValidator2020,
        "body": MediaTypeDict(
            {
                "*/*json": JSONBodyValidator2020,
                "application/x-www-form-urlencoded": FormDataValidator,
                "multipart/form-data": MultiPartFormDataValidator,
            }
        ),
        "response": MediaTypeDict({"*/*json": JSONResponseValidator2020}),
    }
