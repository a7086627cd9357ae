"""50 concurrent creates with one partner_reference, against a real uvicorn process (SQLite and PostgreSQL):
exactly one object; the winner gets 201, every identical body the documented replay (200,
`Idempotent-Replayed: true`, the same object), every different body 409 DUPLICATE_REFERENCE (D-012); no 500.
"""

from __future__ import annotations

import asyncio
import collections
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from server.services.partners import Credentials
from tests.server.reliability.procs import Server, Store, headers, record

CALLERS = 50
DIFFERENT = 10  # callers sending another body with the same reference


async def _fire(base: str, path: str, hdrs: dict[str, str], bodies: list[dict[str, Any]]) -> list[Any]:
    limits = httpx.Limits(max_connections=CALLERS + 5, max_keepalive_connections=CALLERS + 5)
    async with httpx.AsyncClient(base_url=base, headers=hdrs, limits=limits, timeout=60) as client:
        # every caller waits at the gate, then all send at once (one connection each; no idle keep-alive
        # connection the server could close under us)
        start = asyncio.Event()

        async def one(body: dict[str, Any]) -> Any:
            await start.wait()
            return await client.post(path, json=body)

        tasks = [asyncio.create_task(one(b)) for b in bodies]
        await asyncio.sleep(0.05)
        start.set()
        return await asyncio.gather(*tasks)


def check_answers(
    responses: list[Any], bodies: list[dict[str, Any]], id_field: str
) -> tuple[str, collections.Counter[int]]:
    statuses = collections.Counter(r.status_code for r in responses)
    assert statuses[500] == 0 and all(r.status_code < 500 for r in responses), statuses
    winners = [i for i, r in enumerate(responses) if r.status_code == 201]
    assert len(winners) == 1, statuses
    win_body = json.dumps(bodies[winners[0]], sort_keys=True)
    object_id = responses[winners[0]].json()[id_field]
    for i, r in enumerate(responses):
        if i == winners[0]:
            continue
        if json.dumps(bodies[i], sort_keys=True) == win_body:
            assert r.status_code == 200, (r.status_code, r.text)
            assert r.headers.get("idempotent-replayed") == "true"
            assert r.json()[id_field] == object_id
        else:
            assert r.status_code == 409, (r.status_code, r.text)
            assert r.json()["error"]["code"] == "DUPLICATE_REFERENCE"
    return object_id, statuses


def _bodies(same: dict[str, Any], other: dict[str, Any]) -> list[dict[str, Any]]:
    # the different bodies are spread through the burst, not all at the end
    return [other if i % (CALLERS // DIFFERENT) == 0 else same for i in range(CALLERS)]


def _list_count(server: Server, creds: Credentials, path: str, key: str, reference: str) -> int:
    r = httpx.get(
        f"{server.base_url}{path}",
        headers=headers(creds),
        params={"partner_reference": reference},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return len(r.json()[key])


def test_fifty_concurrent_referral_creates(live: Callable[..., tuple[Server, Store]], backend: str) -> None:
    server, store = live()
    creds = store.partner("referral")
    reference = f"cust_{uuid.uuid4().hex[:10]}"
    same = {"partner_reference": reference, "product_category": "trt-cream"}
    other = {**same, "metadata": {"variant": "b"}}
    bodies = _bodies(same, other)
    responses = asyncio.run(_fire(server.base_url, "/partner/referrals", headers(creds), bodies))
    referral_id, statuses = check_answers(responses, bodies, "referral_id")
    assert _list_count(server, creds, "/partner/referrals", "referrals", reference) == 1
    from sqlalchemy import func, select

    from server.db.models import Referral

    with store.db.session() as session:
        rows = session.scalar(
            select(func.count()).select_from(Referral).where(Referral.partner_reference == reference)
        )
    assert rows == 1
    record(
        f"concurrent referral creates ({backend})",
        callers=CALLERS,
        statuses=dict(sorted(statuses.items())),
        referrals_created=rows,
        referral_id=referral_id,
    )


def _prescriber(server: Server, creds: Credentials) -> str:
    body = {
        "first_name": "Alice",
        "last_name": "Doctor",
        "email": "alice@example.com",
        "dea_number": "AB1234567",
        "licenses": [
            {"country": "US", "jurisdiction": "TX", "license_number": "TX-MD-1", "expires_at": "2099-01-01"}
        ],
    }
    r = httpx.post(f"{server.base_url}/partner/prescribers", headers=headers(creds), json=body, timeout=30)
    assert r.status_code == 201, r.text
    return str(r.json()["prescriber_id"])


def test_fifty_concurrent_prescription_creates(
    live: Callable[..., tuple[Server, Store]], backend: str
) -> None:
    server, store = live()
    creds = store.partner("clinical")
    prescriber_id = _prescriber(server, creds)
    reference = f"PRX-{uuid.uuid4().hex[:10]}"
    same = {
        "prescriber_id": prescriber_id,
        "partner_reference": reference,
        "medications": [
            {"code": "MED-TRT-CREAM", "quantity": 30, "dosage_instructions": "Apply 1g daily", "repeats": 5}
        ],
        "inline_patient": {
            "first_name": "Pat",
            "last_name": "Inline",
            "email": f"pat.{uuid.uuid4().hex[:6]}@example.com",
            "phone": "+15125550199",
            "dob": "1990-05-10",
            "gender": "male",
            "address": {
                "street": "1 Main St",
                "city": "Austin",
                "jurisdiction": "TX",
                "postal_code": "73301",
                "country": "US",
            },
        },
    }
    other = {**same, "notes": "a different body"}
    bodies = _bodies(same, other)
    responses = asyncio.run(_fire(server.base_url, "/partner/prescriptions", headers(creds), bodies))
    prescription_id, statuses = check_answers(responses, bodies, "prescription_id")
    from sqlalchemy import text

    with store.db.session() as session:
        rows = session.execute(
            text("SELECT count(*) FROM partner_prescriptions WHERE partner_reference = :r"), {"r": reference}
        ).scalar()
    assert rows == 1
    record(
        f"concurrent prescription creates ({backend})",
        callers=CALLERS,
        statuses=dict(sorted(statuses.items())),
        prescriptions_created=rows,
        prescription_id=prescription_id,
    )


def test_fifty_concurrent_appointment_creates(
    live: Callable[..., tuple[Server, Store]], backend: str
) -> None:
    from tests.server.prescriber.helpers import submission

    server, store = live()
    creds = store.partner("prescriber")
    reference = f"APT-{uuid.uuid4().hex[:10]}"
    same = submission(partner_reference=reference)
    other = {**same, "metadata": {"internal_case_id": "another"}}
    bodies = _bodies(same, other)
    responses = asyncio.run(_fire(server.base_url, "/partner/appointments", headers(creds), bodies))
    appointment_id, statuses = check_answers(responses, bodies, "appointment_id")
    from sqlalchemy import text

    with store.db.session() as session:
        rows = session.execute(
            text("SELECT count(*) FROM prescriber_appointments WHERE partner_reference = :r"),
            {"r": reference},
        ).scalar()
        charged = session.execute(
            text("SELECT count(*) FROM events WHERE event_type = 'review.billed' AND partner_id = :p"),
            {"p": creds.partner_id},
        ).scalar()
    assert rows == 1 and charged == 1  # one appointment, one charge
    record(
        f"concurrent appointment creates ({backend})",
        callers=CALLERS,
        statuses=dict(sorted(statuses.items())),
        appointments_created=rows,
        appointment_id=appointment_id,
    )
