"""Binding of the pharmacy API into the sandbox app (called from server.app.create_app)."""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

from connexion import AsyncApp
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver

from server import openapi_adapter
from server.errors import ErrorRenderer
from server.pharmacy import BASE_PATH
from server.pharmacy.errors import PharmacyErrorRenderer, RoutingRenderer
from server.pharmacy.handlers import make_resolver_function
from server.pharmacy.middleware import PharmacyAuthMiddleware, PharmacyAwareEdgeMiddleware
from server.pharmacy.spec import load_pharmacy_spec, pharmacy_index
from server.state import AppState


def renderer() -> PharmacyErrorRenderer:
    return PharmacyErrorRenderer(pharmacy_index())


def routing_renderer(partner: ErrorRenderer) -> RoutingRenderer:
    return RoutingRenderer(partner, renderer())


def auth_middleware(state: AppState) -> Any:
    return partial(PharmacyAuthMiddleware, state=state)


def edge_middleware(state: AppState) -> Any:
    return partial(PharmacyAwareEdgeMiddleware, state=state, pharmacy_renderer=renderer())


def add_pharmacy_api(app: AsyncApp, state: AppState) -> None:
    """The second API: spec/pharmacy-api under /api/external, 2020-12 validation, responses validated."""
    app.add_api(
        copy.deepcopy(load_pharmacy_spec()),
        resolver=Resolver(function_resolver=make_resolver_function(state)),
        strict_validation=True,
        validate_responses=state.settings.response_validation,
        validator_map=openapi_adapter.validator_map(),
        swagger_ui_options=SwaggerUIOptions(serve_spec=False, swagger_ui=False),
        base_path=BASE_PATH,
        name="pharmacy",
    )
