"""The partner's sandbox test clock (R-014): real time plus an offset that only grows.

Advancing it runs every job that falls due on the way at its own due time, in due order: referral
auto-advance ticks and enrollment-link expiry (server.services.simulation) and webhook retries
(server.webhooks.dispatcher). The new offset is stored only at the end, so the background dispatcher
never sees the intermediate times; the retries on the way are sent here, each recorded at its due time.
First attempts of events created on the way are left to the dispatcher ("delivered as usual, right
after the call").
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from server import clock
from server.db.models import Event, Partner
from server.errors import ApiError
from server.services.prescriber_simulation import PrescriberSimulation
from server.services.simulation import Simulation, count_events
from server.state import AppState
from server.webhooks.dispatcher import Dispatcher

MAX_ADVANCE = timedelta(days=366)
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def partner_lock(partner_id: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(partner_id, threading.Lock())


@dataclass(frozen=True)
class Job:
    due: datetime
    kind: str  # expire | step (referrals) | review | fill (prescriber appointments) | retry
    key: str  # referral id, appointment id, or event seq for retries


class SandboxClock:
    def __init__(self, state: AppState, dispatcher: Dispatcher, simulation: Simulation | None = None) -> None:
        self.state = state
        self.dispatcher = dispatcher
        self.simulation = simulation or Simulation(state)
        self.prescriber = PrescriberSimulation(state)

    # ---------------------------------------------------------------- reading

    def _partner(self, partner_id: str) -> Partner:
        with self.state.db.session() as session:
            partner = session.get(Partner, partner_id)
            assert partner is not None
            session.expunge(partner)
            return partner

    def retry_jobs(self, partner_id: str) -> list[Job]:
        with self.state.db.session() as session:
            rows = session.execute(
                select(Event.seq, Event.next_attempt_at).where(
                    Event.partner_id == partner_id,
                    Event.delivery_status == "pending_retry",
                    Event.next_attempt_at.is_not(None),
                )
            ).all()
        return [Job(at, "retry", str(seq)) for seq, at in rows if at is not None]

    def jobs(self, partner_id: str) -> list[Job]:
        jobs = [Job(d, k, r) for d, k, r in self.simulation.referral_jobs(partner_id)]
        jobs += [Job(d, k, a) for d, k, a in self.prescriber.jobs(partner_id)]
        jobs += self.retry_jobs(partner_id)
        order = {"expire": 0, "step": 1, "review": 1, "fill": 1, "retry": 2}
        jobs.sort(key=lambda j: (j.due, order[j.kind], j.key))
        return jobs

    def view(self, partner_id: str) -> dict[str, Any]:
        partner = self._partner(partner_id)
        real = clock.real_now()
        offset = partner.clock_offset_seconds or 0.0
        jobs = self.jobs(partner_id)
        return {
            "now": clock.iso(real + timedelta(seconds=offset)),
            "real_now": clock.iso(real),
            "offset_seconds": int(offset),
            # the schema asks for >= 1; 0 (auto-advance off) is reported as 1 (see the report)
            "auto_advance_interval_seconds": max(0, int(self.state.settings.auto_advance_seconds)),
            "pending_jobs": len(jobs),
            "next_job_at": clock.iso(jobs[0].due) if jobs else None,
        }

    # ---------------------------------------------------------------- advancing

    def advance(
        self, partner_id: str, seconds: int | None = None, to: datetime | None = None
    ) -> dict[str, Any]:
        with partner_lock(partner_id):
            partner = self._partner(partner_id)
            old_offset = partner.clock_offset_seconds or 0.0
            now = clock.partner_now(old_offset)
            if to is not None:
                delta = (to - now).total_seconds()
                if delta <= 0:
                    raise _bad_clock("to", f"must be after the current sandbox time {clock.iso(now)}")
                if delta > MAX_ADVANCE.total_seconds():
                    raise _bad_clock("to", "must be at most 366 days after the current sandbox time")
            else:
                assert seconds is not None
                delta = float(seconds)
                if delta < 1 or delta > MAX_ADVANCE.total_seconds():
                    raise _bad_clock("seconds", "must be between 1 and 31622400")
            target = now + timedelta(seconds=delta)
            with self.state.db.session() as session:
                before = count_events(session, partner_id)
            jobs_run = self._run_until(partner_id, partner.tier, target)
            with self.state.db.session() as session:
                row = session.get(Partner, partner_id)
                assert row is not None
                row.clock_offset_seconds = max(row.clock_offset_seconds or 0.0, old_offset + delta)
                created = count_events(session, partner_id) - before
            self.state.limits.invalidate(partner_id)
            return {
                "clock": self.view(partner_id),
                "advanced_seconds": max(1, round(delta)),
                "jobs_run": jobs_run,
                "events_created": created,
            }

    def _run_until(self, partner_id: str, tier: str, target: datetime) -> int:
        jobs_run = 0
        skip: set[tuple[str, str, datetime]] = set()
        last: datetime | None = None
        for _guard in range(100_000):
            due = [j for j in self.jobs(partner_id) if j.due <= target and (j.kind, j.key, j.due) not in skip]
            if not due:
                break
            job = due[0]
            at = job.due if last is None or job.due > last else last
            ran = self._run(partner_id, tier, job, at)
            if not ran:
                skip.add((job.kind, job.key, job.due))
                continue
            last = at
            jobs_run += 1
        return jobs_run

    def _run(self, partner_id: str, tier: str, job: Job, at: datetime) -> bool:
        if job.kind == "retry":
            seq = int(job.key)
            token = self.dispatcher.claim_event(seq)
            if token is None:
                return False
            return self.dispatcher.deliver(seq, token, at=at) is not None
        # a job that changed nothing is skipped, so the loop always moves on
        if job.kind in ("review", "fill"):
            return self.prescriber.run_job(partner_id, job.kind, job.key, at) is not None
        return self.simulation.run_referral_job(partner_id, tier, job.kind, job.key, at) is not None


def _bad_clock(field: str, message: str) -> ApiError:
    return ApiError(
        "INVALID_BODY",
        f"{field} {message}.",
        {"errors": [{"path": f"/{field}", "message": message}]},
    )
