"""Every spec lint rule passes the good fixture and fires on a fixture broken for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stealth_spec import lint
from stealth_spec.bundle import bundle, dump
from stealth_spec.tiers import tier_subset
from tests.stealth_spec import fixture_spec

Files = dict[str, Any]
EXTENSIONS = lint.load_extensions()
CREATE = "paths/partner_widgets.yaml"
GET = "paths/partner_widgets_{widget_id}.yaml"
CLINICAL = "paths/partner_clinical_widgets_{widget_id}.yaml"
SANDBOX = "paths/partner_sandbox_widgets_{widget_id}_advance.yaml"
HOOK = "webhooks/widget.activated.yaml"
WIDGET = "components/schemas/Widget.yaml"
CODES = "components/schemas/ErrorCode.yaml"


def _lint(tmp_path: Path, files: Files, rule_id: str) -> list[lint.Finding]:
    spec = fixture_spec.write(files, tmp_path / "spec")
    return lint.lint_source(spec, EXTENSIONS, only={rule_id})


def _set(path: str, *keys: Any, value: Any) -> Callable[[Files], None]:
    def mutate(files: Files) -> None:
        node = files[path]
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return mutate


def _del(path: str, *keys: Any) -> Callable[[Files], None]:
    def mutate(files: Files) -> None:
        node = files[path]
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return mutate


def _add_file(rel: str, content: Any) -> Callable[[Files], None]:
    def mutate(files: Files) -> None:
        files[rel] = content

    return mutate


def _unregister(ctype: str, name: str) -> Callable[[Files], None]:
    def mutate(files: Files) -> None:
        del files["openapi.yaml"]["components"][ctype][name]

    return mutate


def _add_unused_schema(files: Files) -> None:
    files["components/schemas/Orphan.yaml"] = {"description": "Unused.", "type": "string", "examples": ["x"]}
    files["openapi.yaml"]["components"]["schemas"]["Orphan"] = {"$ref": "components/schemas/Orphan.yaml"}


def _phi_required(files: Files) -> None:
    files[WIDGET]["required"].append("owner_name")
    for ex in files[WIDGET]["examples"]:
        ex["owner_name"] = "Jane Doe"


def _example_error_code(files: Files) -> None:
    ex = files["components/responses/Unauthorized.yaml"]["content"]["application/json"]["examples"]
    ex["MISSING_CREDENTIALS"]["value"]["error"]["code"] = "IP_NOT_ALLOWED"


# (rule id, what is broken, mutation)
CASES: list[tuple[str, str, Callable[[Files], None]]] = [
    ("operation-fields", "no operationId", _del(CREATE, "post", "operationId")),
    ("operation-fields", "no summary on a webhook", _del(HOOK, "post", "summary")),
    ("operation-fields", "no tags", _del(GET, "get", "tags")),
    ("operation-fields", "undefined tag", _set(GET, "get", "tags", value=["Nope"])),
    ("operation-fields", "no x-access-tier", _del(HOOK, "post", "x-access-tier")),
    ("operation-fields", "bad x-access-tier", _set(GET, "get", "x-access-tier", value="gold")),
    ("operation-fields", "operationId not camelCase", _set(GET, "get", "operationId", value="get_widget")),
    ("summary-style", "final period", _set(GET, "get", "summary", value="Get a widget.")),
    ("summary-style", "Title Case", _set(GET, "get", "summary", value="Get One Widget")),
    ("summary-style", "no verb", _set(GET, "get", "summary", value="The widget")),
    ("summary-style", "lower-case start", _set(HOOK, "post", "summary", value="widget activated")),
    ("responses-required", "no 401", _del(GET, "get", "responses", "401")),
    ("responses-required", "no 404 with a path parameter", _del(GET, "get", "responses", "404")),
    ("responses-required", "no 413 with a body", _del(CREATE, "post", "responses", "413")),
    ("responses-required", "no 400 with parameters", _del(CREATE, "get", "responses", "400")),
    ("responses-required", "no success", _del(GET, "get", "responses", "200")),
    (
        "response-headers",
        "no X-Request-Id",
        _del("components/responses/Forbidden.yaml", "headers", "X-Request-Id"),
    ),
    (
        "response-headers",
        "no Retry-After on 429",
        _del("components/responses/RateLimited.yaml", "headers", "Retry-After"),
    ),
    (
        "response-headers",
        "no rate headers on success",
        _set(GET, "get", "responses", "200", "headers", value={}),
    ),
    (
        "phi-cache-control",
        "PHI without Cache-Control",
        _set(
            CLINICAL,
            "get",
            "responses",
            "200",
            "headers",
            value=fixture_spec._headers("../components/headers/"),
        ),
    ),
    (
        "examples-present",
        "request body without example",
        _del(CREATE, "post", "requestBody", "content", "application/json", "examples"),
    ),
    (
        "examples-present",
        "webhook body without example",
        _del(HOOK, "post", "requestBody", "content", "application/json", "examples"),
    ),
    (
        "example-valid",
        "invalid id in example",
        _set(
            CREATE,
            "post",
            "requestBody",
            "content",
            "application/json",
            "examples",
            "basic",
            "value",
            value={"label": "x" * 30},
        ),
    ),
    (
        "pagination",
        "list without cursor",
        _set(CREATE, "get", "parameters", value=[{"$ref": "../components/parameters/Limit.yaml"}]),
    ),
    ("links", "create without links", _del(CREATE, "post", "responses", "201", "links")),
    (
        "links",
        "link to unknown operation",
        _set(CREATE, "post", "responses", "201", "links", "GetWidgetById", "operationId", value="nope"),
    ),
    ("security", "clinical op without AccessTier", _del(CLINICAL, "get", "security")),
    ("sandbox", "sandbox tag without x-sandbox-only", _del(SANDBOX, "post", "x-sandbox-only")),
    (
        "sandbox",
        "scenario with a bad field",
        _set(CREATE, "post", "x-sandbox-scenarios", 0, "field", value="/nope"),
    ),
    (
        "sandbox",
        "scenario with an invalid value",
        _set(CREATE, "post", "x-sandbox-scenarios", 0, "value", value=3),
    ),
    ("sandbox", "scenario missing outcome", _del(CREATE, "post", "x-sandbox-scenarios", 0, "outcome")),
    (
        "path-style",
        "snake_case path segment",
        lambda f: f["openapi.yaml"]["paths"].__setitem__(
            "/partner/widget_things", f["openapi.yaml"]["paths"].pop("/partner/widgets")
        ),
    ),
    (
        "path-style",
        "camelCase path parameter",
        lambda f: f["openapi.yaml"]["paths"].__setitem__(
            "/partner/widgets/{widgetId}", f["openapi.yaml"]["paths"].pop("/partner/widgets/{widget_id}")
        ),
    ),
    ("schema-docs", "property without description", _del(WIDGET, "properties", "created_at", "description")),
    ("schema-docs", "property without examples", _del(WIDGET, "properties", "widget_id", "examples")),
    ("schema-docs", "component schema without description", _del(WIDGET, "description")),
    (
        "inline-model",
        "$ref narrowed by a const sibling",
        _set(WIDGET, "properties", "status", "const", value="created"),
    ),
    (
        "inline-model",
        "inline enum",
        _set(
            WIDGET,
            "properties",
            "color",
            value={"description": "Color.", "type": "string", "enum": ["red", "blue"], "examples": ["red"]},
        ),
    ),
    (
        "inline-model",
        "inline nested object",
        _set(
            WIDGET,
            "properties",
            "size",
            value={
                "description": "Size.",
                "type": "object",
                "properties": {"w": {"type": "integer"}},
                "examples": [{"w": 1}],
            },
        ),
    ),
    (
        "inline-model",
        "constrained array items",
        _set(
            WIDGET,
            "properties",
            "tags",
            value={
                "description": "Tags.",
                "type": "array",
                "items": {"type": "string", "maxLength": 5},
                "examples": [["a"]],
            },
        ),
    ),
    (
        "inline-model",
        "$ref with siblings in items",
        _set(
            "components/schemas/WidgetList.yaml",
            "properties",
            "widgets",
            "items",
            value={"$ref": "./Widget.yaml", "description": "A widget."},
        ),
    ),
    (
        "snake-case",
        "camelCase property",
        lambda f: f[WIDGET]["properties"].update(
            {"createdBy": {"description": "x", "type": "string", "examples": ["x"]}}
        ),
    ),
    (
        "snake-case",
        "camelCase query parameter",
        _set("components/parameters/Limit.yaml", "name", value="pageSize"),
    ),
    ("known-extensions", "undocumented extension", _set(GET, "get", "x-internal", value=True)),
    (
        "known-extensions",
        "undocumented extension on a property",
        _set(WIDGET, "properties", "widget_id", "x-secret", value=True),
    ),
    ("phi-marks", "x-phi not true", _set(WIDGET, "properties", "owner_name", "x-phi", value="yes")),
    ("phi-marks", "x-phi on a whole schema", _set(WIDGET, "x-phi", value=True)),
    ("phi-required", "required PHI in a referral shape", _phi_required),
    ("error-catalog", "enum code without catalog entry", lambda f: f[CODES]["enum"].append("NEW_CODE")),
    (
        "error-catalog",
        "catalog entry without enum value",
        lambda f: f[CODES]["enum"].remove("DUPLICATE_REFERENCE"),
    ),
    (
        "error-catalog",
        "catalog entry without status",
        _del(CODES, "x-error-catalog", "INVALID_BODY", "status"),
    ),
    (
        "error-codes",
        "code used under another status",
        _set(
            "components/responses/Forbidden.yaml", "x-error-codes", value=["INVALID_BODY", "IP_NOT_ALLOWED"]
        ),
    ),
    (
        "error-codes",
        "unknown code",
        _set("components/responses/Forbidden.yaml", "x-error-codes", value=["NOPE"]),
    ),
    (
        "error-codes",
        "error response without codes",
        _del("components/responses/Forbidden.yaml", "x-error-codes"),
    ),
    ("error-examples", "example code not listed", _example_error_code),
    (
        "error-examples",
        "listed code without example",
        _set(
            "components/responses/Forbidden.yaml",
            "x-error-codes",
            value=["IP_NOT_ALLOWED", "CLINICAL_ACCESS_REQUIRED"],
        ),
    ),
    (
        "error-code-values",
        "unknown code in x-validation-order",
        _set(CREATE, "post", "x-validation-order", value=["INVALID_BODY", "NOPE"]),
    ),
    (
        "error-code-values",
        "x-validation-order code not in the op's responses",
        _set(CREATE, "post", "x-validation-order", value=["WIDGET_NOT_FOUND"]),
    ),
    (
        "error-code-values",
        "unknown x-error-code",
        _set(
            "components/schemas/CreateWidgetRequest.yaml", "properties", "label", "x-error-code", value="NOPE"
        ),
    ),
    (
        "error-code-values",
        "unknown idempotency conflict code",
        _set(CREATE, "post", "x-idempotency", "conflict_code", value="NOPE"),
    ),
    (
        "lifecycle",
        "state missing from the enum",
        _set(WIDGET, "x-lifecycle", "states", "archived", value="Gone."),
    ),
    ("lifecycle", "enum value without state", _del(WIDGET, "x-lifecycle", "states", "done")),
    (
        "lifecycle",
        "transition out of a terminal state",
        lambda f: f[WIDGET]["x-lifecycle"]["transitions"].append({"from": "done", "to": "active"}),
    ),
    (
        "lifecycle",
        "event that is not a webhook",
        _set(WIDGET, "x-lifecycle", "transitions", 1, "event", value="widget.finished"),
    ),
    ("lifecycle", "unknown initial state", _set(WIDGET, "x-lifecycle", "initial", value="draft")),
    ("lifecycle", "unreachable state", _set(WIDGET, "x-lifecycle", "transitions", 0, "to", value="done")),
    ("no-unused-components", "registered but unreferenced schema", _add_unused_schema),
    ("component-files", "component file not registered", _unregister("headers", "Cache-Control")),
    (
        "component-files",
        "unregistered extra file",
        _add_file("components/schemas/Stray.yaml", {"description": "x", "type": "string", "examples": ["x"]}),
    ),
    (
        "file-names",
        "webhook file named differently",
        lambda f: (
            f.__setitem__("webhooks/widget_activated.yaml", f.pop(HOOK)),
            f["openapi.yaml"]["webhooks"].__setitem__(
                "widget.activated", {"$ref": "webhooks/widget_activated.yaml"}
            ),
        ),
    ),
    ("file-names", "path file not in the root", _add_file("paths/partner_stray.yaml", {})),
]


def test_every_rule_has_a_failing_case() -> None:
    assert {c[0] for c in CASES} == set(lint.RULES)


@pytest.mark.parametrize("rule_id", sorted(lint.RULES))
def test_rule_passes_good_fixture(tmp_path: Path, rule_id: str) -> None:
    findings = _lint(tmp_path, fixture_spec.files(), rule_id)
    assert findings == []


@pytest.mark.parametrize(("rule_id", "what", "mutate"), CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_rule_fires(tmp_path: Path, rule_id: str, what: str, mutate: Callable[[Files], None]) -> None:
    files = fixture_spec.files()
    mutate(files)
    findings = _lint(tmp_path, files, rule_id)
    assert findings, f"{rule_id} did not fire on: {what}"
    assert {f.rule for f in findings} == {rule_id}


def test_bundles_and_tier_subsets_are_clean(tmp_path: Path) -> None:
    spec = fixture_spec.write(fixture_spec.files(), tmp_path / "spec")
    doc = bundle(spec)
    dump(doc, tmp_path / "out" / "api")
    for tier in ("referral", "clinical", "prescriber"):
        dump(tier_subset(doc, tier), tmp_path / "out" / f"api.{tier}")
    for path in sorted((tmp_path / "out").glob("*.json")):
        assert lint.lint_document(path, EXTENSIONS) == [], path.name


def test_bundle_findings_point_at_the_bundle(tmp_path: Path) -> None:
    files = fixture_spec.files()
    del files[GET]["get"]["summary"]
    spec = fixture_spec.write(files, tmp_path / "spec")
    dump(bundle(spec), tmp_path / "api")
    findings = lint.lint_document(tmp_path / "api.json", EXTENSIONS, only={"operation-fields"})
    assert [f.where for f in findings] == [
        f"{tmp_path / 'api.json'}#/paths/~1partner~1widgets~1{{widget_id}}/get"
    ]


def test_source_findings_point_at_the_file(tmp_path: Path) -> None:
    files = fixture_spec.files()
    del files[GET]["get"]["summary"]
    findings = _lint(tmp_path, files, "operation-fields")
    assert len(findings) == 1
    assert findings[0].where.startswith(str(tmp_path / "spec" / GET))


def test_extensions_table_is_read() -> None:
    assert {"x-access-tier", "x-phi", "x-error-catalog", "x-lifecycle", "x-sandbox-only"} <= EXTENSIONS


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = fixture_spec.write(fixture_spec.files(), tmp_path / "good")
    assert lint.main([str(spec)]) == 0
    files = fixture_spec.files()
    del files[GET]["get"]["tags"]
    bad = fixture_spec.write(files, tmp_path / "bad")
    assert lint.main([str(bad)]) == 1
    assert "[operation-fields] missing tags" in capsys.readouterr().out
