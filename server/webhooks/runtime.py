"""One dispatcher, simulation and clock per running app; the background runner of `stealth serve`.

The runner (a daemon thread) delivers due webhooks and runs the partners' due sandbox jobs
(auto-advance ticks, enrollment expiry) in real time. It runs inside `stealth serve` unless
STEALTH_BACKGROUND_JOBS=0 (and not under pytest unless STEALTH_BACKGROUND_JOBS=1), and delivers
webhooks itself unless STEALTH_INPROCESS_DISPATCHER=0 (then `stealth worker` processes do).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

from sqlalchemy import or_, select

from server import clock
from server.db.models import Partner, Referral
from server.services.prescriber_simulation import due_partners_filter
from server.services.sandbox_clock import SandboxClock, partner_lock
from server.services.simulation import TERMINAL, Simulation
from server.state import AppState
from server.webhooks.dispatcher import Dispatcher

log = logging.getLogger("stealth.runner")


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


@dataclass
class Runtime:
    state: AppState
    dispatcher: Dispatcher
    simulation: Simulation
    clock: SandboxClock
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    # ------------------------------------------------------------------ background

    def tick(self, *, deliver: bool = True, simulate: bool = True) -> None:
        if simulate and self.state.settings.environment == "sandbox":
            self.run_due_jobs()
        if deliver:
            self.dispatcher.run_once()

    def run_due_jobs(self) -> int:
        """Every sandbox partner's referral jobs due by its own clock (skipping partners mid-advance)."""
        with self.state.db.session() as session:
            rows = session.execute(
                select(Partner.id, Partner.clock_offset_seconds)
                .where(Partner.environment == "sandbox")
                .where(
                    or_(
                        Partner.id.in_(
                            select(Referral.partner_id).where(Referral.status.not_in(TERMINAL)).distinct()
                        ),
                        Partner.id.in_(due_partners_filter()),
                    )
                )
            ).all()
        ran = 0
        for partner_id, offset in rows:
            lock = partner_lock(partner_id)
            if not lock.acquire(blocking=False):
                continue
            try:
                now = clock.partner_now(offset or 0.0)
                jobs, _events = self.simulation.run_due(partner_id, now)
                more, _events = self.clock.prescriber.run_due(partner_id, now)
                ran += jobs + more
            finally:
                lock.release()
        return ran

    def _loop(self, interval: float, deliver: bool) -> None:
        while not self._stop.is_set():
            try:
                self.tick(deliver=deliver)
            except Exception:  # the runner must survive a bad tick (database down...)
                log.exception("background tick failed")
            self._stop.wait(interval)

    def start(self) -> None:
        if self._thread is not None:
            return
        deliver = os.environ.get("STEALTH_INPROCESS_DISPATCHER", "1") != "0"
        interval = _env_float("STEALTH_RUNNER_INTERVAL_SECONDS", 0.5)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(interval, deliver), name="stealth-runner", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None


_runtimes: dict[int, Runtime] = {}
_guard = threading.Lock()


def get_runtime(state: AppState) -> Runtime:
    with _guard:
        runtime = _runtimes.get(id(state))
        if runtime is None or runtime.state is not state:
            dispatcher = Dispatcher(
                state.db,
                state.box,
                state.settings.environment,
                lease_seconds=_env_float("STEALTH_WEBHOOK_CLAIM_LEASE_SECONDS", 30.0),
            )
            simulation = Simulation(state)
            runtime = Runtime(state, dispatcher, simulation, SandboxClock(state, dispatcher, simulation))
            _runtimes[id(state)] = runtime
        return runtime


def background_enabled() -> bool:
    value = os.environ.get("STEALTH_BACKGROUND_JOBS")
    if value is not None and value != "":
        return value != "0"
    return "PYTEST_CURRENT_TEST" not in os.environ


def start_background(state: AppState) -> Runtime | None:
    """Called from the app's lifespan: start the runner (see the module docstring)."""
    if not background_enabled():
        return None
    runtime = get_runtime(state)
    runtime.start()
    return runtime


def stop_background(state: AppState) -> None:
    runtime = _runtimes.get(id(state))
    if runtime is not None and runtime.state is state:
        runtime.stop()
