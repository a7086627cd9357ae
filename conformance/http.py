"""One rate-capped HTTP client for the whole run; every exchange is recorded as evidence."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from .spec import Operation, Spec


@dataclass
class Credentials:
    partner_id: str
    api_key: str
    tier: str = "referral"
    label: str = "primary"

    def headers(self, access_tier: bool = False) -> dict[str, str]:
        h = {"X-Partner-ID": self.partner_id, "X-Api-Key": self.api_key}
        if access_tier:
            h["X-Access-Tier"] = "clinical"
        return h


@dataclass
class Exchange:
    """One request and its response (or the transport error), as seen on the wire."""

    method: str
    url: str
    path: str
    request_headers: dict[str, str]
    request_body: str | None
    status: int | None
    response_headers: dict[str, str] = field(default_factory=dict)
    response_text: str = ""
    elapsed_ms: float = 0.0
    error: str | None = None
    source: str = ""
    credential: str = ""
    at: float = field(default_factory=time.time)
    operation_id: str | None = None
    operation_key: str | None = None  # "METHOD /path/{template}" of the matched operation

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.response_text) if self.response_text else None
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.response_headers.items() if k.lower() == lname), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "request": {
                "method": self.method,
                "url": self.url,
                "headers": self.request_headers,
                "body": self.request_body,
            },
            "response": None
            if self.status is None
            else {
                "status": self.status,
                "headers": self.response_headers,
                "body": self.response_text[:20000],
                "elapsed_ms": round(self.elapsed_ms, 1),
            },
            "error": self.error,
            "source": self.source,
            "credential": self.credential,
            "operation_id": self.operation_id,
            "operation": self.operation_key,
        }


class RateLimiter:
    """At most ``rps`` requests per second across threads (evenly spaced)."""

    def __init__(self, rps: float | None) -> None:
        self.rps = rps
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        if not self.rps:
            return
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + 1.0 / self.rps
        delay = start - now
        if delay > 0:
            time.sleep(delay)


class ApiClient:
    def __init__(
        self,
        base_url: str,
        spec: Spec,
        max_rps: float | None = None,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.spec = spec
        self.limiter = RateLimiter(max_rps)
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        self.source = ""

    def close(self) -> None:
        self._client.close()

    def set_rps(self, rps: float | None) -> None:
        self.limiter.rps = rps

    def request(
        self,
        method: str,
        path: str,
        *,
        creds: Credentials | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        access_tier: bool | None = None,
        raw_body: bytes | None = None,
        unlimited: bool = False,
        source: str | None = None,
        timeout: float | None = None,
        _retries_left: int = 1,
    ) -> Exchange:
        op = self.spec.find_operation(method, path)
        h: dict[str, str] = {}
        if creds is not None:
            if access_tier is None and op is not None:
                # X-Access-Tier: clinical goes with clinical operations; a prescriber key calling an operation
                # shared by the clinical and prescriber tiers does not send it.
                need_tier = op.needs_access_tier_header and (
                    creds.tier == "clinical" or "prescriber" not in op.tiers
                )
            else:
                need_tier = bool(access_tier)
            h.update(creds.headers(access_tier=need_tier))
        h.update(headers or {})
        content: bytes | None = raw_body
        if json_body is not None:
            content = json.dumps(json_body).encode()
            h.setdefault("Content-Type", "application/json")
        if not unlimited:
            self.limiter.wait()
        started = time.monotonic()
        ex = Exchange(
            method=method.upper(),
            url=self.base_url + path,
            path=path,
            request_headers=dict(h),
            request_body=content.decode("utf-8", "replace") if content else None,
            status=None,
            source=source or self.source,
            credential=creds.label if creds else "none",
            operation_id=op.operation_id if op else None,
            operation_key=op.key if op else None,
        )
        try:
            resp = self._client.request(
                method,
                path,
                headers=h,
                content=content,
                params=params,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
            ex.status = resp.status_code
            ex.response_headers = dict(resp.headers)
            ex.response_text = resp.text
            ex.url = str(resp.request.url)
        except httpx.HTTPError as exc:
            ex.error = f"{type(exc).__name__}: {exc}"
        ex.elapsed_ms = (time.monotonic() - started) * 1000
        with self._lock:
            self.exchanges.append(ex)
        if ex.status == 429 and not unlimited and _retries_left > 0:
            # The suite stays under the partner's limit; if it is hit anyway, honour Retry-After once.
            try:
                wait = min(65.0, max(0.5, float(ex.header("Retry-After") or 1)))
            except ValueError:
                wait = 1.0
            time.sleep(wait)
            return self.request(
                method,
                path,
                creds=creds,
                headers=headers,
                json_body=json_body,
                params=params,
                access_tier=access_tier,
                raw_body=raw_body,
                source=source,
                timeout=timeout,
                _retries_left=0,
            )
        return ex

    def op_request(
        self,
        op: Operation,
        *,
        creds: Credentials | None,
        path_values: dict[str, str] | None = None,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        **kw: Any,
    ) -> Exchange:
        path = op.path
        for name, value in (path_values or {}).items():
            path = path.replace("{" + name + "}", value)
        return self.request(op.method, path, creds=creds, json_body=json_body, params=params, **kw)
