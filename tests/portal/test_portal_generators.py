"""Fast tests of the portal's generators: tables, samples and diagrams come from the spec, complete and correct.

Two sources: a small synthetic document (exact expectations), and the real spec bundled from ``spec/``
(every code, every scenario, every operation, every lifecycle).
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from portal import build as portal_build
from portal import diagrams, samples, tables
from portal.specdata import error_catalog, iter_operations, iter_webhooks, lifecycles, sandbox_scenarios

REPO = Path(__file__).resolve().parents[2]

MINI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Mini", "version": "1.2.3"},
    "servers": [{"url": "https://sandbox.example"}, {"url": "http://127.0.0.1:8080"}],
    "security": [{"PartnerId": [], "ApiKey": []}],
    "paths": {
        "/partner/things": {
            "post": {
                "operationId": "createThing",
                "summary": "Create a thing",
                "x-access-tier": "referral",
                "x-sandbox-scenarios": [
                    {
                        "name": "denied",
                        "field": "/metadata/sandbox_scenario",
                        "value": "deny_medical",
                        "outcome": "Denied with medical_contraindication.",
                    },
                    {
                        "name": "expiry",
                        "field": "/partner_reference",
                        "value": "sandbox_expire",
                        "outcome": "Expires after 7 days.",
                    },
                ],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {"type": "object"},
                            "examples": {
                                "basic": {
                                    "value": {
                                        "partner_reference": "cust_1",
                                        "note": "it's",
                                        "n": True,
                                        "metadata": {"a": None},
                                    }
                                }
                            },
                        }
                    }
                },
                "responses": {"201": {"description": "ok"}},
            },
        },
        "/partner/things/{thing_id}/notes": {
            "parameters": [
                {
                    "name": "thing_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "examples": ["thg_123"]},
                }
            ],
            "get": {
                "operationId": "listNotes",
                "summary": "List notes",
                "x-access-tier": "clinical",
                "parameters": [
                    {
                        "name": "kind",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": ["a", "b"]},
                    },
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {"200": {"description": "ok"}},
            },
        },
    },
    "webhooks": {
        "thing.done": {
            "post": {
                "operationId": "onThingDone",
                "summary": "Thing done",
                "x-access-tier": "referral",
                "responses": {"2XX": {"description": "ok"}},
            }
        }
    },
    "components": {
        "securitySchemes": {
            "PartnerId": {"type": "apiKey", "in": "header", "name": "X-Partner-ID"},
            "ApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
        },
        "schemas": {
            "ErrorCode": {
                "type": "string",
                "enum": ["NOPE", "SLOW_DOWN", "OLD_NOPE"],
                "x-error-catalog": {
                    "NOPE": {"status": 404, "retryable": False, "description": "Not there.", "source": "x"},
                    "SLOW_DOWN": {
                        "status": 429,
                        "retryable": True,
                        "description": "Too fast.",
                        "source": "x",
                    },
                    "OLD_NOPE": {
                        "status": 404,
                        "retryable": False,
                        "description": "Old.",
                        "source": "x",
                        "deprecated": True,
                    },
                },
            },
            "Thing": {
                "type": "object",
                "x-lifecycle": {
                    "name": "thing",
                    "property": "status",
                    "initial": "created",
                    "terminal": ["done", "cancelled"],
                    "states": {
                        "created": "New.",
                        "working": "Busy.",
                        "exception": "Delivery exception.",
                        "done": "Finished.",
                        "cancelled": "Cancelled.",
                    },
                    "transitions": [
                        {"from": "created", "to": "working", "event": "thing.working"},
                        {"from": "created", "to": "cancelled", "event": "thing.cancelled"},
                        {"from": "working", "to": "done", "event": "thing.done"},
                        {"from": "working", "to": "exception"},
                        {"from": "exception", "to": "done", "event": "thing.done"},
                    ],
                },
            },
        },
    },
}


# --------------------------------------------------------------------------------------- synthetic document


def test_errors_table_lists_every_code_with_status_and_advice():
    html = tables.errors_table(MINI)
    for code, entry in MINI["components"]["schemas"]["ErrorCode"]["x-error-catalog"].items():
        row = re.search(rf'<tr id="{code}">(.*?)</tr>', html)
        assert row, code
        assert f"<td>{entry['status']}</td>" in row.group(1)
    assert "deprecated" in re.search(r'<tr id="OLD_NOPE">(.*?)</tr>', html).group(1)
    assert "Retry-After" in re.search(r'<tr id="SLOW_DOWN">(.*?)</tr>', html).group(1)


def test_scenarios_table_has_every_scenario():
    html = tables.scenarios_table(MINI)
    for sc in MINI["paths"]["/partner/things"]["post"]["x-sandbox-scenarios"]:
        assert f"<code>{sc['value']}</code>" in html
        assert f"<code>{sc['field']}</code>" in html
        assert sc["outcome"] in html
    assert "POST /partner/things" in html


def test_state_diagram_has_every_state_and_transition():
    lc = MINI["components"]["schemas"]["Thing"]["x-lifecycle"]
    src = diagrams.state_diagram(lc)
    assert src.startswith("stateDiagram-v2\n")
    for state in lc["states"]:
        assert f'state "{state}" as s_{state}' in src
    for t in lc["transitions"]:
        edge = f"s_{t['from']} --> s_{t['to']}"
        assert (edge + f" : {t['event']}" if t.get("event") else edge) in src
    assert "[*] --> s_created" in src
    assert "s_done --> [*]" in src and "s_cancelled --> [*]" in src


def test_happy_path_avoids_failure_states_and_reaches_target():
    lc = MINI["components"]["schemas"]["Thing"]["x-lifecycle"]
    path = diagrams.happy_path(lc, target="done")
    assert [(t["from"], t["to"]) for t in path] == [("created", "working"), ("working", "done")]
    seq = diagrams.referral_sequence(lc)
    assert seq.startswith("sequenceDiagram\n")
    assert "POST thing.working" in seq and "POST thing.done" in seq and "thing.cancelled" not in seq


def test_samples_use_placeholders_and_the_request_example():
    op = MINI["paths"]["/partner/things"]["post"]
    by_label = {
        s["label"]: s["source"] for s in samples.samples_for(MINI, "post", "/partner/things", op, "referral")
    }
    assert set(by_label) == {"curl", "Python (httpx)", "Node.js (fetch)"}
    curl = by_label["curl"]
    assert 'curl -sS -X POST "http://127.0.0.1:8080/partner/things"' in curl
    assert '-H "X-Partner-ID: $STEALTH_PARTNER_ID"' in curl and '-H "X-Api-Key: $STEALTH_API_KEY"' in curl
    assert "X-Access-Tier" not in curl
    body = re.search(r"-d '(.*)'\s*$", curl, re.S).group(1).replace("'\\''", "'")
    assert json.loads(body) == op["requestBody"]["content"]["application/json"]["examples"]["basic"]["value"]
    py = by_label["Python (httpx)"]
    compile(py, "sample.py", "exec")
    assert 'os.environ["STEALTH_API_KEY"]' in py and "httpx.post(" in py and '"n": True' in py
    namespace: dict[str, Any] = {}
    exec(re.search(r"^body = .*?^\}$", py, re.S | re.M).group(0), namespace)
    assert namespace["body"] == op["requestBody"]["content"]["application/json"]["examples"]["basic"]["value"]
    assert "JSON.stringify(" in by_label["Node.js (fetch)"]


def test_samples_path_params_query_and_access_tier():
    op = MINI["paths"]["/partner/things/{thing_id}/notes"]["get"]
    clinical = {
        s["label"]: s["source"]
        for s in samples.samples_for(MINI, "get", "/partner/things/{thing_id}/notes", op, "clinical")
    }
    assert '"http://127.0.0.1:8080/partner/things/$THING_ID/notes?kind=a"' in clinical["curl"]
    assert "thg_123" in clinical["curl"]  # the example id is shown as a hint
    assert '-H "X-Access-Tier: clinical"' in clinical["curl"]
    assert '"X-Access-Tier": "clinical"' in clinical["Python (httpx)"]
    assert '"X-Access-Tier": "clinical"' in clinical["Node.js (fetch)"]
    assert "limit" not in clinical["curl"]  # optional parameters are left out
    prescriber = samples.samples_for(MINI, "get", "/partner/things/{thing_id}/notes", op, "prescriber")
    assert all("X-Access-Tier" not in s["source"] for s in prescriber)


def test_inject_samples_never_touches_the_source():
    before = copy.deepcopy(MINI)
    out = samples.inject_samples(MINI, "referral")
    assert before == MINI
    assert all("x-codeSamples" in op for _m, _p, op in iter_operations(out))


def test_guide_placeholders_are_replaced():
    gen = portal_build.Generated({"partner-api": MINI})
    title, html = portal_build.render_guide(
        "x",
        "# Hello\n\nVersion {{ api_version }}.\n\n{{ errors_table }}\n\n"
        "{{ lifecycle thing }}\n\n{{ sample createThing curl }}\n",
        gen,
    )
    assert title == "Hello" and "Version 1.2.3." in html
    assert 'id="SLOW_DOWN"' in html and 'data-lifecycle="thing"' in html and "$STEALTH_API_KEY" in html
    assert "{{" not in html and gen.used_mermaid


# ------------------------------------------------------------------------------------------------ real spec


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> dict[str, dict[str, Any]]:
    # Always the spec as it is now (build/openapi may be stale): bundled in memory.
    loaded, _notes = portal_build.load_bundles(tmp_path_factory.mktemp("no-bundles"), REPO / "spec")
    return loaded


def test_real_errors_table_has_every_code(docs):
    doc = docs["partner-api"]
    catalog = error_catalog(doc)
    enum = doc["components"]["schemas"]["ErrorCode"]["enum"]
    assert catalog and set(enum) == set(catalog)
    html = tables.errors_table(doc)
    for code, entry in catalog.items():
        row = re.search(rf'<tr id="{code}">(.*?)</tr>', html)
        assert row, f"{code} missing from the errors table"
        assert f"<td>{entry['status']}</td>" in row.group(1), code
        assert tables.advice(code, entry)


def test_real_scenarios_table_has_every_scenario(docs):
    doc = docs["partner-api"]
    html = tables.scenarios_table(doc)
    for sc in sandbox_scenarios(doc):
        value = sc["value"] if isinstance(sc["value"], str) else json.dumps(sc["value"])
        assert f"<code>{tables.escape(value)}</code>" in html, sc
        assert tables.escape(str(sc["outcome"])) in html, sc


def _audiences(docs):
    for a in portal_build.AUDIENCES:
        if a.bundle in docs:
            yield a, docs[a.bundle]


def test_real_samples_for_every_operation_are_valid_code(docs, tmp_path):
    node = shutil.which("node")
    count = 0
    js_files = []
    for a, doc in _audiences(docs):
        rendered = portal_build.render_copy(doc, a.sample_audience)
        for method, path, op in iter_operations(rendered):
            got = {s["label"]: s["source"] for s in op.get("x-codeSamples", [])}
            assert set(got) == {"curl", "Python (httpx)", "Node.js (fetch)"}, (a.slug, method, path)
            compile(got["Python (httpx)"], f"{a.slug}-{op.get('operationId')}.py", "exec")
            assert f"-X {method.upper()}" in got["curl"] or method == "get"
            bash = subprocess.run(["bash", "-n"], input=got["curl"], text=True, capture_output=True)
            assert bash.returncode == 0, (op.get("operationId"), bash.stderr)
            if samples.needs_access_tier(op, a.sample_audience):
                assert "X-Access-Tier: clinical" in got["curl"], op.get("operationId")
            f = tmp_path / f"{a.slug}-{op.get('operationId')}-{count}.mjs"
            f.write_text(got["Node.js (fetch)"])
            js_files.append(f)
            count += 1
    assert count > 0
    if node:
        for f in js_files:
            res = subprocess.run([node, "--check", str(f)], capture_output=True, text=True)
            assert res.returncode == 0, (f.name, res.stderr)


def test_real_lifecycle_diagrams_have_every_state_and_transition(docs):
    found = []
    for api in ("partner-api", "pharmacy-api"):
        for schema, lc in lifecycles(docs.get(api) or {}):
            src = diagrams.state_diagram(lc)
            for state in diagrams.states_of(lc):
                assert f"as {diagrams._sid(state)}\n" in src, (schema, state)
            for t in lc.get("transitions") or []:
                edge = f"{diagrams._sid(t['from'])} --> {diagrams._sid(t['to'])}"
                assert (f"{edge} : {t['event']}" if t.get("event") else edge) in src, (schema, t)
            for s in lc.get("terminal") or []:
                assert f"{diagrams._sid(s)} --> [*]" in src
            found.append(schema)
    assert found, "no x-lifecycle in the spec"


def test_real_referral_sequence_walks_legal_transitions_to_delivered(docs):
    lcs = {lc.get("name"): lc for _s, lc in lifecycles(docs["partner-api"])}
    if "referral" not in lcs:
        pytest.skip("the referral lifecycle is not in the spec yet")
    lc = lcs["referral"]
    path = diagrams.happy_path(lc)
    legal = {(t["from"], t["to"]) for t in lc["transitions"]}
    initials = lc["initial"] if isinstance(lc["initial"], list) else [lc["initial"]]
    assert path and path[0]["from"] in initials and path[-1]["to"] == "delivered"
    assert all((t["from"], t["to"]) in legal for t in path)
    seq = diagrams.referral_sequence(lc)
    for t in path:
        if t.get("event"):
            assert f"POST {t['event']}" in seq


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") and v:
                self.refs.append((tag, k, v))


def test_build_writes_every_page_with_working_relative_links(docs, tmp_path):
    bundle_dir = tmp_path / "none"  # bundle the current spec
    out = tmp_path / "portal"
    manifest = portal_build.build(out, bundle_dir, REPO / "spec", REPO / "node_modules")
    paths = [p["path"] for p in manifest["pages"]]
    assert "index.html" in paths and "downloads.html" in paths
    for slug, _t, _g in portal_build.GUIDES:
        assert f"guides/{slug}.html" in paths
    for a in portal_build.AUDIENCES:
        if a.bundle in docs:
            assert f"reference/{a.slug}.html" in paths
            rendered = json.loads((out / "reference" / f"{a.slug}.openapi.json").read_text())
            ops = list(iter_operations(rendered))
            assert all("x-codeSamples" in op for _m, _p, op in ops)
            assert len(ops) == len(list(iter_operations(docs[a.bundle])))
            assert len(list(iter_webhooks(rendered))) == len(list(iter_webhooks(docs[a.bundle])))
            assert (out / "downloads" / f"{a.bundle}.yaml").is_file()
            assert (out / "downloads" / f"{a.bundle}.json").is_file()
    assert (out / "assets" / "vendor" / "scalar" / "standalone.js").stat().st_size > 1_000_000
    assert (out / "assets" / "vendor" / "mermaid" / "mermaid.min.js").is_file()
    for html_file in out.rglob("*.html"):
        text = html_file.read_text()
        assert "{{" not in text.replace("{{ $", ""), f"unreplaced placeholder in {html_file}"
        parser = _Links()
        parser.feed(text)
        for tag, attr, ref in parser.refs:
            if ref.startswith(("#", "mailto:", "data:")):
                continue
            if re.match(r"^[a-z]+://", ref) or ref.startswith("//") or ref.startswith("/"):
                # Only plain hyperlinks may point elsewhere; nothing that loads may.
                assert tag == "a" and attr == "href", f"{html_file.name}: {tag} {attr}={ref}"
                continue
            target = (html_file.parent / ref.split("#")[0].split("?")[0]).resolve()
            assert target.exists(), f"{html_file.relative_to(out)}: broken link {ref}"


def test_scalar_is_configured_to_stay_local():
    cfg = portal_build.SCALAR_CONFIG
    assert cfg["withDefaultFonts"] is False and cfg["telemetry"] is False
    assert cfg["hideClientButton"] is True and cfg["hideTestRequestButton"] is True
    assert cfg["agent"] == {"disabled": True} and cfg["mcp"] == {"disabled": True}
    assert cfg["showDeveloperTools"] == "never"
    assert not any(k in cfg for k in ("proxy", "proxyUrl", "pluginUrls", "url"))
    a = portal_build.AUDIENCES[0]
    html = portal_build.reference_page(a, MINI, {a.bundle: MINI}, {"scalar": "x"})
    assert '<script src="../assets/vendor/scalar/standalone.js"></script>' in html
    assert f'"url": "./{a.slug}.openapi.json"' in html
    assert "--scalar-font: system-ui" in html.replace("\\n", "\n")
