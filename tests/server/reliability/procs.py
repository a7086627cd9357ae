"""Real processes for the reliability tests: a `stealth serve` (uvicorn) server, throwaway databases,
partners provisioned straight into the database, and a TCP proxy that can cut PostgreSQL off.

Figures the tests measure are printed and appended to build/reliability/results.jsonl (RELIABILITY.md
quotes them).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from server.crypto import SecretBox
from server.db.engine import Database
from server.services.partners import Credentials, create_partner

REPO = Path(__file__).resolve().parents[3]
POSTGRES_URL = os.environ.get("STEALTH_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("STEALTH_TEST_REDIS_URL")
RESULTS = REPO / "build" / "reliability" / "results.jsonl"
BACKENDS = ["sqlite", *(["postgres"] if POSTGRES_URL else [])]


def record(test: str, **figures: Any) -> None:
    """Print a test's measured figures and keep them for RELIABILITY.md."""
    line = {"test": test, "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), **figures}
    print(f"\n[{test}] " + " ".join(f"{k}={v}" for k, v in figures.items()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextlib.contextmanager
def fresh_database(backend: str, tmp: Path) -> Iterator[str]:
    """A new empty database URL: a SQLite file, or a PostgreSQL database of its own (dropped after)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / f'rl-{uuid.uuid4().hex[:6]}.db'}"
        return
    import psycopg

    assert POSTGRES_URL
    name = f"stealth_rl_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_plain(POSTGRES_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(_plain(POSTGRES_URL), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def pg_url_via(url: str, port: int) -> str:
    """The same PostgreSQL database reached through 127.0.0.1:``port`` (our proxy)."""
    head, _, tail = url.partition("@")
    _, _, path = tail.partition("/")
    return f"{head}@127.0.0.1:{port}/{path}"


@dataclass
class Store:
    """The server's database and secret key, opened by the test to provision partners and read back."""

    url: str
    key: str

    def __post_init__(self) -> None:
        self.db = Database(self.url)
        self.db.migrate()
        self.box = SecretBox(self.key)

    def partner(self, tier: str = "referral", **kwargs: Any) -> Credentials:
        return create_partner(
            self.db,
            self.box,
            tier=tier,
            environment=kwargs.pop("environment", "sandbox"),
            name=kwargs.pop("name", f"Reliability {tier} {uuid.uuid4().hex[:6]}"),
            **kwargs,
        )

    def close(self) -> None:
        self.db.dispose()


def headers(creds: Credentials, **extra: str) -> dict[str, str]:
    out = {"X-Partner-ID": creds.partner_id, "X-Api-Key": creds.api_key, **extra}
    if creds.tier == "clinical":
        out.setdefault("X-Access-Tier", "clinical")
    return out


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_env(database_url: str, key: str, state_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "STEALTH_DATABASE_URL": database_url,
        "STEALTH_SECRET_KEY": key,
        "STEALTH_STATE_DIR": str(state_dir),
        "STEALTH_ENVIRONMENT": "sandbox",
        "STEALTH_RATE_LIMIT_PER_MINUTE": "100000",
        "STEALTH_BACKGROUND_JOBS": "0",
    }
    for name in ("STEALTH_REDIS_URL", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    env.update(extra)
    return env


@contextlib.contextmanager
def serve(env: dict[str, str], log_path: Path, startup_s: float = 90.0) -> Iterator[Server]:
    """`stealth serve` (uvicorn, one process) on a free port; stopped (SIGTERM) afterwards."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + startup_s
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
            yield Server(proc, base, log_path)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def new_key() -> str:
    return Fernet.generate_key().decode()


def rss_kib(pid: int) -> tuple[int, int]:
    """(current VmRSS, peak VmHWM) of a process in KiB, from /proc."""
    values: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


class TcpProxy:
    """127.0.0.1:port → upstream, on its own event loop thread. ``cut()`` drops every open connection
    and refuses new ones (the listening socket is closed); ``restore()`` listens again on the same port."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="tcp-proxy")
        self._thread.start()
        self.restore()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, up_w}
        try:
            await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w))
        finally:
            self._writers.discard(client_w)
            self._writers.discard(up_w)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            transport = w.transport
            transport.abort()  # RST: the server's connections die mid-query
        self._writers.clear()

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._start())

    def close(self) -> None:
        self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
