"""The prescriber registry of clinical partners (seed 002 §11.1.1-§11.1.4).

Schema rules (names, email, licenses shape, country / jurisdiction codes) are enforced by the request validator
with the operation's x-validation-order; this service adds the idempotency on partner_reference
(DUPLICATE_REFERENCE) and then the server-side check PRESCRIBER_LICENSE_EXPIRED, in that order.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from server import clock
from server.auth import AuthenticatedPartner
from server.clock import iso
from server.cursor import CursorCodec, filter_digest
from server.db.models_clinical import Prescriber
from server.errors import ApiError
from server.idempotency import fingerprint, replay_of
from server.state import AppState


def prescriber_not_found() -> ApiError:
    return ApiError("PRESCRIBER_NOT_FOUND", "The prescriber was not found.", {"parameter": "prescriber_id"})


def serialize(p: Prescriber) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prescriber_id": p.id,
        "status": p.status,
        "first_name": p.first_name,
        "last_name": p.last_name,
        "email": p.email,
        "npi": p.npi,
        "dea_number": p.dea_number,
    }
    if p.partner_reference is not None:
        out["partner_reference"] = p.partner_reference
    out.update(
        {"licenses": list(p.licenses), "created_at": iso(p.created_at), "updated_at": iso(p.updated_at)}
    )
    return out


@dataclass
class CreateResult:
    prescriber: dict[str, Any]
    replayed: bool


def unexpired_license(licenses: list[dict[str, Any]], country: str, jurisdiction: str, today: date) -> bool:
    return any(
        lic["country"] == country
        and lic["jurisdiction"] == jurisdiction
        and date.fromisoformat(lic["expires_at"]) > today
        for lic in licenses
    )


class PrescriberService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.cursors = CursorCodec(state.box.subkey("cursor"))

    @staticmethod
    def _today(partner: AuthenticatedPartner) -> date:
        return clock.partner_now(partner.clock_offset_seconds).date()

    def create(self, partner: AuthenticatedPartner, body: dict[str, Any]) -> CreateResult:
        digest = fingerprint(body)
        reference = body.get("partner_reference")
        if reference is not None:
            replay = self._replay(partner, reference, digest)
            if replay is not None:
                return replay
        today = self._today(partner)
        for i, lic in enumerate(body["licenses"]):
            if date.fromisoformat(lic["expires_at"]) <= today:
                raise ApiError(
                    "PRESCRIBER_LICENSE_EXPIRED",
                    f"licenses[{i}] expired on {lic['expires_at']}.",
                    {"field": f"/licenses/{i}/expires_at", "expires_at": lic["expires_at"]},
                )
        now = clock.partner_now(partner.clock_offset_seconds)
        row = Prescriber(
            id="pres_" + secrets.token_hex(8),
            partner_id=partner.id,
            partner_reference=reference,
            request_fingerprint=digest,
            status="active",
            first_name=body["first_name"],
            last_name=body["last_name"],
            email=body["email"],
            npi=body.get("npi"),
            dea_number=(body.get("dea_number") or None) and body["dea_number"].upper(),
            licenses=[
                {
                    "country": lic["country"],
                    "jurisdiction": lic["jurisdiction"],
                    "license_number": lic["license_number"],
                    "expires_at": lic["expires_at"],
                }
                for lic in body["licenses"]
            ],
            created_at=now,
            updated_at=now,
        )
        try:
            with self.state.db.session() as session:
                session.add(row)
                session.flush()
                out = serialize(row)
        except IntegrityError:
            assert reference is not None  # only the partner_reference is unique
            replay = self._replay(partner, reference, digest)
            assert replay is not None
            return replay
        return CreateResult(out, replayed=False)

    def _replay(self, partner: AuthenticatedPartner, reference: str, digest: str) -> CreateResult | None:
        with self.state.db.session() as session:
            existing = replay_of(
                session, Prescriber, partner.id, reference, digest, noun="prescriber", id_key="prescriber_id"
            )
            return CreateResult(serialize(existing), replayed=True) if existing is not None else None

    def get(self, partner: AuthenticatedPartner, prescriber_id: str) -> dict[str, Any]:
        with self.state.db.session() as session:
            row = session.get(Prescriber, prescriber_id)
            if row is None or row.partner_id != partner.id:
                raise prescriber_not_found()
            return serialize(row)

    def deactivate(self, partner: AuthenticatedPartner, prescriber_id: str) -> dict[str, Any]:
        with self.state.db.session() as session:
            row = session.get(Prescriber, prescriber_id, with_for_update=True)
            if row is None or row.partner_id != partner.id:
                raise prescriber_not_found()
            if row.status != "inactive":
                row.status = "inactive"
                row.updated_at = clock.partner_now(partner.clock_offset_seconds)
                session.flush()
            return serialize(row)

    def list(
        self, partner: AuthenticatedPartner, status: str | None, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        digest = filter_digest("prescribers:" + partner.id, {"status": status})
        after: tuple[datetime, Any] | None = self.cursors.decode(cursor, digest) if cursor else None
        conds: list[Any] = [Prescriber.partner_id == partner.id]
        if status:
            conds.append(Prescriber.status == status)
        if after is not None:
            t, pid = after
            conds.append(
                or_(Prescriber.created_at < t, and_(Prescriber.created_at == t, Prescriber.id < pid))
            )
        with self.state.db.session() as session:
            rows = list(
                session.scalars(
                    select(Prescriber)
                    .where(*conds)
                    .order_by(Prescriber.created_at.desc(), Prescriber.id.desc())
                    .limit(limit + 1)
                )
            )
            has_more = len(rows) > limit
            rows = rows[:limit]
            items = [serialize(r) for r in rows]
        next_cursor = (
            self.cursors.encode(rows[-1].created_at, rows[-1].id, digest) if has_more and rows else None
        )
        return items, next_cursor
