"""Access control on every request, as one pure ASGI middleware (see docs/security.md).

In order: OPTIONS passes (the CORS middleware outside this one answers preflights); a
state-changing request from another browser origin is refused; then, once any API key exists,
every route but the public ones needs a key (``Authorization: Bearer KEY`` or ``X-API-Key``) or
the web UI's session cookie; a read-only key may only read; each key has a rate limit."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from viewfinder.access.control import AccessControl
from viewfinder.access.keys import KeyStore, Principal
from viewfinder.container import Services
from viewfinder.settings import Settings

SESSION_COOKIE = "viewfinder_session"
SESSION_PATH = "/api/v1/session"
# The scope key under which the request's principal (None: anonymous) is handed to routes.
PRINCIPAL = "viewfinder.principal"

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POST routes that store nothing (searches, analyses): a read-only key may call them. Every
# other POST, PUT, PATCH and DELETE is a write. The one list; tests check it against the API.
READ_ONLY_POSTS = frozenset(
    {
        "/analyze_image/",
        "/analyze_image_upload/",
        "/analyze_images/",
        "/api/v1/search",
        "/api/v1/search/image",
        "/api/demo_backend_v2/image_search/search",
        "/api/demo_backend_v2/image_search/search_by_image",
        "/api/images/analyze",
        "/api/images/analyze-stream",
    }
)
# Needing no key: health and readiness checks, the web UI's page and files (so it can ask for a
# key), the API's description, and the session routes (signing in). None of them returns library
# data.
PUBLIC_PATHS = frozenset(
    {
        "/health",
        "/ready",
        "/",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        SESSION_PATH,
    }
)
PUBLIC_PREFIXES = ("/ui/static/", "/docs/")


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def is_write(method: str, path: str) -> bool:
    if method in SAFE_METHODS:
        return False
    return not (method == "POST" and path in READ_ONLY_POSTS)


def _origin_host(origin: str) -> str | None:
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def is_same_origin(headers: dict[str, str]) -> bool:
    """Whether the browser says the request comes from this server's own pages. The Origin is
    compared with the Host the request was sent to (scheme aside: behind a TLS proxy the server
    sees http), and ``Sec-Fetch-Site: same-origin`` is taken as is (a page cannot forge it)."""
    if headers.get("sec-fetch-site") == "same-origin":
        return True
    origin, host = headers.get("origin"), headers.get("host")
    return origin is not None and host is not None and _origin_host(origin) == host.lower()


def cross_origin_refusal(headers: dict[str, str], allowed: frozenset[str]) -> str | None:
    """Why a state-changing request is refused as coming from another site, or None. A request
    without Origin and Sec-Fetch-Site is not from a browser page (curl, SDKs) and passes."""
    origin = headers.get("origin")
    if origin is not None:
        if is_same_origin(headers) or "*" in allowed or origin in allowed:
            return None
        return (
            f"cross-origin request refused: a page on {origin} may not change data here; "
            "add the origin to VIEWFINDER_CORS_ORIGINS if it is your own frontend"
        )
    if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return "cross-origin request refused: it comes from another site's page"
    return None


class AccessControlMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware): streaming responses pass through unbuffered."""

    def __init__(self, app: ASGIApp, access: AccessControl, cors_origins: list[str]) -> None:
        self.app = app
        self.access = access
        self.allowed_origins = frozenset(cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = (
            cross_origin_refusal(headers, self.allowed_origins)
            if method not in SAFE_METHODS
            else None
        )
        if refusal:
            await _send_denial(send, Denial(403, refusal))
            return
        scope[PRINCIPAL] = None
        if await self._keys_required():
            header_key = _header_key(headers)
            cookie = None if header_key is not None else _cookie(headers, SESSION_COOKIE)
            principal = await self._principal(header_key, cookie)
            scope[PRINCIPAL] = principal
            if not is_public(path):
                denial = (
                    self._unauthenticated(_client_address(scope), header_key, cookie)
                    if principal is None
                    else self._authorize(principal, method, path, headers, cookie is not None)
                )
                if denial is not None:
                    await _send_denial(send, denial)
                    return
        await self.app(scope, receive, send)

    def _authorize(
        self,
        principal: Principal,
        method: str,
        path: str,
        headers: dict[str, str],
        by_cookie: bool,
    ) -> Denial | None:
        if by_cookie and method not in SAFE_METHODS and not is_same_origin(headers):
            return Denial(
                403,
                "refused: a request signed in by the session cookie that changes data must come "
                "from this server's own page (same-origin Origin header); scripts should send "
                "their key in the Authorization or X-API-Key header",
            )
        if principal.read_only and is_write(method, path):
            return Denial(
                403,
                f"this API key is read-only: {method} {path} changes data and needs a "
                "full-access key (`viewfinder keys create` without --read-only)",
            )
        wait_s = self.access.requests.take(principal.ref)
        if wait_s > 0:
            limit = self.access.requests.per_minute
            return _too_many(wait_s, f"rate limit of {limit} requests per minute reached")
        return None

    async def _keys_required(self) -> bool:
        known = self.access.cached_keys_required()
        if known is not None:
            return known
        return await run_in_threadpool(self.access.keys_required)

    async def _principal(self, header_key: str | None, cookie: str | None) -> Principal | None:
        if header_key is not None:
            cached = self.access.cached_key(header_key)
            if cached is None or isinstance(cached, Principal):
                return cached
            return await run_in_threadpool(self.access.key, header_key)
        if cookie is None:
            return None
        if self.access.session_ready():
            ref = self.access.session_ref(cookie)
        else:
            ref = await run_in_threadpool(self.access.session_ref, cookie)
        if ref is None:
            return None
        cached_ref = self.access.cached_ref(ref)
        if cached_ref is None or isinstance(cached_ref, Principal):
            return cached_ref
        return await run_in_threadpool(self.access.ref, ref)

    def _unauthenticated(self, client: str, header_key: str | None, cookie: str | None) -> Denial:
        if header_key is None and cookie is None:
            detail = (
                "this server requires an API key: send it as `Authorization: Bearer KEY` or "
                "`X-API-Key: KEY` (an administrator creates keys with `viewfinder keys create`)"
            )
        else:
            # Made-up keys each cost a database lookup: their number per address is limited.
            wait_s = self.access.failures.take(client)
            if wait_s > 0:
                return _too_many(wait_s, "too many failed authentications from this address")
            detail = (
                "this API key is not valid (unknown or revoked)"
                if header_key is not None
                else "the session has expired or its key was revoked: sign in again"
            )
        return Denial(401, detail, ((b"www-authenticate", b"Bearer"),))


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _header_key(headers: dict[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    api_key = headers.get("x-api-key")
    if api_key is not None and api_key.strip():
        return api_key.strip()
    return None


def _cookie(headers: dict[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


@dataclass(frozen=True)
class Denial:
    """A refusal answered by the middleware itself: ``{"detail": ...}`` with a status."""

    status: int
    detail: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


async def _send_denial(send: Send, denial: Denial) -> None:
    body = json.dumps({"detail": denial.detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {
            "type": "http.response.start",
            "status": denial.status,
            "headers": headers + list(denial.headers),
        }
    )
    await send({"type": "http.response.body", "body": body})


def _too_many(wait_s: float, why: str) -> Denial:
    retry = max(1, math.ceil(wait_s))
    return Denial(
        429,
        f"{why}: try again in {retry} s (VIEWFINDER_RATE_LIMIT_PER_MINUTE)",
        ((b"retry-after", str(retry).encode()),),
    )


def add_security_schemes(app: FastAPI) -> None:
    """Declare the two ways of sending a key in the OpenAPI document (Swagger UI's Authorize
    button uses them); ``GET /health`` is marked as needing none."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {}).update(
            {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
        )
        schema["security"] = [{"bearer": []}, {"apiKey": []}]
        for path, operations in schema.get("paths", {}).items():
            if is_public(path):
                for operation in operations.values():
                    operation["security"] = []
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_access_control(app: FastAPI, settings: Settings, services: Services) -> None:
    """Add the middleware, the session routes and the security schemes. Call it after the
    body-size limit and before CORS, so preflights never need a key and refused uploads are
    not read."""
    from viewfinder.web import session

    library = services.library
    access = AccessControl(settings, KeyStore(library.sessions) if library is not None else None)
    app.state.access = access
    app.include_router(session.router)
    app.add_middleware(AccessControlMiddleware, access=access, cors_origins=settings.cors_origins)
    add_security_schemes(app)
