"""Clinics: provisioning (``stealth clinic create``) and clinic-scoped X-API-Key authentication.

Keys are stored as a SHA-256 hash (looked up by hash, then compared in constant time) plus a Fernet
copy, because the seed sends the clinic's key back as X-API-Key on every webhook delivery (PH-004).
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from server import clock, ids
from server.crypto import SecretBox, sha256_hex
from server.db.engine import Database
from server.db.models_pharmacy import Clinic
from server.errors import ApiError

KEY_PREFIX_SANDBOX = "phk_test_"
KEY_PREFIX_LIVE = "phk_live_"


@dataclass(frozen=True)
class ClinicCredentials:
    clinic_id: str
    api_key: str
    signing_secret: str

    def as_dict(self) -> dict[str, str]:
        return {"clinic_id": self.clinic_id, "api_key": self.api_key, "signing_secret": self.signing_secret}


@dataclass(frozen=True)
class AuthenticatedClinic:
    id: str
    environment: str


def new_api_key(environment: str) -> str:
    prefix = KEY_PREFIX_LIVE if environment == "production" else KEY_PREFIX_SANDBOX
    return prefix + secrets.token_hex(32)


def create_clinic(
    db: Database, box: SecretBox, *, name: str = "Sandbox clinic", environment: str = "sandbox"
) -> ClinicCredentials:
    api_key = new_api_key(environment)
    secret = ids.webhook_secret()
    clinic_id = str(uuid.uuid4())
    with db.session() as session:
        session.add(
            Clinic(
                id=clinic_id,
                name=name,
                environment=environment,
                active=True,
                key_hash=sha256_hex(api_key),
                key_prefix=api_key[:16],
                api_key_encrypted=box.encrypt(api_key),
                signing_secret_encrypted=box.encrypt(secret),
                created_at=clock.real_now(),
            )
        )
    return ClinicCredentials(clinic_id, api_key, secret)


def set_active(db: Database, clinic_id: str, active: bool) -> None:
    with db.session() as session:
        clinic = session.get(Clinic, clinic_id)
        if clinic is not None:
            clinic.active = active


def authenticate(db: Database, api_key: str | None) -> AuthenticatedClinic:
    """The clinic of ``api_key``; MISSING_API_KEY, INVALID_API_KEY or CLINIC_INACTIVE otherwise."""
    if not api_key:
        raise ApiError("MISSING_API_KEY", "The X-API-Key header is required.")
    presented = sha256_hex(api_key)
    with db.session() as session:
        clinic = session.scalars(select(Clinic).where(Clinic.key_hash == presented)).first()
        found = (clinic.id, clinic.key_hash, clinic.active, clinic.environment) if clinic else None
    # Constant-time comparison of the hashes (the lookup above only narrows to a candidate).
    if found is None or not hmac.compare_digest(found[1], presented):
        raise ApiError("INVALID_API_KEY", "The X-API-Key is not valid.")
    if not found[2]:
        raise ApiError("CLINIC_INACTIVE", "This clinic is not active; contact partner support.")
    return AuthenticatedClinic(found[0], found[3])


NETWORK_CLINIC_NAME = "Stealth Health partner network"


def network_clinic_id(session: Session, environment: str) -> str:
    """The pharmacy client through which partner flows route prescriptions (created on first use).

    No one calls the pharmacy API as this clinic: its key and signing secret are random bytes that decrypt to
    nothing, so it can neither authenticate nor register webhooks. It exists so that orders routed for partners
    live in the same simulated pharmacy as every other clinic's.
    """
    found = session.scalar(
        select(Clinic.id)
        .where(Clinic.name == NETWORK_CLINIC_NAME, Clinic.environment == environment)
        .order_by(Clinic.created_at, Clinic.id)
        .limit(1)
    )
    if found is not None:
        return found
    clinic_id = str(uuid.uuid4())
    session.add(
        Clinic(
            id=clinic_id,
            name=NETWORK_CLINIC_NAME,
            environment=environment,
            active=False,
            key_hash=secrets.token_hex(32),
            key_prefix="(none)",
            api_key_encrypted=secrets.token_bytes(32),
            signing_secret_encrypted=secrets.token_bytes(32),
            created_at=clock.real_now(),
        )
    )
    session.flush()
    return clinic_id
