"""The web UI's session: sign in once with an API key, then a cookie authenticates the page's
requests, ``<img>`` URLs included (they cannot carry an Authorization header).

The cookie is HttpOnly (no script can read it) and SameSite=Strict (no other site's page makes
the browser send it); it holds a signed token naming the key, never the key itself."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from viewfinder.access.control import AccessControl
from viewfinder.access.keys import Principal
from viewfinder.api.auth import PRINCIPAL, SESSION_COOKIE, SESSION_PATH
from viewfinder.errors import ConflictError

router = APIRouter(tags=["web ui"], include_in_schema=False)


class SignIn(BaseModel):
    key: str = Field(min_length=1, max_length=1000, description="an API key")


def _access(request: Request) -> AccessControl:
    access: AccessControl = request.app.state.access
    return access


def _state(required: bool, principal: Principal | None) -> dict[str, Any]:
    return {
        "keys_required": required,
        "authenticated": principal is not None,
        "name": principal.name if principal else None,
        "read_only": principal.read_only if principal else False,
    }


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get(SESSION_PATH)
async def session_state(request: Request) -> dict[str, Any]:
    """Whether this server needs a key, and whom this request is signed in as."""
    required = await run_in_threadpool(_access(request).keys_required)
    return _state(required, request.scope.get(PRINCIPAL))


@router.post(SESSION_PATH)
async def sign_in(body: SignIn, request: Request) -> Response:
    """Check the key and set the session cookie."""
    access = _access(request)
    if not await run_in_threadpool(access.keys_required):
        raise ConflictError("this server has no API keys: there is nothing to sign in to")
    wait_s = access.failures.wait_s(_client(request))
    if wait_s > 0:
        retry = str(max(1, math.ceil(wait_s)))
        return JSONResponse(
            {"detail": f"too many failed sign-ins from this address: try again in {retry} s"},
            status_code=429,
            headers={"Retry-After": retry},
        )
    principal = await run_in_threadpool(access.key, body.key.strip())
    if principal is None:
        access.failures.take(_client(request))
        return JSONResponse(
            {"detail": "this API key is not valid (unknown or revoked)"}, status_code=401
        )
    opened = await run_in_threadpool(access.open_session, principal)
    response = JSONResponse({**_state(True, principal), "expires_at": opened.expires_at})
    response.set_cookie(
        SESSION_COOKIE,
        opened.token,
        max_age=opened.max_age_s,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.delete(SESSION_PATH, status_code=204)
async def sign_out(request: Request) -> Response:
    """Forget the session cookie in this browser."""
    response = Response(status_code=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response
