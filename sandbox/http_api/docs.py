"""/docs: Swagger UI served by this server, so it works offline, under a CSP that allows
exactly what the page loads.

The assets come from the `fastapi-offline` package (Swagger UI 5, which reads OpenAPI 3.1),
never from a CDN. The page has no inline script or style: its start-up is a file of its own
(`docs/init.js`), so the policy needs neither 'unsafe-inline' nor 'unsafe-eval'. Paths are
relative, so the page also works behind a reverse proxy that adds a path prefix.
"""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response

from sandbox.exceptions import NotFoundError

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    # Swagger UI's stylesheet draws its icons as data: URIs.
    "img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sandbox API</title>
<link rel="icon" type="image/png" href="docs/favicon.png">
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script src="docs/init.js"></script>
</body>
</html>
"""
INIT = """window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""
_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}


@functools.cache
def asset(name: str) -> bytes:
    """An asset's bytes, read once (about 1.7 MB in all, only if someone opens /docs)."""
    return (resources.files("fastapi_offline") / "static" / name).read_bytes()


def install(app: FastAPI) -> None:
    """Serve /docs and its assets (the app serves /openapi.json itself)."""

    @app.get("/docs", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=_HEADERS)

    @app.get("/docs/init.js", include_in_schema=False)
    async def init() -> Response:
        return Response(INIT, media_type="text/javascript; charset=utf-8", headers=_HEADERS)

    @app.get("/docs/{name}", include_in_schema=False)
    async def assets(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFoundError("no such file of the docs page")
        cache = {"Cache-Control": "public, max-age=86400"}
        return Response(asset(name), media_type=media_type, headers=cache)
