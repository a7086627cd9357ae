"""Clinical-tier rules no schema can express: prescriber registration and deactivation, intake availability."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from ..http import Exchange
from ..spec import Operation
from . import CheckResult, Context, check
from ._util import describe, error_code


def _op(ctx: Context, operation_id: str) -> Operation | None:
    return next((o for o in ctx.spec.operations if o.operation_id == operation_id), None)


def _expect_error(res: CheckResult, ctx: Context, ex: Exchange, code: str, what: str) -> None:
    status = int(ctx.spec.error_catalog.get(code, {}).get("status") or 0)
    res.expect(
        ex.status == status and error_code(ex) == code,
        f"{what}: expected {status or '?'} {code}, got {describe(ex)}",
        ex,
    )


def _prescriber_body(ctx: Context, op: Operation, expires_at: str) -> dict[str, Any] | None:
    """The documented example with every license valid until ``expires_at`` and a fresh partner_reference."""
    body = copy.deepcopy(op.request_example())
    if not isinstance(body, dict) or not isinstance(body.get("licenses"), list):
        return None
    for lic in body["licenses"]:
        lic["expires_at"] = expires_at
    body["partner_reference"] = ctx.fresh_reference("prb")
    return body


def _inline_prescription(ctx: Context, op: Operation, prescriber_id: str) -> dict[str, Any] | None:
    """The documented inline-patient example (a first-time patient, so it needs no object of the run)."""
    body = next(
        (b for b in op.request_examples() if isinstance(b, dict) and "inline_patient" in b),
        None,
    )
    if body is None:
        return None
    body["prescriber_id"] = prescriber_id
    body["partner_reference"] = ctx.fresh_reference("prx")
    return body


def _register(ctx: Context, res: CheckResult, *, record: bool = True) -> str | None:
    """Register the documented example prescriber; ``record`` lets later checks use it (not a deactivated one)."""
    op = _op(ctx, "createPrescriber")
    if op is None:
        return None
    future = (datetime.now(UTC) + timedelta(days=730)).date().isoformat()
    body = _prescriber_body(ctx, op, future)
    if body is None:
        res.skip("createPrescriber has no request example with licenses to register with")
        return None
    ex = ctx.client.op_request(op, creds=ctx.primary, json_body=body)
    pid = (ex.json or {}).get("prescriber_id") if isinstance(ex.json, dict) else None
    if ex.status != 201 or not isinstance(pid, str):
        res.fail(f"registering the documented example prescriber: expected 201, got {describe(ex)}", ex)
        return None
    if record:
        ctx.created.setdefault(op.path, []).append((ex.json, ctx.primary))
    return pid


@check(
    "clinical.prescriber_registration",
    "Registering a prescriber with an expired license gets 400 PRESCRIBER_LICENSE_EXPIRED; a valid one is created",
    ["CLN-PRB-002", "CLN-ERR-001"],
    writes=True,
    tiers=["clinical"],
)
def prescriber_registration(ctx: Context, res: CheckResult) -> None:
    op = _op(ctx, "createPrescriber")
    if op is None:
        res.omit("the tier has no prescriber registration")
        return
    expired = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    body = _prescriber_body(ctx, op, expired)
    if body is None:
        res.skip("createPrescriber has no request example with licenses")
        return
    ex = ctx.client.op_request(op, creds=ctx.primary, json_body=body)
    _expect_error(res, ctx, ex, "PRESCRIBER_LICENSE_EXPIRED", "a license that expired two days ago")
    if _register(ctx, res) is not None:
        res.ok()


@check(
    "clinical.prescriber_inactive",
    "After deactivation the prescriber is inactive and a prescription naming it gets 422 PRESCRIBER_INACTIVE",
    ["CLN-PRB-004", "CLN-ERR-001"],
    writes=True,
    tiers=["clinical"],
)
def prescriber_inactive(ctx: Context, res: CheckResult) -> None:
    deactivate, create_rx = _op(ctx, "deactivatePrescriber"), _op(ctx, "createPrescription")
    if deactivate is None or create_rx is None:
        res.omit("the tier has no prescriber deactivation or partner prescriptions")
        return
    pid = _register(ctx, res, record=False)
    if pid is None:
        return
    ex = ctx.client.op_request(deactivate, creds=ctx.primary, path_values={"prescriber_id": pid})
    status = (ex.json or {}).get("status") if isinstance(ex.json, dict) else None
    res.expect(
        ex.status == 200 and status == "inactive",
        f"deactivating {pid}: expected 200 with status inactive, got {describe(ex)}",
        ex,
    )
    body = _inline_prescription(ctx, create_rx, pid)
    if body is None:
        res.skip("createPrescription has no inline-patient example")
        return
    rx = ctx.client.op_request(create_rx, creds=ctx.primary, json_body=body)
    _expect_error(res, ctx, rx, "PRESCRIBER_INACTIVE", "a prescription naming a deactivated prescriber")


@check(
    "clinical.intake_not_available",
    "The intake of a patient who never submitted one gets 404 INTAKE_NOT_AVAILABLE",
    ["CLN-INT-002", "CLN-ERR-001"],
    writes=True,
    tiers=["clinical"],
)
def intake_not_available(ctx: Context, res: CheckResult) -> None:
    create_rx, intake = _op(ctx, "createPrescription"), _op(ctx, "getPatientIntake")
    if create_rx is None or intake is None:
        res.omit("the tier has no partner prescriptions or patient intake")
        return
    pid = _register(ctx, res)
    if pid is None:
        return
    body = _inline_prescription(ctx, create_rx, pid)
    if body is None:
        res.skip("createPrescription has no inline-patient example")
        return
    rx = ctx.client.op_request(create_rx, creds=ctx.primary, json_body=body)
    patient = (rx.json or {}).get("patient_id") if isinstance(rx.json, dict) else None
    if rx.status != 201 or not isinstance(patient, str):
        res.fail(f"a prescription for the documented inline patient: expected 201, got {describe(rx)}", rx)
        return
    ctx.created.setdefault(create_rx.path, []).append((rx.json, ctx.primary))
    # A partner-submitted prescription has no questionnaire behind it (DECISIONS C-029).
    ex = ctx.client.op_request(intake, creds=ctx.primary, path_values={"patient_id": patient})
    _expect_error(
        res, ctx, ex, "INTAKE_NOT_AVAILABLE", f"the intake of {patient}, who only has a prescription"
    )
