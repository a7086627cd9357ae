"""Shared helpers of the prescriber-tier tests: a valid submission per condition (seed 003 §6.1, §9.3)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from server.services import prescriber_catalog as catalog


def submission(condition: str = "trt-cream", **changes: Any) -> dict[str, Any]:
    c = catalog.CONDITIONS[condition]
    body: dict[str, Any] = {
        "patient": {
            "email": f"jane.{uuid.uuid4().hex[:8]}@example.com",
            "first_name": "Jane",
            "last_name": "Doe",
            "date_of_birth": "1990-05-15",
            "gender": "female",
            "phone": "+15551234567",
            "address": {
                "line1": "123 Main St",
                "line2": "Apt 4B",
                "city": "Miami",
                "state": "FL",
                "zip": "33101",
                "country": "US",
            },
        },
        "condition": condition,
        "intake_answers": [
            {"question_id": q, "question_text": f"Question {q}?", "answer": f"Answer to {q}"}
            for q in c.current.required
        ],
        "partner_reference": f"CASE-{uuid.uuid4().hex[:10]}",
        "metadata": {"internal_case_id": "4821"},
    }
    body.update(copy.deepcopy(changes))
    return body


def code(response: Any) -> str:
    return response.json()["error"]["code"]


def submit(sandbox: Any, creds: Any, body: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    r = sandbox.call("POST", "/partner/appointments", creds, json=body or submission(**changes))
    assert r.status_code == 201, r.text
    return r.json()


def advance(sandbox: Any, creds: Any, appointment_id: str, target: str, **extra: Any) -> dict[str, Any]:
    r = sandbox.call(
        "POST",
        f"/partner/sandbox/appointments/{appointment_id}/advance",
        creds,
        json={"target_status": target, **extra},
    )
    assert r.status_code == 200, r.text
    return r.json()


def events_for(sandbox: Any, creds: Any, appointment_id: str) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from server.db.models import Event

    with sandbox.state.db.session() as session:
        rows = session.scalars(
            select(Event).where(Event.partner_id == creds.partner_id).order_by(Event.seq)
        ).all()
        return [dict(e.payload) for e in rows if e.payload.get("appointment_id") == appointment_id]
