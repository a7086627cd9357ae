"""The sandbox's simulated physician review and network-pharmacy fill for prescriber appointments (seed 003 §15.2).

On the partner's clock: about 2 minutes after submission (24 hours with the slow_review scenario) the appointment
goes to in_review and, 1 second later, to the outcome its ``metadata.sandbox_scenario`` chose (signed by default,
or denied with the scenario's category). With pharmacy_preference stealth (or approve_and_fill) the prescription is
then routed, and about 2 minutes after routing the network pharmacy fills and ships it (completed). Auto-advance
off (STEALTH_AUTO_ADVANCE_SECONDS=0) leaves all of it to the advance control and the trigger.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm.exc import StaleDataError

from server import clock
from server.auth import AuthenticatedPartner
from server.db.models import Event
from server.db.models_prescriber import PrescriberAppointment
from server.errors import ApiError
from server.lifecycle import IllegalTransition
from server.services import prescriber_catalog as catalog
from server.services.prescriber import Made, PrescriberService, detail
from server.services.simulation import bump_clock
from server.state import AppState

TRIGGERABLE = frozenset(
    {
        "appointment.submitted",
        "review.billed",
        "appointment.in_review",
        "appointment.prescription_signed",
        "appointment.denied",
        "prescription.routed",
        "prescription.filled",
    }
)
# the advance target that makes each event fire (submitted and billed fire at creation)
_TRIGGER_TARGET = {
    "appointment.in_review": "in_review",
    "appointment.prescription_signed": "doctor_reviewed",
    "appointment.denied": "rejected",
    "prescription.routed": "routed",
    "prescription.filled": "completed",
}


def invalid_transition(appt: PrescriberAppointment, target: str, reachable: list[str]) -> ApiError:
    return ApiError(
        "INVALID_TRANSITION",
        f"Appointment {appt.id} cannot move from {appt.status} to {target}.",
        {"appointment_id": appt.id, "from": appt.status, "to": target, "reachable": reachable},
    )


class PrescriberSimulation:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.service = PrescriberService(state)
        self.transitions = self.service.transitions

    @property
    def enabled(self) -> bool:
        return int(self.state.settings.auto_advance_seconds) > 0

    # ------------------------------------------------------------------ jobs on the partner's clock

    def jobs(self, partner_id: str) -> list[tuple[datetime, str, str]]:
        """(due, kind review|fill, appointment_id) of every scheduled job, soonest first."""
        if not self.enabled:
            return []
        out: list[tuple[datetime, str, str]] = []
        with self.state.db.session() as session:
            rows = session.scalars(
                select(PrescriberAppointment).where(
                    PrescriberAppointment.partner_id == partner_id,
                    or_(
                        PrescriberAppointment.status == "pending",
                        PrescriberAppointment.status == "doctor_reviewed",
                    ),
                )
            ).all()
            for appt in rows:
                if appt.status == "pending":
                    delay = (
                        catalog.SLOW_REVIEW_DELAY if appt.scenario == "slow_review" else catalog.REVIEW_DELAY
                    )
                    out.append((appt.created_at + delay, "review", appt.id))
                elif appt.routing and appt.routing["routing_status"] == "submitted":
                    routed = clock.parse_iso(appt.routing["routed_at"])
                    out.append((routed + catalog.FILL_DELAY, "fill", appt.id))
        out.sort()
        return out

    def _wants_routing(self, appt: PrescriberAppointment) -> bool:
        return appt.pharmacy_preference == "stealth" or appt.scenario == "approve_and_fill"

    def run_job(self, partner_id: str, kind: str, appointment_id: str, at: datetime) -> int | None:
        """Run one job at sandbox time ``at``: the number of events written, None when nothing changed."""
        try:
            with self.state.db.session() as session:
                appt = session.get(PrescriberAppointment, appointment_id)
                if appt is None or appt.partner_id != partner_id:
                    return None
                made: list[Made] = []
                if kind == "review" and appt.status == "pending":
                    made.append(self.transitions.start_review(session, appt, at))
                    decided = at + catalog.STEP
                    if appt.scenario.startswith("deny_"):
                        made.append(self.transitions.deny(session, appt, decided, appt.scenario[5:], None))
                    else:
                        made.append(self.transitions.sign(session, appt, decided))
                        if self._wants_routing(appt):
                            chosen = self.service.pick_pharmacy(appt, None)
                            made.append(self.transitions.route(session, appt, chosen, decided + catalog.STEP))
                elif kind == "fill" and appt.routing and appt.routing["routing_status"] == "submitted":
                    made.extend(self.transitions.fill(session, appt, at))
                if not made:
                    return None
        except (StaleDataError, IllegalTransition, ApiError):
            return None
        return len({m.event_id for m in made})

    def run_due(self, partner_id: str, until: datetime) -> tuple[int, int]:
        jobs_run = events = 0
        skip: set[tuple[datetime, str, str]] = set()
        for _guard in range(10_000):
            due = [j for j in self.jobs(partner_id) if j[0] <= until and j not in skip]
            if not due:
                break
            made = self.run_job(partner_id, due[0][1], due[0][2], due[0][0])
            if made is None:
                skip.add(due[0])
                continue
            jobs_run += 1
            events += made
        return jobs_run, events

    # ------------------------------------------------------------------ the advance control

    def _walk(
        self,
        appt: PrescriberAppointment,
        session: Any,
        target: str,
        start: datetime,
        body: dict[str, Any],
    ) -> list[Made]:
        """Move ``appt`` to ``target`` ("routed" = doctor_reviewed with a routing) one second apart."""
        made: list[Made] = []
        at = start

        def tick() -> datetime:
            nonlocal at
            if made:
                at = at + catalog.STEP
            return at

        lifecycle = self.transitions.appointments
        wanted = "doctor_reviewed" if target == "routed" else target
        if appt.status == wanted and target not in ("routed", "completed"):
            return []
        if target in ("routed", "completed") and appt.status in ("doctor_reviewed", "completed"):
            steps: list[str] = []
        else:
            goal = "doctor_reviewed" if target in ("routed", "completed") else target
            path = lifecycle.path(appt.status, goal)
            if path is None:
                raise invalid_transition(appt, target, sorted(lifecycle.reachable(appt.status)))
            steps = [t.to_state for t in path]
        for to in steps:
            if to == "in_review":
                made.append(self.transitions.start_review(session, appt, tick()))
            elif to == "doctor_reviewed":
                made.append(self.transitions.sign(session, appt, tick()))
            elif to == "rejected":
                made.append(
                    self.transitions.deny(
                        session,
                        appt,
                        tick(),
                        body.get("denial_category") or "not_a_candidate",
                        body.get("denial_reason"),
                    )
                )
            else:  # pragma: no cover - the lifecycle has no other step before doctor_reviewed
                raise invalid_transition(appt, target, [])
        if target in ("routed", "completed"):
            if appt.status == "completed":
                return made
            if appt.routing is None:
                self.service.check_routable(appt, at)
                chosen = self.service.pick_pharmacy(appt, body.get("pharmacy_id"))
                made.append(self.transitions.route(session, appt, chosen, tick()))
            if target == "completed":
                made.extend(self.transitions.fill(session, appt, tick()))
        return made

    def advance(
        self, partner: AuthenticatedPartner, appointment_id: str, body: dict[str, Any]
    ) -> tuple[dict[str, Any], list[Made]]:
        target = body["target_status"]
        for _try in range(3):
            now = self.service._now(partner)
            try:
                with self.state.db.session() as session:
                    appt = self.service.load(session, partner, appointment_id)
                    made = self._walk(appt, session, target, now, body)
            except StaleDataError:
                continue
            except IllegalTransition:
                with self.state.db.session() as session:
                    appt = self.service.load(session, partner, appointment_id)
                    raise invalid_transition(appt, target, []) from None
            if made:
                bump_clock(self.state, partner.id, made[-1].occurred_at)
            with self.state.db.session() as session:
                appt = self.service.load(session, partner, appointment_id)
                return detail(appt, self.service._now(partner)), made
        raise ApiError(
            "SERVICE_UNAVAILABLE",
            "The appointment changed concurrently; retry.",
            None,
            headers={"Retry-After": "1"},
        )

    # ------------------------------------------------------------------ trigger

    def synthetic_submission(self) -> dict[str, Any]:
        condition = next(iter(catalog.CONDITIONS.values()))
        answers = [
            {"question_id": q, "question_text": f"Sandbox question {q}", "answer": "Sandbox answer"}
            for q in condition.current.required
        ]
        token = uuid.uuid4().hex[:12]
        return {
            "patient": {
                "email": f"sandbox.trigger.{token}@example.com",
                "first_name": "Sandbox",
                "last_name": "Trigger",
                "date_of_birth": "1985-06-15",
                "gender": "other",
                "phone": "+15550100000",
                "address": {
                    "line1": "1 Sandbox Way",
                    "city": "Miami",
                    "state": condition.supported_states[0],
                    "zip": "33101",
                    "country": condition.supported_countries[0],
                },
            },
            "condition": condition.category,
            "intake_answers": answers,
            "pharmacy_preference": "partner",
            "partner_reference": f"sandbox-trigger-{token}",
        }

    def trigger(self, partner: AuthenticatedPartner, event_type: str) -> dict[str, Any]:
        created = self.service.submit(partner, self.synthetic_submission())
        appointment_id = created.appointment["appointment_id"]
        with self.state.db.session() as session:
            events = [
                (e.id, e.event_type, e.created_at)
                for e in session.scalars(
                    select(Event)
                    .where(
                        Event.partner_id == partner.id,
                        Event.event_type.in_(["appointment.submitted", "review.billed"]),
                    )
                    .order_by(Event.seq)
                )
                if e.payload.get("appointment_id") == appointment_id
            ]
        listed = [{"event_id": i, "event_type": t, "occurred_at": clock.iso(at)} for i, t, at in events]
        if event_type in _TRIGGER_TARGET:
            body: dict[str, Any] = {"target_status": _TRIGGER_TARGET[event_type]}
            _appt, made = self.advance(partner, appointment_id, body)
            seen = {e["event_id"] for e in listed}
            for m in made:
                if m.event_id not in seen:
                    seen.add(m.event_id)
                    listed.append(
                        {
                            "event_id": m.event_id,
                            "event_type": m.event_type,
                            "occurred_at": clock.iso(m.occurred_at),
                        }
                    )
        # the requested event last: nothing after it
        last = max(i for i, e in enumerate(listed) if e["event_type"] == event_type)
        listed = listed[: last + 1]
        requested = listed[-1]
        return {
            "event_type": event_type,
            "event_id": requested["event_id"],
            "events": listed,
            "objects": {"appointment_id": appointment_id, "patient_id": created.appointment["patient_id"]},
        }


def due_partners_filter() -> Any:
    """Partners with prescriber work the background runner must look at."""
    return select(PrescriberAppointment.partner_id).where(
        PrescriberAppointment.status.in_(("pending", "doctor_reviewed"))
    )
