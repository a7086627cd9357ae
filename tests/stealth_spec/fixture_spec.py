"""A small multi-file partner-API spec that passes every lint rule; tests mutate it to make rules fire.

``files()`` returns ``{relative path: YAML content}``; ``write(files, dir)`` writes them.
The fixture has a referral-tier create/list/get, a clinical-only read, a sandbox-only control, a webhook,
a schema with a lifecycle, a oneOf by tier and PHI properties.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

H = "../components/headers/"
R = "../components/responses/"
S = "../components/schemas/"
P = "../components/parameters/"

RATE = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-Request-Id")


def _headers(prefix: str, *extra: str) -> dict[str, Any]:
    return {name: {"$ref": f"{prefix}{name}.yaml"} for name in (*RATE, *extra)}


def _error_response(description: str, codes: list[str], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "description": description,
        "x-error-codes": codes,
        "headers": _headers("../headers/", *extra),
        "content": {
            "application/json": {
                "schema": {"$ref": "../schemas/ErrorResponse.yaml"},
                "examples": {
                    code: {
                        "summary": code,
                        "value": {"error": {"code": code, "message": "No.", "details": None}},
                    }
                    for code in codes
                },
            }
        },
    }


ERRORS = {
    "BadRequest": ("Invalid request.", ["INVALID_BODY"], 400, ()),
    "Unauthorized": ("Bad credentials.", ["MISSING_CREDENTIALS"], 401, ()),
    "Forbidden": ("Not allowed.", ["IP_NOT_ALLOWED"], 403, ()),
    "ClinicalForbidden": ("Needs the clinical tier.", ["CLINICAL_ACCESS_REQUIRED"], 403, ()),
    "WidgetNotFound": ("No such widget.", ["WIDGET_NOT_FOUND"], 404, ()),
    "PayloadTooLarge": ("Too large.", ["PAYLOAD_TOO_LARGE"], 413, ()),
    "UnsupportedMediaType": ("Not JSON.", ["UNSUPPORTED_MEDIA_TYPE"], 415, ()),
    "RateLimited": ("Slow down.", ["RATE_LIMIT_EXCEEDED"], 429, ("Retry-After",)),
    "InternalError": ("Oops.", ["INTERNAL_ERROR"], 500, ()),
    "ServiceUnavailable": ("Down.", ["SERVICE_UNAVAILABLE"], 503, ("Retry-After",)),
}


def _std(path_param: bool, body: bool, forbidden: str = "Forbidden") -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["400"] = {"$ref": R + "BadRequest.yaml"}
    out["401"] = {"$ref": R + "Unauthorized.yaml"}
    out["403"] = {"$ref": R + f"{forbidden}.yaml"}
    if path_param:
        out["404"] = {"$ref": R + "WidgetNotFound.yaml"}
    if body:
        out["413"] = {"$ref": R + "PayloadTooLarge.yaml"}
        out["415"] = {"$ref": R + "UnsupportedMediaType.yaml"}
    out["429"] = {"$ref": R + "RateLimited.yaml"}
    out["500"] = {"$ref": R + "InternalError.yaml"}
    out["503"] = {"$ref": R + "ServiceUnavailable.yaml"}
    return out


WIDGET_EXAMPLE = {
    "widget_id": "wid_abc123",
    "status": "created",
    "owner_name": "Jane Doe",
    "view": {"kind": "basic", "label": "Basic"},
    "created_at": "2026-03-02T14:00:00Z",
}
CLINICAL_WIDGET_EXAMPLE = {**WIDGET_EXAMPLE, "view": {"kind": "clinical", "diagnosis": "Hypogonadism"}}


def _prop(description: str, schema: dict[str, Any], example: Any, phi: bool = False) -> dict[str, Any]:
    out = {"description": description, **schema, "examples": [example]}
    if phi:
        out["x-phi"] = True
    return out


def _schemas() -> dict[str, Any]:
    error_codes = {
        "INVALID_BODY": 400,
        "MISSING_CREDENTIALS": 401,
        "IP_NOT_ALLOWED": 403,
        "CLINICAL_ACCESS_REQUIRED": 403,
        "SANDBOX_ONLY_OPERATION": 403,
        "WIDGET_NOT_FOUND": 404,
        "DUPLICATE_REFERENCE": 409,
        "PAYLOAD_TOO_LARGE": 413,
        "UNSUPPORTED_MEDIA_TYPE": 415,
        "RATE_LIMIT_EXCEEDED": 429,
        "INTERNAL_ERROR": 500,
        "SERVICE_UNAVAILABLE": 503,
    }
    return {
        "ErrorCode": {
            "title": "ErrorCode",
            "description": "Machine-readable error code.",
            "type": "string",
            "enum": list(error_codes),
            "examples": ["WIDGET_NOT_FOUND"],
            "x-error-catalog": {
                code: {
                    "status": status,
                    "retryable": status >= 500,
                    "description": f"{code}.",
                    "source": "test",
                }
                for code, status in error_codes.items()
            },
        },
        "ErrorBody": {
            "title": "ErrorBody",
            "description": "What went wrong.",
            "type": "object",
            "additionalProperties": False,
            "required": ["code", "message"],
            "properties": {
                "code": {"$ref": "./ErrorCode.yaml"},
                "message": _prop("Explanation.", {"type": "string"}, "No."),
                "details": _prop("Specifics.", {"type": ["object", "null"]}, None),
            },
            "examples": [{"code": "WIDGET_NOT_FOUND", "message": "No."}],
        },
        "ErrorResponse": {
            "title": "ErrorResponse",
            "description": "The error envelope.",
            "type": "object",
            "additionalProperties": False,
            "required": ["error"],
            "properties": {"error": {"$ref": "./ErrorBody.yaml"}},
            "examples": [{"error": {"code": "WIDGET_NOT_FOUND", "message": "No."}}],
        },
        "Pagination": {
            "title": "Pagination",
            "description": "Where a list stands.",
            "type": "object",
            "additionalProperties": False,
            "required": ["has_more", "next_cursor"],
            "properties": {
                "has_more": _prop("More pages follow.", {"type": "boolean"}, False),
                "next_cursor": _prop("Next cursor.", {"type": ["string", "null"]}, None),
            },
            "examples": [{"has_more": False, "next_cursor": None}],
        },
        "WidgetStatus": {
            "title": "WidgetStatus",
            "description": "Where a widget stands.",
            "type": "string",
            "enum": ["created", "active", "done"],
            "examples": ["created"],
        },
        "BasicView": {
            "title": "BasicView",
            "description": "The view every tier sees.",
            "x-access-tier": ["referral", "clinical", "prescriber"],
            "type": "object",
            "additionalProperties": False,
            "required": ["kind", "label"],
            "properties": {
                "kind": _prop("Discriminator.", {"type": "string", "const": "basic"}, "basic"),
                "label": _prop("A label.", {"type": "string", "maxLength": 20}, "Basic"),
            },
            "examples": [{"kind": "basic", "label": "Basic"}],
        },
        "ClinicalView": {
            "title": "ClinicalView",
            "description": "The view clinical partners see.",
            "x-access-tier": "clinical",
            "type": "object",
            "additionalProperties": False,
            "required": ["kind", "diagnosis"],
            "properties": {
                "kind": _prop("Discriminator.", {"type": "string", "const": "clinical"}, "clinical"),
                "diagnosis": _prop("Diagnosis.", {"type": "string"}, "Hypogonadism", phi=True),
            },
            "examples": [{"kind": "clinical", "diagnosis": "Hypogonadism"}],
        },
        "Widget": {
            "title": "Widget",
            "description": "A widget.",
            "type": "object",
            "additionalProperties": False,
            "required": ["widget_id", "status", "created_at"],
            "properties": {
                "widget_id": _prop("Id.", {"type": "string", "pattern": "^wid_[a-z0-9]{6,}$"}, "wid_abc123"),
                "status": {"$ref": "./WidgetStatus.yaml", "description": "Status.", "examples": ["created"]},
                "owner_name": _prop(
                    "Owner's name.", {"type": "string", "maxLength": 100}, "Jane Doe", phi=True
                ),
                "view": {
                    "description": "Tier-dependent view.",
                    "oneOf": [{"$ref": "./BasicView.yaml"}, {"$ref": "./ClinicalView.yaml"}],
                    "examples": [{"kind": "basic", "label": "Basic"}],
                },
                "created_at": _prop(
                    "Created.", {"type": "string", "format": "date-time"}, "2026-03-02T14:00:00Z"
                ),
            },
            "examples": [WIDGET_EXAMPLE],
            "x-lifecycle": {
                "name": "widget",
                "property": "status",
                "initial": "created",
                "terminal": ["done"],
                "states": {"created": "New.", "active": "Active.", "done": "Done."},
                "transitions": [
                    {"from": "created", "to": "active", "event": "widget.activated"},
                    {"from": "active", "to": "done"},
                ],
            },
        },
        "WidgetList": {
            "title": "WidgetList",
            "description": "A page of widgets.",
            "type": "object",
            "additionalProperties": False,
            "required": ["widgets", "pagination"],
            "properties": {
                "widgets": {
                    "description": "The widgets.",
                    "type": "array",
                    "items": {"$ref": "./Widget.yaml"},
                    "examples": [[]],
                },
                "pagination": {"$ref": "./Pagination.yaml"},
            },
            "examples": [{"widgets": [], "pagination": {"has_more": False, "next_cursor": None}}],
        },
        "CreateWidgetRequest": {
            "title": "CreateWidgetRequest",
            "description": "What to create.",
            "type": "object",
            "additionalProperties": False,
            "required": ["label"],
            "properties": {
                "label": _prop("A label.", {"type": "string", "maxLength": 20}, "Basic"),
                "owner_name": _prop("Owner's name.", {"type": "string"}, "Jane Doe", phi=True),
            },
            "examples": [{"label": "Basic"}],
        },
        "WidgetActivatedEvent": {
            "title": "WidgetActivatedEvent",
            "description": "Sent when a widget becomes active.",
            "type": "object",
            "additionalProperties": False,
            "required": ["event_id", "event_type", "widget_id"],
            "properties": {
                "event_id": _prop(
                    "Event id.",
                    {"type": "string", "pattern": "^evt_[0-9a-f]{24}$"},
                    "evt_5f2c9a7e1b3d4c6a8e0f2a4b",
                ),
                "event_type": _prop(
                    "Event type.", {"type": "string", "const": "widget.activated"}, "widget.activated"
                ),
                "widget_id": _prop("Id.", {"type": "string"}, "wid_abc123"),
            },
            "examples": [
                {
                    "event_id": "evt_5f2c9a7e1b3d4c6a8e0f2a4b",
                    "event_type": "widget.activated",
                    "widget_id": "wid_abc123",
                }
            ],
        },
        "AdvanceWidgetRequest": {
            "title": "AdvanceWidgetRequest",
            "description": "Where to move the widget.",
            "type": "object",
            "additionalProperties": False,
            "required": ["target_status"],
            "properties": {
                "target_status": {
                    "$ref": "./WidgetStatus.yaml",
                    "description": "Target.",
                    "examples": ["active"],
                },
            },
            "examples": [{"target_status": "active"}],
        },
    }


def _paths() -> dict[str, Any]:
    ok_headers = _headers(H)
    widget_200 = {
        "description": "The widget.",
        "headers": ok_headers,
        "content": {
            "application/json": {
                "schema": {"$ref": S + "Widget.yaml"},
                "examples": {
                    "basic": {"summary": "Basic view", "value": WIDGET_EXAMPLE},
                    "clinical": {"summary": "Clinical view", "value": CLINICAL_WIDGET_EXAMPLE},
                },
            }
        },
    }
    return {
        "paths/partner_widgets.yaml": {
            "post": {
                "operationId": "createWidget",
                "summary": "Create a widget",
                "description": "Creates a widget.",
                "tags": ["Widgets"],
                "x-access-tier": "referral",
                "x-idempotency": {
                    "key": "label",
                    "replay_status": 200,
                    "conflict_code": "DUPLICATE_REFERENCE",
                },
                "x-validation-order": ["INVALID_BODY"],
                "x-sandbox-scenarios": [
                    {
                        "name": "stays_created",
                        "field": "/label",
                        "value": "stuck",
                        "outcome": "Never activates.",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": S + "CreateWidgetRequest.yaml"},
                            "examples": {"basic": {"summary": "Basic", "value": {"label": "Basic"}}},
                        }
                    },
                },
                "responses": {
                    "201": {
                        **widget_200,
                        "description": "Created.",
                        "links": {
                            "GetWidgetById": {
                                "operationId": "getWidget",
                                "parameters": {"widget_id": "$response.body#/widget_id"},
                            }
                        },
                    },
                    **_std(False, True),
                },
            },
            "get": {
                "operationId": "listWidgets",
                "summary": "List widgets",
                "description": "Lists widgets.",
                "tags": ["Widgets"],
                "x-access-tier": "referral",
                "parameters": [{"$ref": P + "Limit.yaml"}, {"$ref": P + "Cursor.yaml"}],
                "responses": {
                    "200": {
                        "description": "A page.",
                        "headers": ok_headers,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": S + "WidgetList.yaml"},
                                "examples": {
                                    "empty": {
                                        "summary": "Empty",
                                        "value": {
                                            "widgets": [],
                                            "pagination": {"has_more": False, "next_cursor": None},
                                        },
                                    }
                                },
                            }
                        },
                    },
                    **_std(False, False),
                },
            },
        },
        "paths/partner_widgets_{widget_id}.yaml": {
            "parameters": [{"$ref": P + "WidgetId.yaml"}],
            "get": {
                "operationId": "getWidget",
                "summary": "Get a widget",
                "description": "Returns one widget.",
                "tags": ["Widgets"],
                "x-access-tier": "referral",
                "responses": {"200": widget_200, **_std(True, False)},
            },
        },
        "paths/partner_clinical_widgets_{widget_id}.yaml": {
            "parameters": [{"$ref": P + "WidgetId.yaml"}],
            "get": {
                "operationId": "getClinicalWidget",
                "summary": "Get a widget with its clinical view",
                "description": "Returns one widget with PHI.",
                "tags": ["Widgets"],
                "x-access-tier": "clinical",
                "security": [{"PartnerId": [], "ApiKey": [], "AccessTier": []}],
                "responses": {
                    "200": {
                        **widget_200,
                        "headers": _headers(H, "Cache-Control"),
                    },
                    **_std(True, False, forbidden="ClinicalForbidden"),
                },
            },
        },
        "paths/partner_sandbox_widgets_{widget_id}_advance.yaml": {
            "parameters": [{"$ref": P + "WidgetId.yaml"}],
            "post": {
                "operationId": "advanceSandboxWidget",
                "summary": "Advance a widget",
                "description": "Moves a widget.",
                "tags": ["Sandbox"],
                "x-access-tier": ["referral"],
                "x-sandbox-only": True,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": S + "AdvanceWidgetRequest.yaml"},
                            "examples": {
                                "active": {"summary": "Activate", "value": {"target_status": "active"}}
                            },
                        }
                    },
                },
                "responses": {"200": widget_200, **_std(True, True)},
            },
        },
        "webhooks/widget.activated.yaml": {
            "post": {
                "operationId": "onWidgetActivated",
                "summary": "Widget activated",
                "description": "Sent when a widget becomes active.",
                "tags": ["Widgets"],
                "x-access-tier": "referral",
                "parameters": [{"$ref": P + "StealthSignature.yaml"}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": S + "WidgetActivatedEvent.yaml"},
                            "examples": {
                                "activated": {
                                    "summary": "Activated",
                                    "value": {
                                        "event_id": "evt_5f2c9a7e1b3d4c6a8e0f2a4b",
                                        "event_type": "widget.activated",
                                        "widget_id": "wid_abc123",
                                    },
                                }
                            },
                        }
                    },
                },
                "responses": {"2XX": {"description": "Acknowledge."}, "default": {"description": "Retried."}},
            }
        },
    }


def _components() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, schema in _schemas().items():
        out[f"components/schemas/{name}.yaml"] = schema
    for name, (desc, codes, _status, extra) in ERRORS.items():
        out[f"components/responses/{name}.yaml"] = _error_response(desc, codes, extra)
    header_schema = {"type": "integer", "minimum": 0, "examples": [1]}
    for name in (*RATE, "Retry-After", "Cache-Control"):
        schema = (
            {"type": "string", "examples": ["x"]}
            if name in ("X-Request-Id", "Cache-Control")
            else header_schema
        )
        out[f"components/headers/{name}.yaml"] = {
            "description": f"{name}.",
            "required": True,
            "schema": schema,
        }
    out["components/parameters/Limit.yaml"] = {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Page size.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50, "examples": [50]},
    }
    out["components/parameters/Cursor.yaml"] = {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "Cursor.",
        "schema": {"type": "string", "examples": ["abc"]},
    }
    out["components/parameters/WidgetId.yaml"] = {
        "name": "widget_id",
        "in": "path",
        "required": True,
        "description": "Id.",
        "schema": {"type": "string", "pattern": "^wid_[a-z0-9]{6,}$", "examples": ["wid_abc123"]},
    }
    out["components/parameters/StealthSignature.yaml"] = {
        "name": "X-Stealth-Signature",
        "in": "header",
        "required": True,
        "description": "Signature.",
        "schema": {"type": "string", "examples": ["sha256=00"]},
    }
    return out


def files() -> dict[str, Any]:
    comps = _components()
    registered: dict[str, dict[str, Any]] = {}
    for rel in comps:
        _, ctype, fname = rel.split("/")
        registered.setdefault(ctype, {})[fname[:-5]] = {"$ref": rel}
    paths = _paths()
    root = {
        "openapi": "3.1.0",
        "info": {"title": "Stealth Health Partner API", "version": "1.0.0", "description": "Lint fixture."},
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "security": [{"PartnerId": [], "ApiKey": []}],
        "tags": [
            {"name": "Widgets", "description": "Widgets."},
            {"name": "Sandbox", "description": "Sandbox."},
        ],
        "paths": {
            "/partner/widgets": {"$ref": "paths/partner_widgets.yaml"},
            "/partner/widgets/{widget_id}": {"$ref": "paths/partner_widgets_{widget_id}.yaml"},
            "/partner/clinical/widgets/{widget_id}": {
                "$ref": "paths/partner_clinical_widgets_{widget_id}.yaml"
            },
            "/partner/sandbox/widgets/{widget_id}/advance": {
                "$ref": "paths/partner_sandbox_widgets_{widget_id}_advance.yaml"
            },
        },
        "webhooks": {"widget.activated": {"$ref": "webhooks/widget.activated.yaml"}},
        "components": {
            "securitySchemes": {
                "PartnerId": {"type": "apiKey", "in": "header", "name": "X-Partner-ID"},
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "AccessTier": {"type": "apiKey", "in": "header", "name": "X-Access-Tier"},
            },
            **registered,
        },
    }
    return {"openapi.yaml": root, **paths, **comps}


def write(content: dict[str, Any], directory: Path) -> Path:
    for rel, data in content.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        path.write_text(yaml.dump(copy.deepcopy(data), Dumper=dumper, sort_keys=False), encoding="utf-8")
    return directory
