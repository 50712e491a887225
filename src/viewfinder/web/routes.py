"""The web UI's routes: the page at ``/`` and its static files under ``/ui/static/``.

Only the files named in ``STATIC_FILES`` are served (an allowlist, so no path can reach anything
else), each with a strict Content-Security-Policy: the page runs only its own script and style."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from viewfinder.errors import NotFoundError

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "script-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(tags=["web ui"], include_in_schema=False)


def _serve(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise NotFoundError(f"no static file {name!r}")
    content = (STATIC_DIR / name).read_bytes()
    return Response(content, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/")
def index() -> Response:
    """The web UI."""
    return _serve("index.html")


@router.get("/ui/static/{name}")
def static_file(name: str) -> Response:
    """One of the UI's static files, by exact name."""
    return _serve(name)
