"""Webhook URL safety: production refuses non-HTTPS URLs and hosts resolving to loopback, private,
link-local or metadata addresses; the sandbox allows http://localhost."""

from __future__ import annotations

from typing import Any

import pytest

from server.webhooks.url_safety import UnsafeWebhookUrl, check_webhook_url
from tests.server.webhooks.helpers import drain, get_event, trigger


def resolver_to(*addresses: str) -> Any:
    return lambda _host, _port: list(addresses)


@pytest.mark.parametrize(
    "url",
    [
        "http://partner.example.com/hook",  # not https
        "https://localhost/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[fe80::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://100.64.0.1/hook",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://user:pass@partner.example.com/hook",
        "ftp://partner.example.com/hook",
        "not a url",
    ],
)
def test_production_refuses(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url(url, "production", resolver=resolver_to("93.184.216.34"))


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "10.0.0.5", "169.254.169.254", "::1", "fd00:ec2::254", "192.168.0.10"]
)
def test_production_refuses_hosts_resolving_inside(address: str) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url(
            "https://rebind.example.com/hook", "production", resolver=resolver_to("93.184.216.34", address)
        )


def test_production_allows_public_https() -> None:
    check_webhook_url("https://partner.example.com/hook", "production", resolver=resolver_to("93.184.216.34"))


def test_sandbox_allows_localhost_and_http() -> None:
    for url in (
        "http://localhost:3000/webhooks",
        "http://127.0.0.1:8080/hook",
        "https://partner.example.com/x",
    ):
        check_webhook_url(url, "sandbox")


def test_dispatcher_refuses_loopback_in_production(sandbox: Any) -> None:
    """A production dispatcher never connects to a loopback URL (recorded as a refused attempt)."""
    from server.webhooks.dispatcher import Dispatcher

    creds = sandbox.partner(webhook_url="http://127.0.0.1:9/hook")
    event_id = trigger(sandbox, creds, "referral.enrolled")["event_id"]
    prod = Dispatcher(sandbox.state.db, sandbox.state.box, "production")
    try:
        made = prod.run_once(partner_id=creds.partner_id)
    finally:
        prod.close()
    assert made and made[0].result.outcome == "connection_error"
    assert "refused" in (made[0].result.error or "")
    attempt = get_event(sandbox, creds, event_id)["attempts"][0]
    assert attempt["duration_ms"] is None
    drain(sandbox, creds.partner_id)
