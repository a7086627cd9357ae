"""The requirements catalog and the check registry agree."""

from __future__ import annotations

import re

from conformance.checks import load_all
from conformance.report import checks_for, coverage, load_catalog

SEEDS = {"000", "001", "002", "003", "004"}


def test_catalog_is_well_formed() -> None:
    catalog = load_catalog()
    ids = [r["id"] for r in catalog]
    assert len(ids) == len(set(ids)), "duplicate requirement ids"
    assert len(catalog) >= 150
    for r in catalog:
        assert re.fullmatch(r"(REF|PHX|CLN|PRS|GLO)-[A-Z]+-\d{3}", r["id"]), r["id"]
        assert r["seed"] in SEEDS, r
        assert str(r.get("section", "")).strip(), r
        assert len(str(r.get("text", ""))) > 15, r
        assert ("verified_by" in r) != ("manual" in r), f"{r['id']}: exactly one of verified_by / manual"
        if "manual" in r:
            assert len(r["manual"]) > 10, f"{r['id']}: say why no HTTP check can see it"
        else:
            assert r["verified_by"], r["id"]


def test_every_referenced_check_exists_and_every_check_names_real_requirements() -> None:
    registry = load_all()
    catalog = load_catalog()
    ids = {r["id"] for r in catalog}
    for r in catalog:
        for cid in r.get("verified_by") or []:
            assert cid in registry, f"{r['id']} references unknown check {cid}"
    for chk in registry.values():
        assert chk.requirements, f"{chk.id} verifies no requirement"
        for req in chk.requirements:
            assert req in ids, f"check {chk.id} names unknown requirement {req}"
    # Every registered check is reachable from the catalog (no orphan check).
    covered = {c for r in catalog for c in checks_for(r)}
    assert set(registry) <= covered


def test_coverage_line_counts() -> None:
    auto, total = coverage(load_catalog())
    assert 0 < auto < total
    assert auto / total > 0.6
