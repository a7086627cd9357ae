"""The suite's own webhook receiver: an HTTP server that records every delivery with its raw body.

It acknowledges with 200 by default; a check can make it answer an error for chosen events (to exercise
retries and dead-lettering). Signatures are checked by the webhook checks, against the raw bytes, in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .http import Exchange


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Constant-time check of an X-Stealth-Signature header against the raw body."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    answered: int = 200
    monotonic: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        lname = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lname), None)

    def as_exchange(self) -> Exchange:
        return Exchange(
            method="POST",
            url=f"(webhook delivery to the suite's receiver){self.path}",
            path=self.path,
            request_headers=dict(self.headers),
            request_body=self.body.decode("utf-8", "replace"),
            status=self.answered,
            source="webhook",
            credential="stealth",
            at=self.received_at,
        )


class WebhookReceiver:
    def __init__(self, host: str, port: int, secret: str, public_url: str | None = None) -> None:
        self.secret = secret
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self.respond: Callable[[Delivery], int] = lambda d: 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                d = Delivery(self.path, {k: v for k, v in self.headers.items()}, body, time.time())
                try:
                    d.answered = int(receiver.respond(d))
                except Exception:
                    d.answered = 500
                with receiver._lock:
                    receiver._deliveries.append(d)
                self.send_response(d.answered)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(
                    b'{"received": true}' if d.answered < 300 else b'{"error": "refused by test"}'
                )

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self.public_url = public_url or f"http://{host}:{self.port}/webhooks"
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="conformance-receiver", daemon=True
        )

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def wait_for(
        self, predicate: Callable[[Delivery], bool], timeout: float, count: int = 1
    ) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while True:
            got = [d for d in self.deliveries() if predicate(d)]
            if len(got) >= count or time.monotonic() >= deadline:
                return got
            time.sleep(0.1)
