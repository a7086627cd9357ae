"""Credentials and the API client shared by `stealth listen` and `stealth trigger`."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

import httpx


class ToolError(Exception):
    """A problem to print and exit 1 with (bad arguments, API errors)."""


def add_credentials(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base-url", help="sandbox URL (STEALTH_BASE_URL, default http://127.0.0.1:8080)")
    parser.add_argument("--partner-id", help="X-Partner-ID (STEALTH_PARTNER_ID)")
    parser.add_argument("--api-key", help="X-Api-Key (STEALTH_API_KEY)")


@dataclass(frozen=True)
class Credentials:
    base_url: str
    partner_id: str
    api_key: str


def credentials(args: argparse.Namespace, env: dict[str, str] | None = None) -> Credentials:
    env = dict(os.environ if env is None else env)
    base = args.base_url or env.get("STEALTH_BASE_URL") or "http://127.0.0.1:8080"
    partner_id = args.partner_id or env.get("STEALTH_PARTNER_ID")
    api_key = args.api_key or env.get("STEALTH_API_KEY")
    if not partner_id or not api_key:
        raise ToolError("give --partner-id and --api-key (or STEALTH_PARTNER_ID and STEALTH_API_KEY)")
    return Credentials(base.rstrip("/"), partner_id, api_key)


class Api:
    """The Partner API as the partner calls it (any httpx.Client, so tests can pass an in-process one)."""

    def __init__(self, client: httpx.Client, partner_id: str, api_key: str) -> None:
        self.client = client
        self.headers = {"X-Partner-ID": partner_id, "X-Api-Key": api_key, "Accept": "application/json"}

    @classmethod
    def connect(cls, creds: Credentials, timeout: float = 30.0) -> Api:
        return cls(httpx.Client(base_url=creds.base_url, timeout=timeout), creds.partner_id, creds.api_key)

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, path, headers=self.headers, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                detail = f"{error['code']}: {error['message']}"
            except (ValueError, KeyError, TypeError):
                detail = response.text[:200]
            raise ToolError(f"{method} {path} answered {response.status_code} {detail}")
        return response.json()
