"""Swagger UI at ``/docs``, with its files served by Viewfinder itself (from the
``fastapi-swagger`` package) instead of a CDN, so the API's documentation works offline.

FastAPI's own ``/docs`` and ``/redoc`` load their scripts from jsdelivr: the app is built with
both off (``docs_url=None, redoc_url=None``) and this router serves the page instead. Only the
files named in ``STATIC_FILES`` are served (an allowlist), and the page's Content-Security-Policy
lets the browser load nothing from elsewhere."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from viewfinder.errors import NotFoundError

DOCS_PATH = "/docs"
STATIC_PATH = "/docs/static"
STATIC_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# Swagger UI needs its inline start-up script and inline styles; everything else is this server.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)

router = APIRouter(include_in_schema=False)


def _swagger_resource(name: str) -> bytes:
    return files("fastapi_swagger").joinpath("resources", name).read_bytes()


@router.get(DOCS_PATH)
def swagger_ui(request: Request) -> HTMLResponse:
    """The interactive API documentation."""
    root = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} API",
        swagger_js_url=f"{root}{STATIC_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{STATIC_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{STATIC_PATH}/favicon-32x32.png",
        # No badge fetched from validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    page.headers["X-Content-Type-Options"] = "nosniff"
    return page


@router.get(STATIC_PATH + "/{name}")
def swagger_file(name: str) -> Response:
    """One of Swagger UI's files, by exact name."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise NotFoundError(f"no documentation file {name!r}")
    return Response(
        _swagger_resource(name),
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
    )
