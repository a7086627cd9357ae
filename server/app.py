"""App factory: the connexion AsyncApp bound to the bundled spec, with our middlewares and error envelope."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from connexion import AsyncApp
from connexion.exceptions import ProblemException
from connexion.middleware import ConnexionMiddleware
from connexion.middleware.request_validation import RequestValidationMiddleware
from connexion.middleware.response_validation import ResponseValidationMiddleware
from connexion.middleware.routing import RoutingMiddleware
from connexion.middleware.security import SecurityMiddleware
from connexion.middleware.server_error import ServerErrorMiddleware
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from starlette.exceptions import HTTPException

from server import faults, openapi_adapter
from server.config import Settings
from server.crypto import SecretBox, load_or_create_key
from server.db.engine import Database
from server.errors import ApiError, ErrorRenderer
from server.handlers import make_resolver_function
from server.lifecycle import Lifecycles
from server.middleware.auth import AuthMiddleware
from server.middleware.bodylog import BodyLogMiddleware
from server.middleware.stamp import StampHeadersMiddleware
from server.pharmacy import app as pharmacy_app
from server.ratelimit import RateLimiter, make_rate_limiter
from server.redaction import PhiMap
from server.spec import SpecIndex, load_spec
from server.state import AppState, PartnerLimitCache
from server.web import register_web_routes

log = logging.getLogger("stealth.app")


def build_state(
    settings: Settings,
    *,
    db: Database | None = None,
    limiter: RateLimiter | None = None,
    spec_document: dict[str, Any] | None = None,
    migrate: bool = True,
) -> AppState:
    document = spec_document or load_spec(settings.spec_dir, allow_missing=settings.allow_missing_spec)
    spec = SpecIndex(document)
    db = db or Database(settings.database_url)
    if migrate:
        db.migrate()
    box = SecretBox(load_or_create_key(settings))
    return AppState(
        settings=settings,
        spec=spec,
        db=db,
        box=box,
        lifecycles=Lifecycles(spec),
        limiter=limiter or make_rate_limiter(settings.redis_url, prefix=settings.redis_prefix),
        renderer=ErrorRenderer(spec),
        limits=PartnerLimitCache(db=db, default=settings.rate_limit_per_minute),
    )


def _middlewares(state: AppState) -> list[Any]:
    stack: list[Any] = []
    for mw in ConnexionMiddleware.default_middlewares:
        if mw is SecurityMiddleware:
            continue  # our AuthMiddleware replaces it (X-Partner-ID + X-Api-Key, tiers)
        if mw is RoutingMiddleware:
            stack.append(mw)
            stack.append(partial(AuthMiddleware, state=state))
            stack.append(pharmacy_app.auth_middleware(state))  # /api/external: clinic X-API-Key
            continue
        stack.append(mw)
        if mw is ResponseValidationMiddleware:
            stack.append(StampHeadersMiddleware)
        if mw is ServerErrorMiddleware:
            stack.append(pharmacy_app.edge_middleware(state))  # EdgeMiddleware + pharmacy rate key/envelope
            if state.settings.log_bodies:  # redacted bodies in the access log; absent (free) otherwise
                stack.append(partial(BodyLogMiddleware, partner_map=PhiMap(state.spec.document)))
    assert RequestValidationMiddleware in stack and StampHeadersMiddleware in stack
    return stack


def create_app(settings: Settings | None = None, *, state: AppState | None = None) -> AsyncApp:
    """Build the sandbox app. ``state`` lets tests share a database or limiter between apps."""
    openapi_adapter.install()
    settings = settings or (state.settings if state else Settings.from_env())
    state = state or build_state(settings)
    faults.configure(settings.test_faults if settings.environment == "sandbox" else ())  # test-only switch

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        from server.pharmacy import runtime as pharmacy_runtime
        from server.webhooks.runtime import start_background, stop_background  # sandbox part 2

        start_background(state)
        pharmacy_runtime.start_background(state)
        yield
        pharmacy_runtime.stop_background(state)
        stop_background(state)
        await state.limiter.close()

    app = AsyncApp(
        __name__,
        middlewares=_middlewares(state),
        lifespan=lifespan,
    )
    app.state_ref = state  # type: ignore[attr-defined]
    app.add_api(
        state.spec.document,
        resolver=Resolver(function_resolver=make_resolver_function(state)),
        strict_validation=True,
        validate_responses=settings.response_validation,
        validator_map=openapi_adapter.validator_map(),
        swagger_ui_options=SwaggerUIOptions(serve_spec=False, swagger_ui=False),
        base_path="",
    )
    pharmacy_app.add_pharmacy_api(app, state)  # spec/pharmacy-api under /api/external
    register_web_routes(app, state)
    renderer = pharmacy_app.routing_renderer(state.renderer)  # pharmacy envelope under /api/external
    app.add_error_handler(ApiError, renderer.handle_api_error)
    app.add_error_handler(ProblemException, renderer.handle_problem)
    app.add_error_handler(HTTPException, renderer.handle_http)
    app.add_error_handler(Exception, renderer.handle_exception)
    return app


def app_from_env() -> AsyncApp:
    """uvicorn entry: ``uvicorn --factory server.app:app_from_env``."""
    from server import logs

    settings = Settings.from_env()
    logs.configure(settings)
    return create_app(settings)
