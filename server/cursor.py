"""Opaque keyset cursors: base64url(JSON position) + HMAC, bound to the list and its filters.

A cursor names the last row of a page by (created_at, id); the next page starts strictly after it, so
rows inserted meanwhile never shift or repeat items. Tampering, or reuse with other filters, is a
400 INVALID_CURSOR.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from server.clock import parse_iso
from server.errors import ApiError


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def filter_digest(list_name: str, filters: Mapping[str, Any]) -> str:
    canonical = json.dumps(
        {"list": list_name, **{k: v for k, v in filters.items() if v is not None}},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def invalid_cursor() -> ApiError:
    return ApiError(
        "INVALID_CURSOR",
        "The cursor is malformed or was issued for a different list.",
        {"parameter": "cursor"},
    )


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sig(self, payload: bytes) -> str:
        return _b64(hmac.new(self._key, payload, hashlib.sha256).digest()[:16])

    def encode(self, created_at: datetime, row_id: str | int, digest: str) -> str:
        payload = json.dumps(
            {"t": created_at.isoformat(), "i": row_id, "f": digest}, separators=(",", ":")
        ).encode()
        return f"{_b64(payload)}.{self._sig(payload)}"

    def decode(self, cursor: str, digest: str) -> tuple[datetime, Any]:
        try:
            body, sig = cursor.split(".", 1)
            payload = _unb64(body)
            if not hmac.compare_digest(sig, self._sig(payload)):
                raise ValueError("bad signature")
            data = json.loads(payload)
            if data.get("f") != digest:
                raise ValueError("other filters")
            return parse_iso(data["t"]), data["i"]
        except (ValueError, KeyError, TypeError, json.JSONDecodeError):
            raise invalid_cursor() from None


def after_position(created_at: Any, row_id: Any, position: tuple[datetime, Any]) -> Any:
    """Rows strictly after a cursor's (created_at, id) position, newest first.

    A row-value comparison, not ``created_at < t OR (created_at = t AND id < i)``: PostgreSQL turns it into an
    index range on (partner_id, created_at, id), so a deep page costs what the first one does.
    """
    from sqlalchemy import tuple_

    return tuple_(created_at, row_id) < tuple_(*position)


def newest_first_page(
    session: Any, model: Any, conds: list[Any], limit: int, after: Any = None
) -> tuple[list[Any], bool]:
    """One keyset page of ``model`` rows matching ``conds``, newest first by (created_at, id), strictly after the
    cursor position ``after`` if given: (rows, whether more follow)."""
    from sqlalchemy import select

    if after is not None:
        conds = [*conds, after_position(model.created_at, model.id, after)]
    rows = list(
        session.scalars(
            select(model).where(*conds).order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
        )
    )
    return rows[:limit], len(rows) > limit
