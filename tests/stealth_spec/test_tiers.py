"""Per-tier subsets: what each tier may call and receive, nothing else (stealth_spec.tiers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stealth_spec.bundle import bundle, check_document
from stealth_spec.tiers import TIERS, TierError, tier_subset
from stealth_spec.walk import all_schemas, operations
from tests.conftest import SPECS, bundled
from tests.stealth_spec import fixture_spec


@pytest.fixture(scope="module")
def fixture_bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return bundle(fixture_spec.write(fixture_spec.files(), tmp_path_factory.mktemp("spec")))


def _text(doc: dict[str, Any]) -> str:
    return json.dumps(doc)


def test_referral_subset(fixture_bundle: dict[str, Any]) -> None:
    sub = tier_subset(fixture_bundle, "referral")
    assert set(sub["paths"]) == {
        "/partner/widgets",
        "/partner/widgets/{widget_id}",
    }  # no clinical, no sandbox
    assert set(sub["webhooks"]) == {"widget.activated"}
    schemas = sub["components"]["schemas"]
    assert "ClinicalView" not in schemas  # the clinical oneOf branch is gone, and pruned
    assert schemas["Widget"]["properties"]["view"]["$ref"] == "#/components/schemas/BasicView"  # collapsed
    assert "owner_name" not in schemas["Widget"]["properties"]  # PHI stripped
    assert '"x-phi"' not in _text(sub) and "Jane Doe" not in _text(sub)  # ... from examples too
    get_examples = sub["paths"]["/partner/widgets/{widget_id}"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["examples"]
    assert set(get_examples) == {"basic"}  # the clinical-view example is left out
    assert "AccessTier" not in sub["components"]["securitySchemes"]
    assert "ClinicalForbidden" not in sub["components"].get("responses", {})
    assert [t["name"] for t in sub["tags"]] == ["Widgets"]  # Sandbox tag unused
    assert "(referral tier)" in sub["info"]["title"]
    assert check_document(sub) == []


def test_clinical_subset(fixture_bundle: dict[str, Any]) -> None:
    sub = tier_subset(fixture_bundle, "clinical")
    assert "/partner/clinical/widgets/{widget_id}" in sub["paths"]
    assert "/partner/sandbox/widgets/{widget_id}/advance" not in sub["paths"]
    widget = sub["components"]["schemas"]["Widget"]
    assert "owner_name" in widget["properties"]
    assert len(widget["properties"]["view"]["oneOf"]) == 2
    assert check_document(sub) == []


def test_prescriber_subset(fixture_bundle: dict[str, Any]) -> None:
    sub = tier_subset(fixture_bundle, "prescriber")
    assert set(sub["paths"]) == {"/partner/widgets", "/partner/widgets/{widget_id}"}
    assert "ClinicalView" not in sub["components"]["schemas"]
    assert "owner_name" in sub["components"]["schemas"]["Widget"]["properties"]  # PHI stays for prescribers
    assert check_document(sub) == []


def test_full_bundle_keeps_sandbox_operations(fixture_bundle: dict[str, Any]) -> None:
    assert "/partner/sandbox/widgets/{widget_id}/advance" in fixture_bundle["paths"]


def test_body_left_without_example_is_an_error(tmp_path: Path) -> None:
    files = fixture_spec.files()
    media = files["paths/partner_widgets_{widget_id}.yaml"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]
    del media["examples"]["basic"]
    doc = bundle(fixture_spec.write(files, tmp_path))
    tier_subset(doc, "clinical")  # fine: the clinical example is valid there
    with pytest.raises(TierError, match="no example is valid for this tier"):
        tier_subset(doc, "referral")


def test_unknown_tier(fixture_bundle: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="unknown tier"):
        tier_subset(fixture_bundle, "gold")


# --- the real partner API --------------------------------------------------------------------------------

REAL = (SPECS["partner"] / "openapi.yaml").is_file()


@pytest.mark.skipif(not REAL, reason="no partner spec")
@pytest.mark.parametrize("tier", TIERS)
def test_real_subset_holds_only_the_tier(tier: str) -> None:
    full = bundled("partner")
    sub = tier_subset(full, tier)
    for o in operations(sub):
        assert o.op.get("x-sandbox-only") is not True, o.pointer
        assert o.tiers() & {tier, "referral"}, o.pointer
    kept = {(o.section, o.key, o.method) for o in operations(sub)}
    expected = {
        (o.section, o.key, o.method)
        for o in operations(full)
        if o.op.get("x-sandbox-only") is not True and o.tiers() & {tier, "referral"}
    }
    assert kept == expected
    for pointer, schema in all_schemas(sub):
        branches = (schema.get("oneOf") or []) + (schema.get("anyOf") or [])
        for branch in branches:
            ref = branch.get("$ref", "") if isinstance(branch, dict) else ""
            target = sub["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}) if ref else branch
            tiers = target.get("x-access-tier") if isinstance(target, dict) else None
            if tiers is not None:
                assert tier in ([tiers] if isinstance(tiers, str) else tiers), f"{pointer}: {ref}"
    if tier == "referral":
        assert '"x-phi": true' not in json.dumps(sub).replace('"x-phi":true', '"x-phi": true')
