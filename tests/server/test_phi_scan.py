"""conformance.phi_scan: the PHI a sandbox stored is collected from its database and found in a log that
holds it (and not in one that does not)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.phi_scan import main, scan_logs
from tests.server.clinical.helpers import enroll


def test_scan_finds_stored_phi_in_a_log(sandbox: Any, spec_document: dict[str, Any], tmp_path: Path) -> None:
    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p, first_name="Quentinia", last_name="Blackwood")
    clean = tmp_path / "clean.log"
    clean.write_text('{"operation_id":"getPatient","response_body":{"first_name":"[redacted]"}}\n')
    leaky = tmp_path / "leaky.log"
    leaky.write_text(f"GET /partner/patients/{ref['patient_id']} first_name=Blackwood\n")
    url, schema = sandbox.state.db.url, sandbox.state.db.schema
    searched, found = scan_logs(url, [clean], spec_document, schema=schema)
    assert searched > 10 and found == []
    searched, found = scan_logs(url, [leaky], spec_document, schema=schema)
    assert {"Blackwood", ref["patient_id"]} <= set(found)
    extra = ["--schema", schema] if schema else []
    assert main(["--database-url", url, *extra, str(clean)]) == 0
    assert main(["--database-url", url, *extra, str(leaky)]) == 1


def test_a_phi_value_that_is_part_of_public_text_is_not_searched_for(spec_document):
    from conformance.phi_scan import PhiValues, spec_constants
    from server.redaction import PhiMap

    phi = PhiValues(PhiMap(spec_document), spec_constants(spec_document))
    phi.add_literal("Testosterone Replacement Therapy", "Jane Quill-Roe")
    phi.add({"display_name": "Testosterone Replacement Therapy (Cream)"}, None)  # catalog text (listProducts)
    phi.add_exchange("getPatient", None, 400, {"error": {"message": "Jane Quill-Roe is not valid"}})
    assert phi.values() == {"Jane Quill-Roe"}


def test_query_values_and_keys_at_non_phi_positions_are_not_phi(spec_document):
    from types import SimpleNamespace

    from conformance.phi_scan import PhiValues, add_exchanges, spec_constants
    from server.redaction import PhiMap

    phi = PhiValues(PhiMap(spec_document), spec_constants(spec_document))
    phi.add_literal("1980-01-01", "Kx7-unusual", "Jane Quill-Roe")
    exchanges = [
        SimpleNamespace(
            operation_id="getReferralSummary",
            url="http://x/partner/referrals/summary?date=1980-01-01",
            request_body=None,
            status=200,
            json=None,
        ),
        SimpleNamespace(
            operation_id="listPatients",
            url="http://x/partner/patients?search=Jane+Quill-Roe",
            request_body='{"metadata": {"LKx7-unusual": "v"}}',
            status=200,
            json=None,
        ),
    ]
    add_exchanges(phi, exchanges)
    assert phi.values() == {"Jane Quill-Roe"}  # search is marked x-phi: still searched for


def test_degenerate_fuzzer_strings_are_not_searched_for(spec_document):
    from conformance.phi_scan import PhiValues, spec_constants
    from server.redaction import PhiMap

    phi = PhiValues(PhiMap(spec_document), spec_constants(spec_document))
    phi.add_literal("0" * 101, "abababab", "Jane Quill-Roe")
    assert phi.values() == {"Jane Quill-Roe"}
