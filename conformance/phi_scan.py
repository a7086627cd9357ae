"""Find PHI values in server logs: collect the values a run created, then scan log text for them.

The values are collected along the spec's ``x-phi`` marks (:class:`server.redaction.PhiMap`): every string at
a PHI position of a JSON value the run sent or received (the conformance suite's exchanges, schemathesis' too),
and of every webhook payload stored in the sandbox's database, plus the PHI columns of the sandbox's patient and
prescriber tables. A value that also appears at a
non-PHI position (a product category is PHI on a patient but not on a referral), a constant of the contract
(enum or const), an ISO timestamp or a string shorter than ``MIN_LENGTH`` is not searched for: finding it in a
log would prove nothing.

    python -m conformance.phi_scan --database-url sqlite:///... LOGFILE...
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from server.redaction import MASK, PhiMap, Redactor, Shape
from stealth_spec.walk import nodes

MIN_LENGTH = 6
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d")


def spec_constants(document: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for node in nodes(document):
        for v in node.get("enum") or []:
            if isinstance(v, str):
                out.add(v)
        if isinstance(node.get("const"), str):
            out.add(node["const"])
    return out


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str):  # keys too: metadata keys are partner data, not PHI
                yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


class PhiValues:
    """PHI values seen in a run, and the non-PHI values that rule some of them out."""

    def __init__(self, phi_map: PhiMap, constants: set[str]) -> None:
        self.phi_map = phi_map
        self.constants = constants
        self.phi: set[str] = set()
        self.non_phi: set[str] = set()
        # non-PHI text a PHI value may be part of without that proving anything (catalog text, metadata keys,
        # query values); never error answers, whose messages may quote the caller's PHI
        self.public: set[str] = set()

    def add(self, value: Any, shape: Shape | None, *, public: bool = True) -> None:
        red: Redactor = self.phi_map.redactor()
        kept = red.value(value, shape)
        self.phi |= {v for v in red.values if not v.isdigit()}
        seen = {s for s in _strings(kept) if s != MASK}
        self.non_phi |= seen
        if public:
            self.public |= seen

    def add_literal(self, *values: str) -> None:
        self.phi |= {v for v in values if v}

    def add_exchange(self, operation_id: str, request: Any, status: int, response: Any) -> None:
        op = self.phi_map.operations.get(operation_id)
        if request is not None:
            self.add(request, op.request if op else None)
        if response is not None:
            self.add(response, op.response(status) if op else None, public=status < 400)

    def values(self) -> set[str]:
        """The values worth searching for: long enough, not a contract constant or timestamp, and not part of a
        value seen at a non-PHI position (a condition name that is also public catalog text, say: finding it in
        a log proves nothing)."""
        candidates = {
            v
            for v in self.phi
            if len(v) >= MIN_LENGTH
            and v not in self.constants
            and v not in self.non_phi
            and not _TIMESTAMP.match(v)
            and len(set(v))
            >= 3  # "0000…" (a fuzzer's filler) identifies no one, and matches any run of zeros
        }
        public = "\n".join(self.public)
        return {v for v in candidates if v not in public}


def scan(text: str, values: Iterable[str]) -> list[str]:
    """The values found in ``text`` (also JSON-escaped), sorted."""
    found = []
    for v in values:
        if v in text or json.dumps(v)[1:-1] in text:
            found.append(v)
    return sorted(found)


def collect_from_database(database_url: str, phi: PhiValues, schema: str | None = None) -> PhiValues:
    """Add the PHI the sandbox stored: webhook payloads (by their spec shapes) and patient/prescriber rows."""
    from sqlalchemy import select

    from server.db.engine import Database
    from server.db.models import Event, IntakeSubmission, Patient
    from server.db.models_clinical import PartnerPrescription, PatientAddress, Prescriber
    from server.db.models_prescriber import PrescriberAppointment

    db = Database(database_url, schema=schema)
    try:
        with db.session() as session:
            for event_type, payload in session.execute(select(Event.event_type, Event.payload)):
                phi.add(payload, phi.phi_map.webhooks.get(event_type))
            for p in session.scalars(select(Patient)):
                phi.add_literal(p.first_name, p.last_name, p.email, p.phone or "", p.id)
                if p.date_of_birth:
                    phi.add_literal(p.date_of_birth.isoformat())
            for a in session.scalars(select(PatientAddress)):
                phi.add_literal(a.line1, a.line2 or "", a.city, a.postal_code)
            for s in session.scalars(select(IntakeSubmission)):
                phi.add(s.answers, Shape(phi=True))
            for r in session.scalars(select(Prescriber)):
                phi.add_literal(r.first_name, r.last_name, r.email, r.npi or "", r.dea_number or "")
                phi.add(r.licenses, Shape(phi=True))
            for rx in session.scalars(select(PartnerPrescription)):
                phi.add_literal(rx.notes or "", rx.patient_id, rx.appointment_id, rx.rx_id)
            for appt in session.scalars(select(PrescriberAppointment)):
                phi.add(appt.patient, Shape(phi=True))
                phi.add(appt.intake_answers, Shape(phi=True))
                phi.add_literal(appt.id, appt.patient_id)
    finally:
        db.dispose()
    return phi


def add_exchanges(phi: PhiValues, exchanges: Iterable[Any]) -> None:
    """Add what a conformance run sent and received (``conformance.http.Exchange``, schemathesis' included);
    query parameters the spec does not mark x-phi are non-PHI positions (a summary's ``date``, say)."""
    from urllib.parse import parse_qsl, urlsplit

    for ex in exchanges:
        op = phi.phi_map.operations.get(ex.operation_id or "")
        marked = {name for where, name in op.phi_params if where == "query"} if op else set()
        for name, value in parse_qsl(urlsplit(ex.url or "").query, keep_blank_values=True):
            if name in marked:
                phi.phi.add(value)
            else:
                phi.non_phi.add(value)
                phi.public.add(value)
        request = None
        if ex.request_body:
            try:
                request = json.loads(ex.request_body)
            except ValueError:
                request = None
        phi.add_exchange(ex.operation_id or "", request, ex.status or 0, ex.json)


def scan_logs(
    database_url: str,
    log_paths: list[Path],
    document: dict[str, Any],
    phi: PhiValues | None = None,
    schema: str | None = None,
) -> tuple[int, list[str]]:
    """(number of values searched for, values found in the logs); ``phi`` may hold values seen elsewhere."""
    phi = collect_from_database(
        database_url, phi or PhiValues(PhiMap(document), spec_constants(document)), schema=schema
    )
    values = phi.values()
    text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in log_paths if p.is_file())
    return len(values), scan(text, values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--schema", default=None, help="PostgreSQL schema (tests)")
    parser.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    from server.config import DEFAULT_SPEC_DIR
    from server.spec import load_spec

    searched, found = scan_logs(args.database_url, args.logs, load_spec(DEFAULT_SPEC_DIR), schema=args.schema)
    if found:
        print(f"PHI in logs: {len(found)} of {searched} values found", file=sys.stderr)
        return 1
    print(f"no PHI in logs: 0 of {searched} PHI values found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
