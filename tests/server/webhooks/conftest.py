"""A real HTTP receiver on loopback (random port) and helpers for webhook delivery tests."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from server.db.engine import Database
from tests.server.conftest import scratch_schema

POSTGRES_URL = os.environ.get("STEALTH_TEST_POSTGRES_URL")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Records every POST; answers ``status`` (or what ``responder`` says)."""

    server: ThreadingHTTPServer
    status: int = 200
    responder: Callable[[Received], int] | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/webhooks"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        with self.lock:
            return list(self.received)


class _Server(ThreadingHTTPServer):
    # A listen backlog as a real web server has (the stdlib's is 5): the dispatcher sends a batch
    # concurrently, up to 16 connections to one endpoint at once.
    request_queue_size = 128


def start_receiver() -> Receiver:
    holder: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            rec = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
            receiver = holder["r"]
            with receiver.lock:
                receiver.received.append(rec)
            status = receiver.responder(rec) if receiver.responder else receiver.status
            try:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            except OSError:  # the dispatcher gave up waiting (timeout test)
                return

    server = _Server(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = Receiver(server)
    holder["r"] = receiver
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = start_receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def pg() -> Iterator[tuple[Database, str]]:
    with scratch_schema("stealth_wk_") as made:
        yield made
