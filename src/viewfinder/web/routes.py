"""The web UI's routes: the page for every view address, and its static files under ``/ui/static/``.

The UI is a single page with addresses of its own (``/people/3``, ``/search?q=...``): each view
path below answers the same ``index.html``, whose script renders the view, so reload and Back
work. Only files inside ``static/`` with a known type are served (resolved paths are checked to
stay inside it), each with a strict Content-Security-Policy: the page runs only its own scripts
and styles."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from viewfinder.errors import NotFoundError

STATIC_DIR = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# The first segment of every address the UI renders itself (see static/lib/router.js). None
# clashes with an API route: seed 004's /images and /clusters stay the organizer's.
VIEW_SECTIONS = (
    "photos",
    "folders",
    "people",
    "search",
    "duplicates",
    "collections",
    "analyse",
    "jobs",
)
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
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


def static_path(name: str) -> Path:
    """The file ``name`` (``views/people.js``) inside ``static/``, or NotFoundError: no other
    path, hidden file or unknown type is ever read."""
    parts = name.split("/")
    if "\x00" in name or "\\" in name or any(not part or part.startswith(".") for part in parts):
        raise NotFoundError(f"no static file {name!r}")
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR) or path.suffix not in MEDIA_TYPES or not path.is_file():
        raise NotFoundError(f"no static file {name!r}")
    return path


def _serve(name: str) -> Response:
    path = static_path(name)
    return Response(
        path.read_bytes(), media_type=MEDIA_TYPES[path.suffix], headers=SECURITY_HEADERS
    )


@router.get("/")
def index() -> Response:
    """The web UI."""
    return _serve("index.html")


def view_page() -> Response:
    """The web UI at one of its own addresses."""
    return _serve("index.html")


for _section in VIEW_SECTIONS:
    router.add_api_route(f"/{_section}", view_page, methods=["GET"])
    router.add_api_route(f"/{_section}/{{rest:path}}", view_page, methods=["GET"])


@router.get("/ui/static/{name:path}")
def static_file(name: str) -> Response:
    """One of the UI's static files, by exact relative path."""
    return _serve(name)
