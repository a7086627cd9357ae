"""Webhook URL safety (SSRF). Production: HTTPS only, and the host must not resolve to a loopback,
private, link-local, multicast, reserved, unspecified or cloud-metadata address. The sandbox allows
``http://`` and ``localhost`` explicitly so partners can develop against a local receiver."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

Resolver = Callable[[str, int], Iterable[str]]

METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6
    }
)
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data"})


class UnsafeWebhookUrl(ValueError):
    """The URL may not be used as a webhook endpoint in this environment."""


def _system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_forbidden_address(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return is_forbidden_address(addr.ipv4_mapped)
        # 6to4 (2002::/16) and Teredo addresses carry an IPv4 address that relays route to
        embedded = [addr.sixtofour, *(addr.teredo or ())]
        if any(v4 is not None and is_forbidden_address(v4) for v4 in embedded):
            return True
    return bool(
        addr in METADATA_ADDRESSES
        or addr.is_loopback
        or addr.is_private
        or addr.is_link_local
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_unspecified
        or (isinstance(addr, ipaddress.IPv4Address) and addr in ipaddress.ip_network("100.64.0.0/10"))
    )


def check_webhook_url(url: str, environment: str, resolver: Resolver | None = None) -> None:
    """Raise UnsafeWebhookUrl when ``url`` may not receive webhooks in ``environment``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeWebhookUrl(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if scheme not in ("http", "https") or not host:
        raise UnsafeWebhookUrl("webhook URLs must be absolute http(s) URLs")
    if parts.username or parts.password:
        raise UnsafeWebhookUrl("webhook URLs must not carry credentials")
    if environment != "production":
        return  # the sandbox allows http:// and localhost on purpose
    if scheme != "https":
        raise UnsafeWebhookUrl("production webhook URLs must use https")
    if host == "localhost" or host.endswith(".localhost") or host in METADATA_HOSTS:
        raise UnsafeWebhookUrl(f"host {host} is not allowed")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = list((resolver or _system_resolver)(host, port or 443))
        except OSError as exc:
            raise UnsafeWebhookUrl(f"host {host} does not resolve: {exc}") from None
        if not addresses:
            raise UnsafeWebhookUrl(f"host {host} does not resolve")
    for text in addresses:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
        if is_forbidden_address(addr):
            raise UnsafeWebhookUrl(f"host {host} resolves to a forbidden address ({addr})")
