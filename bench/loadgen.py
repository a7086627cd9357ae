"""Our asyncio HTTP/1.1 load generator: keep-alive connections, closed loop or fixed rate.

Used for the fixed-rate latency runs (wrk, a closed-loop tool, cannot hold a rate) and for throughput
where wrk is absent (the smoke test). It parses only what it needs: the status line and Content-Length.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

RequestFactory = Callable[[int], bytes]  # request number -> raw HTTP/1.1 request bytes


def build_request(
    method: str, path: str, host: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Result:
    """Latencies in seconds, status counts, and the wall time of the measured window."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    elapsed: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))
        return ordered[index]

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        return {
            "requests": self.count,
            "rps": round(self.count / self.elapsed, 1) if self.elapsed else 0.0,
            "p50_ms": round(self.percentile(50) * 1000, 2),
            "p99_ms": round(self.percentile(99) * 1000, 2),
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value.strip())
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


class _Conn:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> int:
        if self.writer is None or self.writer.is_closing():
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(raw)
        await self.writer.drain()
        return await _read_response(self.reader)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _one(conn: _Conn, raw: bytes, result: Result, record: bool) -> None:
    started = time.perf_counter()
    try:
        status = await conn.request(raw)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
        conn.close()
        if record:
            result.errors += 1
        return
    if record:
        result.latencies.append(time.perf_counter() - started)
        result.statuses[status] = result.statuses.get(status, 0) + 1


async def closed_loop(
    host: str, port: int, make: RequestFactory, *, connections: int, duration: float, warmup: float = 0.5
) -> Result:
    """``connections`` clients each sending back to back for ``warmup + duration`` seconds."""
    result = Result()
    counter = itertools.count()
    start = time.perf_counter()
    measure_from = start + warmup
    end = measure_from + duration

    async def client() -> None:
        conn = _Conn(host, port)
        try:
            while (now := time.perf_counter()) < end:
                await _one(conn, make(next(counter)), result, now >= measure_from)
        finally:
            conn.close()

    await asyncio.gather(*(client() for _ in range(connections)))
    result.elapsed = duration
    return result


async def fixed_rate(
    host: str, port: int, make: RequestFactory, *, rate: float, duration: float, max_connections: int = 64
) -> Result:
    """Open loop: one request every ``1/rate`` s on a free keep-alive connection; latency counts from the
    scheduled send time, so a server falling behind shows up in the tail (no coordinated omission)."""
    result = Result()
    idle: asyncio.Queue[_Conn] = asyncio.Queue()
    for _ in range(max_connections):
        idle.put_nowait(_Conn(host, port))
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    total = int(rate * duration)

    async def send(n: int, scheduled: float) -> None:
        conn = await idle.get()
        try:
            try:
                status = await conn.request(make(n))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.close()
                result.errors += 1
                return
            result.latencies.append(time.perf_counter() - scheduled)
            result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            idle.put_nowait(conn)

    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(n, scheduled)))
    await asyncio.gather(*tasks)
    result.elapsed = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait().close()
    return result
