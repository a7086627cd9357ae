"""The ceiling for this stack: a bare Starlette app doing the sandbox's auth and database read, no spec.

Same database layer, same credential check (server.repositories.credentials: partner + key row, SHA-256 compare, active/environment),
same referral read (server.repositories.referral_reads, as the sandbox's handler) and the same serializer as
GET /partner/referrals/{referral_id}; no routing by the spec, no validation, no rate limit, no
middleware. Not part of the sandbox: the benchmark starts it with
``uvicorn --factory bench.bare_app:app_from_env``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server import auth, serializers
from server.db.engine import Database
from server.errors import ApiError
from server.repositories import credentials, referral_reads


def create_bare_app(database_url: str, base_url: str = "http://127.0.0.1:8080") -> Starlette:
    db = Database(database_url)

    def read(partner_id: str | None, api_key: str | None, referral_id: str) -> tuple[int, dict[str, object]]:
        with db.connect() as conn:
            record = credentials.lookup(conn, partner_id) if partner_id and api_key else None
            try:
                partner = auth.check_credentials(partner_id, api_key, record, "sandbox", datetime.now(UTC))
            except ApiError as err:
                return 401, {"error": {"code": err.code, "message": err.message, "details": None}}
        with db.reading() as session:  # as ReferralService.read
            referral = referral_reads.read(session, partner.id, referral_id)
            if referral is None:
                return 404, {"error": {"code": "REFERRAL_NOT_FOUND", "message": "not found", "details": None}}
            return 200, serializers.referral(referral, partner, base_url)

    async def get_referral(request: Request) -> JSONResponse:
        status, body = await anyio.to_thread.run_sync(
            read,
            request.headers.get("x-partner-id"),
            request.headers.get("x-api-key"),
            request.path_params["referral_id"],
        )
        return JSONResponse(body, status_code=status)

    return Starlette(routes=[Route("/partner/referrals/{referral_id}", get_referral)])


def app_from_env() -> Starlette:
    return create_bare_app(os.environ["STEALTH_DATABASE_URL"])
