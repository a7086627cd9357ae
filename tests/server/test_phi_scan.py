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
