"""Idempotent creates keyed on ``partner_reference`` (glossary): the body's fingerprint, the replay lookup and the
409 DUPLICATE_REFERENCE of a reused reference with a different body."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.errors import ApiError


def fingerprint(body: dict[str, Any]) -> str:
    """Identity of a create body as a JSON value (key order and whitespace ignored)."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def duplicate_reference(reference: str, noun: str, id_key: str, existing_id: str) -> ApiError:
    return ApiError(
        "DUPLICATE_REFERENCE",
        f"partner_reference {reference} was already used for a different {noun}.",
        {"partner_reference": reference, id_key: existing_id},
    )


def replay_of(
    session: Session, model: Any, partner_id: str, reference: str, digest: str, *, noun: str, id_key: str
) -> Any | None:
    """The partner's stored object with this reference when the body is the same (a replay); None when the
    reference is free; 409 DUPLICATE_REFERENCE when it was used with another body."""
    row = session.scalar(
        select(model).where(model.partner_id == partner_id, model.partner_reference == reference)
    )
    if row is not None and row.request_fingerprint != digest:
        raise duplicate_reference(reference, noun, id_key, row.id)
    return row
