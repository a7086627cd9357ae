"""Fixtures for the pharmacy-operations API tests (spec/pharmacy-api under /api/external)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest

from server.pharmacy.clinics import ClinicCredentials, create_clinic
from server.pharmacy.delivery import PharmacyDispatcher
from server.pharmacy.spec import load_pharmacy_spec
from server.spec import inline_refs
from tests.server.conftest import Sandbox
from tests.server.webhooks.conftest import Receiver, start_receiver

BASE = "/api/external"


@dataclass
class Pharmacy:
    sandbox: Sandbox

    @property
    def db(self) -> Any:
        return self.sandbox.state.db

    def clinic(self, **kwargs: Any) -> ClinicCredentials:
        return create_clinic(self.db, self.sandbox.state.box, **kwargs)

    def call(self, method: str, path: str, creds: ClinicCredentials | None = None, **kwargs: Any) -> Any:
        headers = dict(kwargs.pop("headers", {}) or {})
        if creds is not None:
            headers.setdefault("X-API-Key", creds.api_key)
        return self.sandbox.client.request(method, BASE + path, headers=headers, **kwargs)

    def dispatcher(self) -> PharmacyDispatcher:
        return PharmacyDispatcher(self.db, self.sandbox.state.box, self.sandbox.state.settings.environment)


@pytest.fixture
def pharmacy(sandbox: Sandbox) -> Pharmacy:
    return Pharmacy(sandbox)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = start_receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


class PharmacySchemas:
    """The pharmacy spec's schemas, checked with the reference jsonschema library (2020-12, formats)."""

    def __init__(self) -> None:
        self.document = inline_refs(load_pharmacy_spec())

    def _check(self, schema: dict[str, Any], instance: Any) -> None:
        schema = {k: v for k, v in schema.items() if k != "components"}
        validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]
        assert not errors, errors

    def component(self, name: str, instance: Any) -> None:
        self._check(self.document["components"]["schemas"][name], instance)

    def webhook(self, event_name: str, payload: Any) -> None:
        item = self.document["webhooks"][event_name]["post"]
        self._check(item["requestBody"]["content"]["application/json"]["schema"], payload)

    def webhook_headers(self, event_name: str, headers: dict[str, str]) -> None:
        item = self.document["webhooks"][event_name]["post"]
        for param in item["parameters"]:
            value = headers.get(param["name"].lower())
            assert value is not None, f"missing header {param['name']}"
            self._check(param["schema"], value)

    def status_of(self, code: str) -> int:
        return int(self.document["components"]["schemas"]["ErrorCode"]["x-error-catalog"][code]["status"])


@pytest.fixture(scope="session")
def ph_schemas() -> PharmacySchemas:
    return PharmacySchemas()


def assert_error(response: Any, code: str, schemas: PharmacySchemas) -> dict[str, Any]:
    body = response.json()
    assert body["error"]["code"] == code, response.text
    assert response.status_code == schemas.status_of(code), response.text
    schemas.component("ErrorResponse", body)
    assert response.headers["X-Request-Id"]
    assert response.headers["X-RateLimit-Limit"] == "60"
    return body
