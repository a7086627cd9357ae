"""The `stealth` console script: partners, keys, and `stealth serve`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from server import logs
from server.config import ConfigError, Settings

DEMO_FILE = "demo-partners.json"


def _state(settings: Settings) -> Any:
    from server.app import build_state

    return build_state(settings)


class _Store:
    """Database and secrets only: partner commands need no spec."""

    def __init__(self, settings: Settings) -> None:
        from server.crypto import SecretBox, load_or_create_key
        from server.db.engine import Database

        self.db = Database(settings.database_url)
        self.db.migrate()
        self.box = SecretBox(load_or_create_key(settings))


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
        return
    if isinstance(data, dict):
        width = max(len(k) for k in data) if data else 0
        for key, value in data.items():
            print(f"{key.ljust(width)}  {value}")
    else:
        print(data)


def cmd_partner_create(args: argparse.Namespace, settings: Settings) -> int:
    from server.services.partners import create_partner

    state = _Store(settings)
    try:
        creds = create_partner(
            state.db,
            state.box,
            tier=args.tier,
            environment=settings.environment,
            name=args.name,
            webhook_url=args.webhook_url,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = creds.as_dict()
    out.pop("name")
    _print(out, args.json)
    return 0


def cmd_partner_set_webhook(args: argparse.Namespace, settings: Settings) -> int:
    from server.services.partners import set_webhook_url

    state = _Store(settings)
    try:
        out = set_webhook_url(state.db, args.partner_id, None if args.clear else args.webhook_url)
    except LookupError:
        print(f"error: no partner {args.partner_id}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print(out, args.json)
    return 0


def cmd_partner_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from server.services.partners import rotate_key

    state = _Store(settings)
    try:
        out = rotate_key(state.db, args.partner_id)
    except LookupError:
        print(f"error: no partner {args.partner_id}", file=sys.stderr)
        return 1
    _print(out, args.json)
    return 0


def cmd_partner_list(args: argparse.Namespace, settings: Settings) -> int:
    from server.repositories import partners as partners_repo

    state = _Store(settings)
    with state.db.session() as session:
        rows = [
            {
                "partner_id": p.id,
                "name": p.name,
                "tier": p.tier,
                "environment": p.environment,
                "active": p.active,
                "webhook_url": p.webhook_url,
            }
            for p in partners_repo.list_all(session)
        ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['partner_id']:40} {r['tier']:10} {r['environment']:10} {r['name']}")
    return 0


def provision_demo_partners(settings: Settings, state: Any) -> list[dict[str, str]]:
    """One demo partner per tier on first run; credentials kept (0600) so later runs print them again."""
    from server.repositories import partners as partners_repo
    from server.services.partners import create_partner

    path = Path(settings.state_dir) / DEMO_FILE
    if path.is_file():
        demo = json.loads(path.read_text())
        with state.db.session() as session:
            if all(partners_repo.get(session, d["partner_id"]) is not None for d in demo):
                return demo
    demo = []
    for tier in ("referral", "clinical", "prescriber"):
        creds = create_partner(
            state.db,
            state.box,
            tier=tier,
            environment=settings.environment,
            name=f"Demo {tier.capitalize()} Partner",
            slug=f"demo_{tier}",
        )
        demo.append(creds.as_dict())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(demo, fh, indent=2)
    os.replace(tmp, path)
    os.chmod(path, 0o600)
    return demo


def banner(settings: Settings, demo: list[dict[str, str]]) -> str:
    base = settings.base_url
    lines = [
        f"Stealth Health {settings.environment} on {base}  (spec: {base}/openapi.json)",
        f"database: {settings.database_url}",
        "",
        "Demo partners (kept in " + str(Path(settings.state_dir) / DEMO_FILE) + "):",
    ]
    for d in demo:
        lines += [
            f"  {d['tier']:10} X-Partner-ID: {d['partner_id']}",
            f"  {'':10} X-Api-Key:    {d['api_key']}",
            f"  {'':10} webhook secret: {d['webhook_secret']}",
        ]
    ref = demo[0]
    lines += [
        "",
        "Create a referral:",
        f"  curl -s -X POST {base}/partner/referrals \\",
        f"    -H 'X-Partner-ID: {ref['partner_id']}' -H 'X-Api-Key: {ref['api_key']}' \\",
        "    -H 'Content-Type: application/json' \\",
        '    -d \'{"partner_reference": "cust_12345", "product_category": "trt-cream"}\'',
        "Then open its enrollment_url in a browser and pay with 4242 4242 4242 4242.",
        "Ctrl-C stops the server.",
    ]
    return "\n".join(lines)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from server.app import create_app

    changes: dict[str, Any] = {}
    if args.host:
        changes["host"] = args.host
    if args.port:
        changes["port"] = args.port
    settings = settings.with_(**changes) if changes else settings
    state = _state(settings)
    demo = provision_demo_partners(settings, state) if settings.environment == "sandbox" else []
    if demo:
        print(banner(settings, demo), flush=True)
    app = create_app(settings, state=state)
    logs.configure(settings)  # our handler and format; uvicorn's access log (raw URLs) stays off
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    state.db.dispose()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stealth", description="Stealth Health reference sandbox")
    sub = parser.add_subparsers(dest="command", required=True)

    partner = sub.add_parser("partner", help="manage partners and their keys")
    psub = partner.add_subparsers(dest="partner_command", required=True)
    create = psub.add_parser("create", help="create a partner and print its credentials")
    create.add_argument("--tier", required=True, choices=["referral", "clinical", "prescriber"])
    create.add_argument("--name")
    create.add_argument("--webhook-url")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_partner_create)
    rotate = psub.add_parser("rotate-key", help="issue a new API key; the old one stays valid for 7 days")
    rotate.add_argument("partner_id")
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(func=cmd_partner_rotate)
    setwh = psub.add_parser("set-webhook", help="change where a partner's webhooks are delivered")
    setwh.add_argument("partner_id")
    target = setwh.add_mutually_exclusive_group(required=True)
    target.add_argument("webhook_url", nargs="?")
    target.add_argument("--clear", action="store_true", help="stop delivering (attempts record no_endpoint)")
    setwh.add_argument("--json", action="store_true")
    setwh.set_defaults(func=cmd_partner_set_webhook)
    plist = psub.add_parser("list", help="list partners")
    plist.add_argument("--json", action="store_true")
    plist.set_defaults(func=cmd_partner_list)

    serve = sub.add_parser("serve", help="migrate, provision demo partners and serve the sandbox")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(func=cmd_serve)

    from server.tooling.cli import register as register_partner_tooling

    register_partner_tooling(sub)  # stealth listen, stealth trigger, stealth worker

    from server.pharmacy import cli as pharmacy_cli

    pharmacy_cli.register(sub)  # stealth clinic create

    from server.audit_cli import register as register_audit

    register_audit(sub)  # stealth audit

    for name, (_module, _func, help_text) in DELEGATED.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


# Commands with parsers of their own: `stealth <name> ...` hands the rest of the line to them.
DELEGATED: dict[str, tuple[str, str, str]] = {
    "conformance": (
        "conformance.cli",
        "main",
        "check a deployment (sandbox or production) against the spec and the seeds' rules",
    ),
}


def run_delegated(name: str, argv: list[str]) -> int:
    import importlib

    module, func, _help = DELEGATED[name]
    return int(getattr(importlib.import_module(module), func)(argv))


def main(argv: list[str] | None = None) -> int:
    # connexion imports starlette.testclient, which warns about httpx; irrelevant to a server.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        return run_delegated(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args, settings))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
