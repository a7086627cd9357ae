"""The simulated pharmacy end to end: order → delivery with every webhook received by a real loopback
receiver (signature verified independently, payload and headers valid against the spec's webhooks), then
a refill through the API; shipment cancellation; retries and dead letter; the sandbox tick."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from server import clock
from server.db.models_pharmacy import PharmacyDelivery, PharmacyDeliveryAttempt
from server.pharmacy import service, simulation
from tests.server.pharmacy.conftest import Pharmacy, PharmacySchemas
from tests.server.pharmacy.verifier import verify_pharmacy_signature
from tests.server.webhooks.conftest import Receiver


def _hook(pharmacy: Pharmacy, creds: Any, receiver: Receiver) -> str:
    # The API only accepts https URLs (spec pattern); the sandbox service accepts a loopback http receiver.
    return service.register_webhook(
        pharmacy.db, creds.clinic_id, creds.clinic_id, receiver.url, "sandbox"
    ).webhook_id


def _events(
    pharmacy: Pharmacy, creds: Any, receiver: Receiver, schemas: PharmacySchemas, start: int, count: int
) -> list[dict[str, Any]]:
    pharmacy.dispatcher().drain(clinic_id=creds.clinic_id)
    received = receiver.wait_for(start + count, timeout=5)
    assert len(received) == start + count, [json.loads(r.body)["event_name"] for r in received]
    out = []
    for rec in received[start:]:
        payload = json.loads(rec.body)
        name = payload["event_name"]
        schemas.webhook(name, payload)
        schemas.webhook_headers(name, rec.headers)
        assert verify_pharmacy_signature(rec.body, rec.headers["x-pharmacy-signature"], creds.signing_secret)
        assert not verify_pharmacy_signature(
            rec.body + b" ", rec.headers["x-pharmacy-signature"], creds.signing_secret
        )
        assert rec.headers["x-api-key"] == creds.api_key
        uuid.UUID(rec.headers["x-pharmacy-event-id"])
        out.append(payload)
    return out


def _statuses(events: list[dict[str, Any]]) -> list[tuple[str, Any, Any]]:
    return [
        (e["event_name"], e["event_data"].get("previous_status"), e["event_data"].get("status"))
        if e["event_name"] == "medication:updated"
        else (e["event_name"], None, e["event_data"].get("shipment_status"))
        for e in events
    ]


def test_order_to_delivery_then_refill(
    pharmacy: Pharmacy, receiver: Receiver, ph_schemas: PharmacySchemas
) -> None:
    creds = pharmacy.clinic()
    _hook(pharmacy, creds, receiver)
    ref = simulation.create_medication_order(
        pharmacy.db,
        creds.clinic_id,
        medication_name="Semaglutide 0.25 mg",
        refills_allowed=2,
        delivery_location={"address": "456 Oak Ave", "city": "Austin", "state": "TX", "postal_code": "78702"},
        source="test",
    )
    for _ in range(4):
        simulation.advance_order(pharmacy.db, ref.medication_order_id)
    events = _events(pharmacy, creds, receiver, ph_schemas, 0, 6)
    assert _statuses(events) == [
        ("medication:updated", None, "validated"),
        ("medication:updated", "validated", "submitted"),
        ("medication:updated", "submitted", "filled"),
        ("shipment:created", None, "pending"),
        ("medication:updated", "filled", "shipped"),
        ("medication:updated", "shipped", "delivered"),
    ]
    shipment = events[3]["event_data"]
    assert shipment["medication_orders"] == [ref.medication_order_id]
    assert shipment["delivery_location"]["city"] == "Austin"
    shipped = events[4]["event_data"]
    assert shipped["tracking_number"] == shipment["tracking_number"]
    for e in events:
        if e["event_name"] == "medication:updated":
            assert e["event_data"]["medication_order_id"] == ref.medication_order_id
            assert e["event_data"]["medication_request_id"] == ref.medication_request_id
            assert e["event_data"]["prescription_id"] == ref.prescription_id
    ids = [r.headers["x-pharmacy-event-id"] for r in receiver.received]
    assert len(set(ids)) == len(ids)

    response = pharmacy.call(
        "POST", "/refill-request", creds, json={"medication_request_id": ref.medication_request_id}
    )
    assert response.status_code == 201, response.text
    new_order = response.json()["data"]["medication_order_id"]
    assert new_order != ref.medication_order_id
    (validated,) = _events(pharmacy, creds, receiver, ph_schemas, 6, 1)
    assert validated["event_data"]["medication_order_id"] == new_order
    assert validated["event_data"]["medication_request_id"] == ref.medication_request_id
    assert (validated["event_data"]["status"], validated["event_data"]["previous_status"]) == (
        "validated",
        None,
    )


def test_shipment_cancelled(pharmacy: Pharmacy, receiver: Receiver, ph_schemas: PharmacySchemas) -> None:
    creds = pharmacy.clinic()
    _hook(pharmacy, creds, receiver)
    ref = simulation.create_medication_order(pharmacy.db, creds.clinic_id)
    simulation.advance_order(pharmacy.db, ref.medication_order_id)
    simulation.advance_order(pharmacy.db, ref.medication_order_id)  # filled: shipment created (pending)
    events = _events(pharmacy, creds, receiver, ph_schemas, 0, 4)
    shipment_id = events[3]["event_data"]["shipment_id"]
    simulation.cancel_shipment(pharmacy.db, shipment_id, "Patient request")
    cancelled, order_cancelled = _events(pharmacy, creds, receiver, ph_schemas, 4, 2)
    assert cancelled["event_name"] == "shipment:cancelled"
    assert cancelled["event_data"]["medication_orders"] == [ref.medication_order_id]
    assert cancelled["event_data"]["cancellation_reason"] == "Patient request"
    assert (order_cancelled["event_data"]["previous_status"], order_cancelled["event_data"]["status"]) == (
        "filled",
        "cancelled",
    )


def test_every_webhook_gets_every_event(pharmacy: Pharmacy, ph_schemas: PharmacySchemas) -> None:
    from tests.server.webhooks.conftest import start_receiver

    creds = pharmacy.clinic()
    a, b = start_receiver(), start_receiver()
    try:
        _hook(pharmacy, creds, a)
        _hook(pharmacy, creds, b)
        simulation.create_medication_order(pharmacy.db, creds.clinic_id)
        _events(pharmacy, creds, a, ph_schemas, 0, 1)
        _events(pharmacy, creds, b, ph_schemas, 0, 1)
        assert a.received[0].headers["x-pharmacy-event-id"] == b.received[0].headers["x-pharmacy-event-id"]
    finally:
        for r in (a, b):
            r.server.shutdown()
            r.server.server_close()


def test_retries_then_dead_letter(pharmacy: Pharmacy, receiver: Receiver) -> None:
    creds = pharmacy.clinic()
    _hook(pharmacy, creds, receiver)
    receiver.status = 500
    simulation.create_medication_order(pharmacy.db, creds.clinic_id)
    dispatcher = pharmacy.dispatcher()
    start = clock.real_now()
    (first,) = dispatcher.run_once(start, clinic_id=creds.clinic_id)
    assert first.status == "pending_retry"
    assert dispatcher.run_once(start + timedelta(seconds=29), clinic_id=creds.clinic_id) == []
    statuses = []
    for offset in (30, 300, 1800, 7200, 43200):
        (attempt,) = dispatcher.run_once(start + timedelta(seconds=offset), clinic_id=creds.clinic_id)
        statuses.append(attempt.status)
    assert statuses == ["pending_retry"] * 4 + ["dead_lettered"]
    assert dispatcher.run_once(start + timedelta(days=3), clinic_id=creds.clinic_id) == []
    assert len(receiver.received) == 6
    assert len({r.headers["x-pharmacy-event-id"] for r in receiver.received}) == 1
    assert len({r.body for r in receiver.received}) == 1
    with pharmacy.db.session() as session:
        delivery = session.get(PharmacyDelivery, first.seq)
        assert delivery is not None and delivery.delivery_status == "dead_lettered"
        attempts = session.query(PharmacyDeliveryAttempt).filter_by(delivery_seq=first.seq).count()
        assert attempts == 6


def test_retry_succeeds(pharmacy: Pharmacy, receiver: Receiver) -> None:
    creds = pharmacy.clinic()
    _hook(pharmacy, creds, receiver)
    receiver.responder = lambda rec: 503 if len(receiver.received) == 1 else 200
    simulation.create_medication_order(pharmacy.db, creds.clinic_id)
    dispatcher = pharmacy.dispatcher()
    start = clock.real_now()
    assert dispatcher.run_once(start, clinic_id=creds.clinic_id)[0].status == "pending_retry"
    assert (
        dispatcher.run_once(start + timedelta(seconds=30), clinic_id=creds.clinic_id)[0].status == "delivered"
    )


def test_deleted_webhook_stops_deliveries(pharmacy: Pharmacy, receiver: Receiver) -> None:
    creds = pharmacy.clinic()
    webhook_id = _hook(pharmacy, creds, receiver)
    simulation.create_medication_order(pharmacy.db, creds.clinic_id)
    assert pharmacy.call("DELETE", f"/webhook/{webhook_id}", creds).status_code == 200
    assert pharmacy.dispatcher().drain(clinic_id=creds.clinic_id) == []
    assert receiver.received == []


def test_sandbox_tick_advances_orders(pharmacy: Pharmacy) -> None:
    creds = pharmacy.clinic()
    ref = simulation.create_medication_order(pharmacy.db, creds.clinic_id)
    now = clock.real_now()
    simulation.tick(pharmacy.db, now + timedelta(seconds=10))
    assert simulation.order_status(pharmacy.db, ref.medication_order_id) == "validated"
    expected = ["submitted", "filled", "shipped", "delivered", "delivered"]
    for i, status in enumerate(expected, start=1):
        simulation.tick(pharmacy.db, now + timedelta(seconds=61 * i))
        assert simulation.order_status(pharmacy.db, ref.medication_order_id) == status


def test_simulation_follows_the_spec_lifecycle(ph_schemas: PharmacySchemas) -> None:
    lifecycle = ph_schemas.document["components"]["schemas"]["MedicationUpdatedEventData"]["x-lifecycle"]
    moves = {(t["from"], t["to"]) for t in lifecycle["transitions"]}
    ours = {(a, b) for a, b in simulation.NEXT_STATUS.items()} | {
        (s, "cancelled") for s in simulation.CANCELLABLE
    }
    assert ours == moves
    assert set(lifecycle["terminal"]) == simulation.TERMINAL
    assert lifecycle["initial"] == "validated"


def test_background_runtime_ticks_and_delivers(pharmacy: Pharmacy, receiver: Receiver) -> None:
    from server.pharmacy.runtime import PharmacyRuntime

    creds = pharmacy.clinic()
    _hook(pharmacy, creds, receiver)
    ref = simulation.create_medication_order(pharmacy.db, creds.clinic_id)
    runtime = PharmacyRuntime(pharmacy.sandbox.state, pharmacy.dispatcher(), step_seconds=0)
    try:
        runtime.tick()
        assert simulation.order_status(pharmacy.db, ref.medication_order_id) != "validated"
        assert len(receiver.wait_for(2, timeout=5)) >= 2
    finally:
        runtime.dispatcher.close()
