"""`stealth listen --forward-to URL`: follow the partner's events (GET /partner/events) and forward
each one, signed with the partner's webhook secret exactly as the sandbox signs deliveries
(X-Stealth-Signature and the Standard Webhooks headers), to a local URL; one line per delivery."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx

from server.clock import iso, parse_iso, real_now
from server.tooling.common import Api, ToolError, add_credentials, credentials
from server.webhooks import signing

CATCH_UP_WINDOW = timedelta(seconds=120)


class Listener:
    def __init__(
        self,
        api: Api,
        forward_to: str,
        secret: str,
        *,
        event_types: set[str] | None = None,
        since: datetime | None = None,
        out: Callable[[str], None] = print,
        forward_client: httpx.Client | None = None,
    ) -> None:
        self.api = api
        self.forward_to = forward_to
        self.secret = secret
        self.event_types = event_types
        self.since = since
        self.out = out
        self.forward = forward_client or httpx.Client(timeout=10.0, follow_redirects=False)
        self.seen: dict[str, datetime] = {}

    def start_time(self) -> datetime:
        """The partner's sandbox time (events carry it); real time outside the sandbox."""
        try:
            return parse_iso(self.api.call("GET", "/partner/sandbox/clock")["now"])
        except ToolError:
            return real_now()

    def fetch(self) -> list[dict[str, Any]]:
        """New events since the last poll, oldest first."""
        if self.since is None:
            self.since = self.start_time()
        after = self.since - CATCH_UP_WINDOW if self.seen else self.since
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        for _page in range(100):
            params: dict[str, Any] = {"limit": 200, "created_after": iso(after)}
            if cursor:
                params["cursor"] = cursor
            page = self.api.call("GET", "/partner/events", params=params)
            found += page["events"]
            cursor = page["pagination"]["next_cursor"]
            if not cursor:
                break
        fresh = [e for e in reversed(found) if e["event_id"] not in self.seen]
        if self.event_types:
            for e in fresh:
                if e["event_type"] not in self.event_types:
                    self.seen[e["event_id"]] = parse_iso(e["created_at"])
            fresh = [e for e in fresh if e["event_type"] in self.event_types]
        return fresh

    def deliver(self, event: dict[str, Any]) -> tuple[int | None, int, str | None]:
        body = signing.serialize(event["payload"])
        headers = signing.sign_headers(self.secret, event["event_id"], body)
        started = time.perf_counter()
        try:
            response = self.forward.post(self.forward_to, content=body, headers=headers)
            status: int | None = response.status_code
            error = None
        except httpx.HTTPError as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        ms = int((time.perf_counter() - started) * 1000)
        created = parse_iso(event["created_at"])
        self.seen[event["event_id"]] = created
        if self.since is None or created - CATCH_UP_WINDOW > self.since:
            self.since = created - CATCH_UP_WINDOW
        return status, ms, error

    def poll_once(self) -> int:
        count = 0
        for event in self.fetch():
            status, ms, error = self.deliver(event)
            stamp = time.strftime("%H:%M:%S")
            shown = str(status) if status is not None else f"failed ({error})"
            self.out(f"{stamp}  --> {event['event_type']} [{event['event_id']}]  {shown}  {ms}ms")
            count += 1
        # forget ids that fell out of the catch-up window
        if self.since is not None:
            horizon = self.since - CATCH_UP_WINDOW
            self.seen = {k: v for k, v in self.seen.items() if v >= horizon}
        return count

    def run(self, poll_seconds: float, max_events: int | None = None) -> int:
        total = 0
        while max_events is None or total < max_events:
            total += self.poll_once()
            if max_events is not None and total >= max_events:
                break
            time.sleep(poll_seconds)
        return total


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "listen", help="forward the partner's webhook events, signed, to a local URL (like `stripe listen`)"
    )
    p.add_argument("--forward-to", required=True, help="local URL to POST each event to")
    p.add_argument("--webhook-secret", help="the partner's whsec_ secret (STEALTH_WEBHOOK_SECRET)")
    p.add_argument("--events", help="comma-separated event types to forward (default all)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between polls (default 1)")
    p.add_argument("--max-events", type=int, default=None, help="exit after forwarding this many")
    add_credentials(p)
    p.set_defaults(func=cmd_listen)


def cmd_listen(args: argparse.Namespace, _settings: Any = None) -> int:
    try:
        creds = credentials(args)
        secret = args.webhook_secret or os.environ.get("STEALTH_WEBHOOK_SECRET")
        if not secret:
            raise ToolError("give --webhook-secret (or STEALTH_WEBHOOK_SECRET) to sign forwarded events")
        api = Api.connect(creds)
        types = {t.strip() for t in args.events.split(",") if t.strip()} if args.events else None
        listener = Listener(api, args.forward_to, secret, event_types=types)
        print(
            f"Ready! Forwarding {creds.partner_id}'s events from {creds.base_url} to {args.forward_to}",
            flush=True,
        )
        listener.run(args.poll, args.max_events)
    except ToolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
