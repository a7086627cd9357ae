"""Serve the static developer portal (``make portal`` → build/portal) at /docs."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Portal not built</title></head>
<body><h1>The developer portal has not been built yet</h1>
<p>Run <code>make portal</code> (or <code>make serve</code>, which builds it) and reload this page.</p></body></html>"""


class PortalFiles:
    """Maps /docs/<path> to a file under the portal directory, never outside it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def resolve(self, rel: str) -> Path | None:
        candidate = (self.root / rel).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            return None
        if candidate.is_dir():
            candidate = candidate / "index.html"
        return candidate if candidate.is_file() else None

    async def index(self, request: Request) -> Response:
        return RedirectResponse(url="/docs/", status_code=308)

    async def serve(self, request: Request) -> Response:
        rel = request.path_params.get("path", "")
        if not (self.root / "index.html").is_file():
            return HTMLResponse(NOT_BUILT, status_code=503)
        target = self.resolve(rel)
        if target is None:
            return HTMLResponse("<!doctype html><title>Not found</title><h1>Not found</h1>", status_code=404)
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return FileResponse(target, media_type=media_type)
