"""Fails loudly if the connexion internals our OpenAPI 3.1 adapter relies on change.

If one of these breaks after a connexion upgrade, check whether upstream 3.1 support
(spec-first/connexion#1396 / PR #1951) landed and the adapter can go.
"""

from __future__ import annotations

import inspect

import connexion
import pytest
from connexion.middleware.main import ConnexionMiddleware
from connexion.middleware.request_validation import RequestValidationOperation
from connexion.middleware.response_validation import ResponseValidationOperation
from connexion.spec import OpenAPISpecification, Specification
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator, ParameterValidator
from connexion.validators.abstract import AbstractRequestBodyValidator, AbstractResponseBodyValidator
from starlette.testclient import TestClient

from server import openapi_adapter

MINI_31 = {
    "openapi": "3.1.0",
    "info": {"title": "t", "version": "1"},
    "paths": {
        "/things/{id}": {
            "post": {
                "operationId": "postThing",
                "parameters": [
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^t_[a-z]+$"},
                    },
                    {
                        "name": "q",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "maximum": 5},
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "additionalProperties": False,
                                "required": ["name"],
                                "properties": {
                                    "name": {
                                        "type": ["string", "null"],
                                        "x-error-code": "NAME_BAD",
                                        "maxLength": 3,
                                    },
                                    "when": {"type": "string", "format": "date-time"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "ok",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["ok"],
                                    "properties": {"ok": {"const": True}},
                                }
                            }
                        },
                    }
                },
            }
        }
    },
}


def test_connexion_version_is_the_one_the_adapter_was_written_for():
    assert connexion.__version__ if hasattr(connexion, "__version__") else True
    from importlib.metadata import version

    assert version("connexion") == "3.3.0", "connexion changed: re-check server/openapi_adapter.py"


def test_hooks_still_exist():
    # the 3.0 meta-schema gate we bypass for 3.1
    assert isinstance(Specification.__dict__["_validate_spec"], classmethod)
    # validator_map is public on add_api and consulted per operation
    assert "validator_map" in inspect.signature(ConnexionMiddleware.add_api).parameters
    assert set(VALIDATOR_MAP) == {"parameter", "body", "response"}
    for cls in (RequestValidationOperation, ResponseValidationOperation):
        assert "_validator_map" in inspect.getsource(cls.__init__)
    src = inspect.getsource(RequestValidationOperation.__call__)
    assert 'self._validator_map["parameter"]' in src and 'self._validator_map["body"]' in src
    assert 'self._validator_map["response"]' in inspect.getsource(ResponseValidationOperation.__call__)
    # the methods our subclasses override
    for name in (
        "validate_parameter",
        "validate_request",
        "validate_query_parameter",
        "validate_path_parameter",
        "validate_header_parameter",
        "validate_cookie_parameter",
        "validate_query_parameter_list",
    ):
        assert hasattr(ParameterValidator, name), name
    for name in ("_parse", "_validate", "wrap_receive"):
        assert hasattr(JSONRequestBodyValidator, name) and hasattr(AbstractRequestBodyValidator, name)
    assert "self._validate(body)" in inspect.getsource(AbstractResponseBodyValidator.wrap_send)
    assert "self._validate(body)" in inspect.getsource(AbstractRequestBodyValidator.wrap_receive)


def test_connexion_alone_refuses_31_and_the_adapter_accepts_it():
    original = Specification.__dict__["_validate_spec"].__func__
    with pytest.raises(Exception):  # noqa: B017 - whatever connexion raises, it must refuse
        original(
            OpenAPISpecification,
            dict(
                MINI_31,
                openapi="3.1.0",
                paths={
                    "/x": {
                        "get": {
                            "responses": {
                                "200": {
                                    "description": "ok",
                                    "content": {"application/json": {"schema": {"type": ["string", "null"]}}},
                                }
                            }
                        }
                    }
                },
                webhooks={},
            ),
        )
    openapi_adapter.install()
    OpenAPISpecification._validate_spec(MINI_31)  # no error for 3.1


def _mini_app():
    openapi_adapter.install()

    def post_thing(id: str, body: dict) -> tuple[dict, int]:
        return {"ok": body.get("name") != "bad"}, 200

    app = connexion.AsyncApp(__name__)
    app.add_api(
        MINI_31,
        resolver=connexion.resolver.Resolver(function_resolver=lambda _op: post_thing),
        validator_map=openapi_adapter.validator_map(),
        validate_responses=True,
        strict_validation=True,
    )
    seen: list[Exception] = []

    def on_error(_request, exc):
        seen.append(exc)
        return connexion.lifecycle.ConnexionResponse(status_code=418, body=b"{}", mimetype="application/json")

    app.add_error_handler(Exception, on_error)
    app.add_error_handler(connexion.exceptions.ProblemException, on_error)
    return app, seen


def test_2020_12_validators_are_used_and_cached():
    from server.errors import RequestValidationError

    app, seen = _mini_app()
    with TestClient(app) as client:
        assert client.post("/things/t_a", json={"name": None}).status_code == 200  # type list with null
        before = len(openapi_adapter.SCHEMAS)
        assert client.post("/things/t_a", json={"name": "ok"}).status_code == 200
        assert len(openapi_adapter.SCHEMAS) == before  # compiled once
        client.post("/things/t_a", json={"name": "toolong"})
        assert isinstance(seen[-1], RequestValidationError) and seen[-1].candidates == ["NAME_BAD"]
        client.post("/things/t_a", json={"name": "a", "when": "not a date"})
        assert seen[-1].candidates == ["INVALID_BODY"]
        client.post("/things/t_a", json={})
        assert seen[-1].candidates == ["NAME_BAD"]  # required property carrying x-error-code
        client.post("/things/BAD", json={"name": "a"})
        assert seen[-1].code == "VALIDATION_ERROR" and seen[-1].details["in"] == "path"
        client.post("/things/t_a?extra=1", json={"name": "a"})
        assert seen[-1].details["parameter"] == "extra"
        client.post("/things/t_a?q=9", json={"name": "a"})
        assert seen[-1].details == {"parameter": "q", "in": "query", "reason": seen[-1].details["reason"]}
        assert client.post("/things/t_a?q=3", json={"name": "a"}).status_code == 200  # coerced to an integer
        client.post("/things/t_a", json={"name": "bad"})  # handler answers {"ok": false}: our bug, not theirs
        assert type(seen[-1]).__name__ == "NonConformingResponseBody"
        assert "bad" not in str(seen[-1].detail)
