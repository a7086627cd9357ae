"""The generated pydantic model of each webhook event type (shared by the server and the conformance suite)."""

from __future__ import annotations

import re
from types import ModuleType

from pydantic import BaseModel


def model_name(event_type: str) -> str:
    """``referral.payment_due`` -> ``ReferralPaymentDueEvent`` (the spec's event schema naming rule)."""
    return "".join(part.capitalize() for part in re.split(r"[._:]", event_type)) + "Event"


def event_model(event_type: str, module: ModuleType | None = None) -> type[BaseModel]:
    """The generated model for ``event_type``; LookupError when the models have none."""
    if module is None:
        from stealth_models import partner as module
    model = getattr(module, model_name(event_type), None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise LookupError(f"no generated model for event type {event_type!r}")
    return model
