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


# Every class the production check refuses, as an IP literal (IPv4 and IPv6 forms) and as a DNS name that
# resolves to it; the checks below run each literal both ways.
FORBIDDEN_BY_CLASS: dict[str, list[str]] = {
    "loopback": ["127.0.0.1", "127.9.9.9", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "::127.0.0.1"],
    "private": [
        "10.0.0.1",
        "172.31.255.254",
        "192.168.0.1",
        "fd12:3456:789a::1",
        "fc00::1",
        "::ffff:10.1.2.3",
        "2002:c0a8:1::",  # 6to4 of 192.168.0.1
    ],
    "link-local": ["169.254.1.1", "fe80::1", "fe80::abcd:1234", "::ffff:169.254.1.1"],
    "metadata": [
        "169.254.169.254",
        "fd00:ec2::254",
        "169.254.170.2",
        "100.100.100.200",
        "::ffff:169.254.169.254",
        "::ffff:a9fe:a9fe",
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    ],
    "unspecified, multicast, shared, reserved": [
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "100.64.0.1",
        "240.0.0.1",
        "255.255.255.255",
    ],
}
ALL_FORBIDDEN = [(cls, a) for cls, addrs in FORBIDDEN_BY_CLASS.items() for a in addrs]


def _literal_url(address: str) -> str:
    return f"https://[{address}]/hook" if ":" in address else f"https://{address}/hook"


@pytest.mark.parametrize(("cls", "address"), ALL_FORBIDDEN)
def test_production_refuses_every_class_as_a_literal(cls: str, address: str) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url(_literal_url(address), "production", resolver=resolver_to("93.184.216.34"))


@pytest.mark.parametrize(("cls", "address"), ALL_FORBIDDEN)
def test_production_refuses_every_class_behind_a_dns_name(cls: str, address: str) -> None:
    # alone, and hidden behind a public address in the same answer (DNS rebinding, round robin)
    for answer in ([address], ["93.184.216.34", address], [address, "2606:4700::1111"]):
        with pytest.raises(UnsafeWebhookUrl):
            check_webhook_url("https://hooks.partner.example/x", "production", resolver=resolver_to(*answer))


@pytest.mark.parametrize(
    "url",
    [
        "https://2130706433/hook",  # 127.0.0.1 in decimal
        "https://0x7f000001/hook",  # ... hexadecimal
        "https://017700000001/hook",  # ... octal
        "https://127.1/hook",  # ... shortened
        "https://0x7f.1/hook",
        "https://[fe80::1%25eth0]/hook",  # scoped IPv6
        "HTTPS://LOCALHOST/hook",
        "https://localhost./hook",
        "https://api.localhost/hook",
        "https://metadata/computeMetadata/v1/",
        "https://metadata.goog/",
        "https://instance-data/latest/",
    ],
)
def test_production_refuses_obfuscated_internal_hosts(url: str) -> None:
    """Numeric host spellings go to the system resolver (which parses them locally, no network)."""
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url(url, "production")


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.partner.example/x",
        "HTTP://hooks.partner.example/x",
        "ws://hooks.partner.example/x",
        "wss://hooks.partner.example/x",
        "file:///etc/passwd",
        "gopher://hooks.partner.example/x",
        "//hooks.partner.example/x",
        "https:///x",
    ],
)
def test_production_refuses_anything_but_https(url: str) -> None:
    with pytest.raises(UnsafeWebhookUrl):
        check_webhook_url(url, "production", resolver=resolver_to("93.184.216.34"))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "2002:5db8:d822::"])
def test_production_allows_public_addresses(address: str) -> None:
    check_webhook_url(_literal_url(address), "production")
    check_webhook_url("https://hooks.partner.example/x", "production", resolver=resolver_to(address))


def test_production_api_refuses_internal_webhook_urls_at_provisioning(sandbox: Any) -> None:
    """Provisioning a production partner with an internal or plain-HTTP URL is refused before it is stored."""
    for url in (
        "https://169.254.169.254/latest",
        "http://hooks.partner.example/x",
        "https://[fd00:ec2::254]/",
    ):
        with pytest.raises(UnsafeWebhookUrl):
            sandbox.partner(environment="production", webhook_url=url)
