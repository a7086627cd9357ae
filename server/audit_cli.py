"""`stealth audit`: who viewed or changed PHI for one patient in a time window (seed 002 §3.2).

    stealth audit --patient ptn_... [--since 2026-03-01T00:00:00Z] [--until 2026-04-01T00:00:00Z]
                  [--category phi_view] [--json]

Prints the audit records of the patient, oldest first: when, actor (role and id), action, entity, source,
request id and source IP. Reads only; the audit table is append-only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from server import audit
from server.clock import iso, parse_iso
from server.config import Settings


def _when(value: str | None, name: str) -> Any:
    if not value:
        return None
    try:
        return parse_iso(value if "T" in value else value + "T00:00:00Z")
    except ValueError:
        raise SystemExit(f"error: --{name} must be an ISO 8601 date or date-time, not {value!r}") from None


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from server.db.engine import Database

    db = Database(settings.database_url)
    try:
        db.migrate()
        return run(args, db)
    finally:
        db.dispose()


def run(args: argparse.Namespace, db: Any) -> int:
    """Print the patient's audit records from ``db`` (a server.db.engine.Database)."""
    since, until = _when(args.since, "since"), _when(args.until, "until")
    with db.session() as session:
        rows = [
            audit.as_dict(r)
            for r in audit.for_patient(session, args.patient, since, until, category=args.category)
        ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    window = f"{iso(since) if since else 'the beginning'} to {iso(until) if until else 'now'}"
    print(f"PHI audit trail of {args.patient}, {window}: {len(rows)} record(s)")
    for r in rows:
        actor = r["actor"]
        print(
            f"{r['at']}  {actor['role']}:{actor['uid']}  {r['action']}  {r['entity_type']}:{r['entity_id']}"
            f"  via {r['source']}/{r['source_name']}  request={r['correlation_id'] or '-'}"
            f"  ip={r['ip_address'] or '-'}",
            file=sys.stdout,
        )
    return 0


def register(subparsers: Any) -> None:
    """Add `stealth audit` to the CLI's subparsers."""
    parser = subparsers.add_parser("audit", help="list who viewed or changed PHI for a patient")
    parser.add_argument("--patient", required=True, help="the patient id (ptn_...)")
    parser.add_argument("--since", help="from this ISO 8601 date or date-time (inclusive)")
    parser.add_argument("--until", help="up to this ISO 8601 date or date-time (exclusive)")
    parser.add_argument("--category", choices=audit.CATEGORIES, help="only records of this category")
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    parser.set_defaults(func=cmd_audit)
