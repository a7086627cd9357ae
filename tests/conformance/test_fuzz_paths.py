"""Regressions found running `make conformance`: relative report dirs and stale schemathesis reports."""

from __future__ import annotations

import json
from pathlib import Path

from conformance import fuzz


def test_run_fuzz_uses_absolute_paths_and_removes_stale_reports(tmp_path, monkeypatch):
    out = tmp_path / "rel" / "schemathesis"
    out.mkdir(parents=True)
    stale = {
        "schemathesis.json": json.dumps({"failures": [], "test_cases": {"generated": 999}}),
        "schemathesis.har": "{}",
        "schemathesis-junit.xml": "<testsuites/>",
    }
    for name, text in stale.items():
        (out / name).write_text(text)
    seen: dict[str, object] = {}

    def fake_command(ctx, spec_path, out_dir, settings, rps):
        seen["spec_path"], seen["out_dir"] = spec_path, out_dir
        return ["true"]

    monkeypatch.setattr(fuzz, "build_command", fake_command)
    monkeypatch.setattr(fuzz, "fuzz_document", lambda ctx: {"openapi": "3.1.0"})
    monkeypatch.chdir(tmp_path)

    class Ctx:
        class client:
            class limiter:
                rps = 1.0

        allow_writes = True

        def __init__(self) -> None:
            self.state = {"product_categories": ["trt-cream"]}

    results = fuzz.run_fuzz(Ctx(), Path("rel/schemathesis"), fuzz.FuzzSettings())
    assert Path(seen["spec_path"]).is_absolute() and Path(seen["out_dir"]).is_absolute()
    for name in stale:
        assert not (out / name).exists(), f"stale {name} survived"
    # With no fresh report, every fuzz check is skipped (never judged on old data).
    assert results and all(r.status.value == "skip" for r in results.values())


def test_partner_catalog_narrows_bodies_but_not_query_filters():
    from conformance.fuzz import fuzz_document

    category = {"type": "string", "pattern": "^[a-z0-9-]+$"}
    ref = {"$ref": "#/components/schemas/ProductCategory"}
    doc = {
        "openapi": "3.1.0",
        "paths": {
            "/partner/referrals": {
                "get": {"parameters": [{"name": "product_category", "in": "query", "schema": dict(ref)}]}
            }
        },
        "components": {"schemas": {"ProductCategory": category}},
    }

    class Ctx:
        class spec:
            pass

        def __init__(self) -> None:
            self.state = {"product_categories": ["peptides", "trt-cream"]}

    Ctx.spec.doc = doc
    Ctx.spec.deref = staticmethod(lambda p: p)
    out = fuzz_document(Ctx())
    assert out["components"]["schemas"]["ProductCategory"]["enum"] == ["peptides", "trt-cream"]
    param = out["paths"]["/partner/referrals"]["get"]["parameters"][0]
    assert param["schema"] == category  # the filter keeps the open schema
    assert doc["components"]["schemas"]["ProductCategory"] == category  # the spec itself is untouched
