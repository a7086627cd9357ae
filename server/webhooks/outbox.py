"""What both webhook outboxes share: the retry schedule, the attempt's bookkeeping and concurrent sends.

Two outboxes deliver webhooks: partner events (``events``, server.webhooks.dispatcher) and pharmacy
deliveries (``pharmacy_deliveries``, server.pharmacy.delivery). Their rows differ (a partner event has
one URL and a sandbox clock; a pharmacy event fans out to every webhook of a clinic), but an attempt is
the same thing in both:

* **Sending** (:class:`Sender`): a claimed batch is posted concurrently on one event loop that the
  sender runs in its own thread, through one aiohttp ``ClientSession`` whose keep-alive pool is shared
  by every batch and every calling thread (aiohttp rather than httpx here: B-002). At most
  ``per_endpoint`` connections (16) are open to one endpoint (host, port, TLS) at a time, and sends
  that share an ordering key (the events of one referral, appointment, ...) go one after the other, in
  the batch's order, so an object's events are first sent in the order they happened. An attempt
  succeeds on a 2xx within the timeout (10 s), with no redirects followed (D-029). In production the
  sender's resolver refuses a host that resolves to a forbidden address at connection time too, so a
  DNS answer that changed after the URL was checked cannot point a delivery inside (SSRF).
* **Settling** (:func:`settle`): from the row's delivery state before the attempt and the attempt's
  outcome, the state after it: the attempt number, delivered or the next retry (30 s, 5 min, 30 min,
  2 h and 12 h after the first attempt) or dead-lettered after the sixth automatic failure. A requested
  redelivery (partner events only, R-011) is one extra attempt that does not count towards the six.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from sqlalchemy import Table, bindparam, insert, update
from sqlalchemy.orm import Session

from server import clock, faults
from server.db.engine import Database
from server.webhooks.url_safety import is_forbidden_address

RETRY_OFFSETS_SECONDS: tuple[int, ...] = (30, 300, 1800, 7200, 43200)
MAX_AUTOMATIC_ATTEMPTS = 1 + len(RETRY_OFFSETS_SECONDS)
TIMEOUT_SECONDS = 10.0
ACTIVE_STATES = ("pending", "pending_retry")
# Sends in flight at once per sender (all endpoints together; the keep-alive pool is as large), and to
# any one endpoint.
DEFAULT_CONCURRENCY = 64
DEFAULT_PER_ENDPOINT = 16


@dataclass(frozen=True)
class AttemptResult:
    outcome: str  # succeeded | http_error | timeout | connection_error | no_endpoint
    status_code: int | None
    latency_ms: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.outcome == "succeeded"


def next_retry_at(first_attempt_at: datetime, automatic_attempts_made: int) -> datetime | None:
    """When automatic attempt ``automatic_attempts_made + 1`` is due (None after the sixth)."""
    if automatic_attempts_made >= MAX_AUTOMATIC_ATTEMPTS:
        return None
    if automatic_attempts_made == 1 and faults.active("retry_too_early"):
        return first_attempt_at + timedelta(seconds=10)
    return first_attempt_at + timedelta(seconds=RETRY_OFFSETS_SECONDS[automatic_attempts_made - 1])


# ---------------------------------------------------------------------------------------- settling


@dataclass(frozen=True)
class Progress:
    """An outbox row's delivery state (before or after an attempt)."""

    status: str  # pending | pending_retry | delivered | dead_lettered | cancelled (pharmacy)
    attempt_count: int  # every attempt made, redeliveries included
    auto_attempt_count: int  # the automatic ones (the six of the schedule)
    first_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_attempt_at: datetime | None = None


def settle(before: Progress, ok: bool, at: datetime, *, redelivery: bool = False) -> Progress:
    """The row's state after one attempt made at ``at`` (its number is the new ``attempt_count``).

    A cancelled row (a pharmacy webhook deleted while the attempt was in flight) records the attempt
    and stays cancelled.
    """
    auto = before.auto_attempt_count if redelivery else before.auto_attempt_count + 1
    first = before.first_attempt_at if redelivery else (before.first_attempt_at or at)
    status, nxt, delivered_at = before.status, before.next_attempt_at, before.delivered_at
    if before.status == "cancelled":
        pass
    elif ok:
        status, nxt, delivered_at = "delivered", None, before.delivered_at or at
    elif redelivery:
        scheduled = nxt is not None and 0 < auto < MAX_AUTOMATIC_ATTEMPTS
        status = "pending_retry" if scheduled else "dead_lettered"
        nxt = nxt if scheduled else None
    else:
        assert first is not None
        nxt = next_retry_at(first, auto)
        status = "pending_retry" if nxt is not None else "dead_lettered"
    return Progress(status, before.attempt_count + 1, auto, first, nxt, delivered_at, at)


# ---------------------------------------------------------------------------------------- storing
# Both outbox tables key rows by ``seq`` and claim them with ``claimed_by`` / ``claimed_until``.


def renew_claims(db: Database, table: Table, claims: Sequence[tuple[int, str]], lease: timedelta) -> None:
    """Extend the leases of a batch still being sent: [(seq, claim token)], only the claims still ours."""
    with db.session() as session:
        session.execute(
            update(table)
            .where(table.c.seq == bindparam("b_seq"), table.c.claimed_by == bindparam("b_token"))
            .values(claimed_until=clock.real_now() + lease),
            [{"b_seq": seq, "b_token": token} for seq, token in claims],
        )


