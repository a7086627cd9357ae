"""Pages the sandbox serves itself: the co-branded enrollment page and the tracking page."""

from __future__ import annotations

from typing import Any

from server.state import AppState


def register_web_routes(app: Any, state: AppState) -> None:
    from server.web.routes import WebRoutes

    routes = WebRoutes(state)
    app.add_url_rule(
        "/enroll/{partner_slug}/{category}", "enroll_page", routes.enroll, methods=["GET", "POST"]
    )
    app.add_url_rule("/track/{token}", "track_page", routes.track, methods=["GET"])
    app.add_url_rule("/healthz", "healthz", routes.healthz, methods=["GET"])
    app.add_url_rule("/openapi.json", "openapi_json", routes.openapi_json, methods=["GET"])

    from server.web.docs import PortalFiles

    docs = PortalFiles(state.settings.portal_dir)
    app.add_url_rule("/docs", "docs_index", docs.index, methods=["GET"])
    app.add_url_rule("/docs/", "docs_root", docs.serve, methods=["GET"])
    app.add_url_rule("/docs/{path:path}", "docs_files", docs.serve, methods=["GET"])
