"""`stealth trigger <event_type>`: make a webhook event fire in the sandbox, with every event before
it in the lifecycle (POST /partner/sandbox/events/trigger creates the referral and drives it along
the legal transitions, like POST /partner/sandbox/referrals/{id}/advance; for clinical event types it
enrolls a synthetic patient, or has a synthetic prescriber submit a prescription)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from server.tooling.common import Api, ToolError, add_credentials, credentials


def trigger(api: Api, event_type: str, **options: Any) -> dict[str, Any]:
    body = {"event_type": event_type, **{k: v for k, v in options.items() if v is not None}}
    result: dict[str, Any] = api.call("POST", "/partner/sandbox/events/trigger", json=body)
    return result


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "trigger", help="make a webhook event fire in the sandbox (like `stripe trigger`)"
    )
    p.add_argument("event_type", help="e.g. referral.shipped")
    p.add_argument("--referral-id", help="drive this existing referral instead of creating one")
    p.add_argument(
        "--product-category", help="category of the referral (or, for prescription.*, medication) to create"
    )
    p.add_argument("--partner-reference", help="partner_reference of the referral to create")
    p.add_argument("--denial-category", help="for referral.denied")
    p.add_argument("--cancelled-by", choices=["partner", "patient"], help="for referral.cancelled")
    p.add_argument("--exception-type", help="for referral.delivery_exception")
    p.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    add_credentials(p)
    p.set_defaults(func=cmd_trigger)


def cmd_trigger(args: argparse.Namespace, _settings: Any = None) -> int:
    try:
        api = Api.connect(credentials(args))
        result = trigger(
            api,
            args.event_type,
            referral_id=args.referral_id,
            product_category=args.product_category,
            partner_reference=args.partner_reference,
            denial_category=args.denial_category,
            cancelled_by=args.cancelled_by,
            exception_type=args.exception_type,
        )
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    objects = " ".join(f"{k}={v}" for k, v in result["objects"].items()) or "-"
    print(f"Triggered {result['event_type']} ({objects}):")
    for e in result["events"]:
        print(f"  {e['occurred_at']}  {e['event_type']:32} {e['event_id']}")
    return 0
