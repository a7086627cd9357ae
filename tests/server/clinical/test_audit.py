"""The PHI audit trail: append-only in the database (PostgreSQL), and `stealth audit` answers who viewed what."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from server import audit, clock
from server.audit_cli import register, run
from server.db.models_clinical import AuditLog
from tests.server.clinical.helpers import enroll, get


def _parse(argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(argv)


def test_stealth_audit_lists_who_viewed_a_patient(sandbox, capsys):
    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    pid = ref["patient_id"]
    assert get(sandbox, p, f"/partner/patients/{pid}").status_code == 200
    assert get(sandbox, p, f"/partner/patients/{pid}/intake").status_code == 200
    now = clock.real_now()
    args = _parse(
        [
            "audit",
            "--patient",
            pid,
            "--since",
            (now - timedelta(hours=1)).isoformat(),
            "--until",
            (now + timedelta(hours=1)).isoformat(),
            "--category",
            "phi_view",
            "--json",
        ]
    )
    assert run(args, sandbox.state.db) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["source_name"] for r in rows] == ["getPatient", "getPatientIntake"]
    assert all(r["actor"] == {"uid": p.partner_id, "email": None, "role": "partner"} for r in rows)
    assert all(r["schema_version"] == 1 and r["correlation_id"] for r in rows)
    # a window before the reads is empty; the text form names actor and request
    args = _parse(["audit", "--patient", pid, "--until", (now - timedelta(hours=1)).isoformat()])
    assert run(args, sandbox.state.db) == 0
    assert "0 record(s)" in capsys.readouterr().out
    args = _parse(["audit", "--patient", pid])
    assert run(args, sandbox.state.db) == 0
    out = capsys.readouterr().out
    assert f"partner:{p.partner_id}  phi.viewed  patient:{pid}" in out and "patient.created" in out


def test_diff_redacts_phi_values():
    diff = audit.redacted_diff([("email", "a@b.c", "d@e.f"), ("status", "active", "inactive")], ["email"])
    assert diff == [
        {"field": "email", "before": "[redacted]", "after": "[redacted]"},
        {"field": "status", "before": "active", "after": "inactive"},
    ]
    with pytest.raises(ValueError):
        audit.record(
            None,
            action="x",
            category="nope",
            entity_type="x",
            entity_id="x",
            summary="x",
            actor=audit.Actor("u", "system"),
            source_name="t",
        )


def test_audit_table_is_append_only_in_postgres(sandbox):
    if sandbox.state.db.engine.dialect.name != "postgresql":
        pytest.skip("the database-level guard is a PostgreSQL trigger")
    p = sandbox.partner("clinical")
    ref = enroll(sandbox, p)
    pid = ref["patient_id"]
    for statement in (
        update(AuditLog).where(AuditLog.patient_id == pid).values(summary="tampered"),
        delete(AuditLog).where(AuditLog.patient_id == pid),
        text("TRUNCATE audit_logs"),
    ):
        with pytest.raises(DBAPIError, match="append-only"), sandbox.state.db.session() as session:
            session.execute(statement)
    with sandbox.state.db.session() as session:
        assert len(audit.for_patient(session, pid)) == 3  # untouched
