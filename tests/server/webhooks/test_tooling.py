"""`stealth trigger` and `stealth listen` against the sandbox app, forwarding to a loopback receiver."""

from __future__ import annotations

import argparse
import json
from typing import Any

from server.tooling.cli import register
from server.tooling.common import Api
from server.tooling.listen import Listener
from server.tooling.trigger import trigger
from tests.server.webhooks.conftest import Receiver
from tests.server.webhooks.verifiers import verify_signature


def test_trigger_then_listen_forwards_every_event_signed(sandbox: Any, receiver: Receiver) -> None:
    creds = sandbox.partner()
    api = Api(sandbox.client, creds.partner_id, creds.api_key)
    lines: list[str] = []
    listener = Listener(api, receiver.url, creds.webhook_secret, out=lines.append)
    assert listener.poll_once() == 0  # starts from now: nothing old is replayed
    result = trigger(api, "referral.shipped")
    assert [e["event_type"] for e in result["events"]][-1] == "referral.shipped"
    assert listener.poll_once() == len(result["events"])
    assert listener.poll_once() == 0  # each event once
    got = receiver.wait_for(len(result["events"]))
    assert [json.loads(r.body)["event_id"] for r in got] == [e["event_id"] for e in result["events"]]
    for rec in got:
        assert verify_signature(rec.body, rec.headers["x-stealth-signature"], creds.webhook_secret)
    assert all("--> referral." in line and " 200 " in line for line in lines)
    filtered = Listener(
        api, receiver.url, creds.webhook_secret, event_types={"referral.denied"}, out=lines.append
    )
    filtered.poll_once()
    trigger(api, "referral.denied", denial_category="incomplete_information")
    assert filtered.poll_once() == 1


def test_cli_registration_parses() -> None:
    parser = argparse.ArgumentParser(prog="stealth")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(
        ["trigger", "referral.shipped", "--partner-id", "ptr_x", "--api-key", "sk_test_x"]
    )
    assert args.event_type == "referral.shipped" and callable(args.func)
    args = parser.parse_args(["listen", "--forward-to", "http://localhost:3000/webhooks"])
    assert args.forward_to == "http://localhost:3000/webhooks"
    args = parser.parse_args(["worker", "--batch", "5"])
    assert args.batch == 5


def test_cli_trigger_needs_credentials(monkeypatch: Any, capsys: Any) -> None:
    from server.tooling.trigger import cmd_trigger

    monkeypatch.delenv("STEALTH_PARTNER_ID", raising=False)
    monkeypatch.delenv("STEALTH_API_KEY", raising=False)
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    register(sub)
    args = parser.parse_args(["trigger", "referral.shipped"])
    assert cmd_trigger(args) == 1
    assert "--partner-id" in capsys.readouterr().err
