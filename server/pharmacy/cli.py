"""`stealth clinic create [--name NAME] [--json]`: provision a pharmacy-API clinic and print
``{clinic_id, api_key, signing_secret}`` (the key and secret are shown once)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from server.config import Settings
from server.crypto import SecretBox, load_or_create_key
from server.db.engine import Database
from server.pharmacy.clinics import create_clinic


def register(subparsers: Any) -> None:
    clinic = subparsers.add_parser("clinic", help="pharmacy-API clinics (/api/external)")
    sub = clinic.add_subparsers(dest="clinic_command", required=True)
    create = sub.add_parser("create", help="create a clinic with a clinic-scoped API key")
    create.add_argument("--name", default="Sandbox clinic", help="clinic name")
    create.add_argument("--json", action="store_true", help="print JSON")
    create.add_argument("--schema", default=None, help="PostgreSQL schema (tests)")
    create.set_defaults(func=cmd_clinic_create)


def cmd_clinic_create(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database_url, schema=args.schema)
    try:
        db.migrate()
        creds = create_clinic(
            db, SecretBox(load_or_create_key(settings)), name=args.name, environment=settings.environment
        )
    finally:
        db.dispose()
    data = creds.as_dict()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key}: {value}")
    return 0
