"""The redaction map compiled from x-phi marks: $ref, allOf/oneOf/anyOf, arrays, maps, parameters, cycles."""

from __future__ import annotations

from typing import Any

from server import phi_log
from server.redaction import MASK, PhiMap

DOC: dict[str, Any] = {
    "openapi": "3.1.0",
    "paths": {
        "/people/{person_id}": {
            "parameters": [{"$ref": "#/components/parameters/PersonId"}],
            "post": {
                "operationId": "updatePerson",
                "parameters": [
                    {"name": "search", "in": "query", "x-phi": True, "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                ],
                "requestBody": {"$ref": "#/components/requestBodies/Person"},
                "responses": {
                    "200": {
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Page"}}}
                    },
                    "4XX": {
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                    },
                },
            },
        }
    },
    "webhooks": {
        "person.created": {
            "post": {
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "data": {"$ref": "#/components/schemas/Person"},
                                    "id": {"type": "string"},
                                },
                            }
                        }
                    }
                }
            }
        }
    },
    "components": {
        "parameters": {"PersonId": {"name": "person_id", "in": "path", "required": True, "x-phi": True}},
        "requestBodies": {
            "Person": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Person"}}}}
        },
        "schemas": {
            "Named": {"type": "object", "properties": {"name": {"type": "string", "x-phi": True}}},
            "Person": {
                "allOf": [
                    {"$ref": "#/components/schemas/Named"},
                    {
                        "type": "object",
                        "properties": {
                            "id": {"type": "string"},
                            "address": {"$ref": "#/components/schemas/Address", "x-phi": True},
                            "contacts": {
                                "type": "array",
                                "items": {
                                    "oneOf": [
                                        {"type": "object", "properties": {"email": {"x-phi": True}}},
                                        {
                                            "type": "object",
                                            "properties": {"phone": {"x-phi": True}, "kind": {}},
                                        },
                                    ]
                                },
                            },
                            "answers": {
                                "type": "object",
                                "additionalProperties": {"type": "string", "x-phi": True},
                            },
                            "friend": {"$ref": "#/components/schemas/Person"},
                            "metadata": {"type": "object"},
                        },
                    },
                ]
            },
            "Address": {"type": "object", "properties": {"street": {"type": "string"}}},
            "Page": {
                "type": "object",
                "properties": {"items": {"type": "array", "items": {"$ref": "#/components/schemas/Person"}}},
            },
            "Error": {
                "type": "object",
                "properties": {"message": {"type": "string"}, "details": {"type": "object"}},
            },
        },
    },
}


def test_shapes_follow_refs_compositions_arrays_and_maps() -> None:
    phi = PhiMap(DOC)
    op = phi.operations["updatePerson"]
    assert op.phi_params == {("path", "person_id"), ("query", "search")}
    assert op.response_has_phi and op.request is not None and op.request.has_phi
    red = phi.redactor()
    person = {
        "id": "p_1",
        "name": "Ann Lee",
        "address": {"street": "1 Main St"},
        "contacts": [{"email": "ann@example.com"}, {"phone": "+15550001111", "kind": "mobile"}],
        "answers": {"q1": "headaches daily"},
        "friend": {"id": "p_2", "name": "Bob Roe"},
        "metadata": {"email": "meta@example.com", "note": "fine"},
    }
    out = red.value(person, op.request)
    assert out == {
        "id": "p_1",
        "name": MASK,
        "address": MASK,
        "contacts": [{"email": MASK}, {"phone": MASK, "kind": "mobile"}],
        "answers": {"q1": MASK},
        "friend": {"id": "p_2", "name": MASK},
        "metadata": {"email": MASK, "note": "fine"},  # undeclared key named like a PHI property
    }
    assert {"Ann Lee", "1 Main St", "ann@example.com", "Bob Roe", "headaches daily"} <= red.values
    page = red.value({"items": [person]}, op.response(200))
    assert page["items"][0]["name"] == MASK and page["items"][0]["id"] == "p_1"
    assert phi.webhooks["person.created"] is not None
    assert red.value({"id": "e1", "data": person}, phi.webhooks["person.created"])["data"]["name"] == MASK


def test_exchange_fields_mask_query_path_and_echoes() -> None:
    phi = PhiMap(DOC)
    fields = phi_log.exchange_fields(
        phi,
        phi.operations["updatePerson"],
        "/people/{person_id}",
        "/people/per_secret123",
        b"search=Ann+Lee&limit=5&unknown=x",
        (b'{"name": "Ann Lee", "id": "p_1"}', "application/json", False),
        (
            400,
            b'{"message": "\'Ann Lee\' is too long; per_secret123 unknown", "details": {"name": "Ann Lee"}}',
            "application/json",
            False,
        ),
    )
    assert fields["query"] == {"search": MASK, "limit": "5", "unknown": "x"}
    assert fields["request_body"] == {"name": MASK, "id": "p_1"}
    resp = fields["response_body"]
    assert "Ann Lee" not in str(resp) and "per_secret123" not in str(resp)
    assert resp["message"].endswith("is too long; [redacted] unknown") and resp["details"]["name"] == MASK


def test_bodies_that_are_not_json_are_never_logged() -> None:
    phi = PhiMap(DOC)
    fields = phi_log.exchange_fields(
        phi,
        None,
        None,
        "/enroll/x",
        b"",
        (b"first_name=Ann&email=a%40b.c", "application/x-www-form-urlencoded", False),
        (200, b"{not json Ann", "application/json", False),
    )
    assert "Ann" not in str(fields)
    assert fields["request_body"].startswith("[28 bytes application/x-www-form-urlencoded")


def test_safe_path_cuts_ids() -> None:
    assert phi_log.safe_path("/partner/patients/ptn_abc123/x") == "/partner/patients/ptn_.../x"
    assert phi_log.safe_path("/partner/referrals/summary") == "/partner/referrals/summary"


def test_the_partner_spec_marks_are_all_in_the_map(spec_document: dict[str, Any]) -> None:
    phi = PhiMap(spec_document)
    assert {("query", "search")} <= phi.operations["listPatients"].phi_params
    assert ("path", "patient_id") in phi.operations["getPatient"].phi_params
    assert ("query", "patient_email") in phi.operations["listAppointments"].phi_params
    assert ("path", "referral_id") not in phi.operations["getReferral"].phi_params
    assert phi.operations["createPrescription"].request is not None
    assert not phi.operations["createReferral"].response_has_phi
    red = phi.redactor()
    out = red.value(
        {"first_name": "Ann", "patient_id": "ptn_1", "partner_reference": "c_1", "status": "active"},
        phi.operations["getPatient"].response(200),
    )
    assert out == {"first_name": MASK, "patient_id": MASK, "partner_reference": "c_1", "status": "active"}