def record_batch(
    session: Session,
    attempt_model: type,
    table: Table,
    attempts: list[dict[str, Any]],
    changes: list[dict[str, Any]],
) -> None:
    """Insert a batch's attempt rows and write each row's new state (``changes``: column values plus
    ``b_seq``), two statements for the whole batch."""
    if attempts:
        session.execute(insert(attempt_model), attempts)
        session.execute(update(table).where(table.c.seq == bindparam("b_seq")), changes)


# ---------------------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class Send:
    """One signed POST to make (``url`` None: the row has no endpoint configured)."""

    url: str | None
    body: bytes
    headers: dict[str, str]
    order_key: str | None = None  # sends with the same key go one after the other


class _CheckedResolver(AbstractResolver):
    """The system resolver, refusing any answer with a forbidden address (production deliveries)."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            if is_forbidden_address(ipaddress.ip_address(answer["host"].split("%", 1)[0])):
                raise OSError(errno.EACCES, f"host {host} resolves to a forbidden address")
        return answers

    async def close(self) -> None:
        await self._inner.close()


async def _post(session: aiohttp.ClientSession, send: Send, timeout: float) -> AttemptResult:
    if not send.url:
        return AttemptResult("no_endpoint", None, None, "no webhook URL is configured")
    started = time.perf_counter()
    try:
        async with session.post(
            send.url, data=send.body, headers=send.headers, allow_redirects=False
        ) as response:
            await response.read()
            status = response.status
    except TimeoutError:
        ms = int((time.perf_counter() - started) * 1000)
        return AttemptResult("timeout", None, ms, f"no answer within {timeout:g} seconds")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        ms = int((time.perf_counter() - started) * 1000)
        return AttemptResult("connection_error", None, ms, f"{type(exc).__name__}: {exc}"[:500])
    ms = int((time.perf_counter() - started) * 1000)
    if 200 <= status < 300:
        return AttemptResult("succeeded", status, ms, None)
    return AttemptResult("http_error", status, ms, f"endpoint answered {status}")


class Sender:
    """Posts batches concurrently on one event loop of its own (a daemon thread, started on first use).

    ``send_all`` may be called from any thread, also from several at once: the batches share the loop,
    the session and its keep-alive connections, and the limits (``concurrency`` connections in all,
    ``per_endpoint`` to one endpoint). ``checked_resolver``: refuse hosts that resolve to a forbidden
    address (production).
    """

    def __init__(
        self,
        timeout_seconds: float = TIMEOUT_SECONDS,
        concurrency: int = DEFAULT_CONCURRENCY,
        per_endpoint: int = DEFAULT_PER_ENDPOINT,
        *,
        checked_resolver: bool = False,
    ) -> None:
        self.timeout = timeout_seconds
        self.concurrency = concurrency
        self.per_endpoint = per_endpoint
        self.checked_resolver = checked_resolver
        self._guard = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._session: aiohttp.ClientSession | None = None

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._guard:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="stealth-webhook-sender", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _client(self) -> aiohttp.ClientSession:
        """The session (made on the sender's loop, used only there)."""
        if self._session is None:
            options: dict[str, Any] = {"limit": self.concurrency, "limit_per_host": self.per_endpoint}
            if self.checked_resolver:
                options["resolver"] = _CheckedResolver()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(**options),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def _gather(self, sends: Sequence[Send]) -> list[AttemptResult]:
        session = self._client()
        results: list[AttemptResult | None] = [None] * len(sends)
        chains: dict[object, list[int]] = {}
        for index, send in enumerate(sends):
            chains.setdefault(send.order_key if send.order_key is not None else index, []).append(index)

        async def chain(indexes: list[int]) -> None:
            for index in indexes:  # one after the other: an object's events keep their order
                results[index] = await _post(session, sends[index], self.timeout)

        await asyncio.gather(*(chain(indexes) for indexes in chains.values()))
        return [r for r in results if r is not None]

    def send_all(
        self,
        sends: Sequence[Send],
        *,
        heartbeat: Callable[[], None] | None = None,
        every: float = 10.0,
    ) -> list[AttemptResult]:
        """Make every send (concurrently, within the limits); the results in the same order.

        ``heartbeat`` is called every ``every`` seconds while sends are still in flight: the dispatchers
        renew their claims' leases with it, so a batch that takes longer than a lease (a slow endpoint,
        sends queued behind the per-endpoint limit) is not claimed and sent again by another worker.
        """
        if not sends:
            return []
        future = asyncio.run_coroutine_threadsafe(self._gather(sends), self._start())
        while True:
            try:
                return future.result(timeout=every if heartbeat is not None else None)
            except concurrent.futures.TimeoutError:
                assert heartbeat is not None
                heartbeat()

    def close(self) -> None:
        with self._guard:
            loop, thread, session = self._loop, self._thread, self._session
            self._loop = self._thread = self._session = None
        if loop is None:
            return
        if session is not None:
            asyncio.run_coroutine_threadsafe(session.close(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        loop.close()
