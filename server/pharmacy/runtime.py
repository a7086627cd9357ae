"""The pharmacy's background runner inside `stealth serve`: sandbox order ticks and webhook delivery.

Gated like the partner runner (server.webhooks.runtime.background_enabled; delivery unless
STEALTH_INPROCESS_DISPATCHER=0). Orders advance one step every STEALTH_PHARMACY_STEP_SECONDS (60).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field

from server.pharmacy import simulation
from server.pharmacy.delivery import PharmacyDispatcher
from server.state import AppState
from server.webhooks.runtime import background_enabled

log = logging.getLogger("stealth.pharmacy.runner")


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name) or default)
    except ValueError:
        return default


@dataclass
class PharmacyRuntime:
    state: AppState
    dispatcher: PharmacyDispatcher
    step_seconds: float = simulation.DEFAULT_STEP_SECONDS
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def tick(self, deliver: bool = True) -> None:
        if self.state.settings.environment == "sandbox":
            simulation.tick(self.state.db, step_seconds=self.step_seconds)
        if deliver:
            self.dispatcher.run_once()

    def _loop(self, interval: float, deliver: bool) -> None:
        while not self._stop.is_set():
            try:
                self.tick(deliver)
            except Exception:
                log.exception("pharmacy background tick failed")
            self._stop.wait(interval)

    def start(self) -> None:
        if self._thread is not None:
            return
        deliver = os.environ.get("STEALTH_INPROCESS_DISPATCHER", "1") != "0"
        interval = _env_float("STEALTH_RUNNER_INTERVAL_SECONDS", 0.5)
        self._thread = threading.Thread(
            target=self._loop, args=(interval, deliver), name="stealth-pharmacy-runner", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        self.dispatcher.close()


_runtimes: dict[int, PharmacyRuntime] = {}
_guard = threading.Lock()


def start_background(state: AppState) -> PharmacyRuntime | None:
    if not background_enabled():
        return None
    with _guard:
        runtime = _runtimes.get(id(state))
        if runtime is None:
            dispatcher = PharmacyDispatcher(state.db, state.box, state.settings.environment)
            runtime = PharmacyRuntime(
                state,
                dispatcher,
                _env_float("STEALTH_PHARMACY_STEP_SECONDS", simulation.DEFAULT_STEP_SECONDS),
            )
            _runtimes[id(state)] = runtime
    runtime.start()
    return runtime


def stop_background(state: AppState) -> None:
    with _guard:
        runtime = _runtimes.pop(id(state), None)
    if runtime is not None:
        runtime.stop()
