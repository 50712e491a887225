"""The one place where domain errors become HTTP status codes."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from viewfinder.errors import (
    ConflictError,
    DeviceUnavailableError,
    InvalidInputError,
    InvalidRequestError,
    ModelUnavailableError,
    NotFoundError,
    OverloadedError,
    StorageError,
    TooLargeError,
    ViewfinderError,
)

log = logging.getLogger(__name__)

STATUS_BY_ERROR: tuple[tuple[type[ViewfinderError], int], ...] = (
    (InvalidInputError, 400),
    (NotFoundError, 404),
    (ConflictError, 409),
    (TooLargeError, 413),
    (InvalidRequestError, 422),
    (OverloadedError, 429),
    (ModelUnavailableError, 503),
    (DeviceUnavailableError, 503),
    (StorageError, 503),
)


# Answered by middleware before any route runs, so no domain error stands for them.
# 401/403/429: the API-key access control (api/auth.py); 413: the body-size limit (api/uploads.py).
MIDDLEWARE_STATUSES = (401, 403, 413, 429)
# Every route but GET /health can be refused by the access control.
ACCESS_STATUSES = (401, 403, 429)

# What each status means to a caller: the OpenAPI document's response descriptions.
MEANING: dict[int, str] = {
    400: "The request is malformed: a body that cannot be parsed, an image that cannot be "
    "downloaded or decoded, a value the route cannot use. `detail` says what to fix.",
    401: "No API key, or an unknown or revoked one (once the server has keys).",
    403: "Refused: a read-only key on a route that changes data, or a cross-origin request.",
    404: "The named thing (asset, collection, person, face, job...) does not exist.",
    409: "The request conflicts with the current state (e.g. the name is taken).",
    413: "The body, the upload, the downloaded image or its pixel count exceeds a configured "
    "limit (VIEWFINDER_MAX_UPLOAD_BYTES, VIEWFINDER_MAX_IMAGE_PIXELS).",
    422: "The request does not match this schema: `detail` lists each problem (`loc`, `msg`); "
    "or, for a well-formed request that cannot be carried out as given (e.g. repeated "
    "`operation_id` values), `detail` is a sentence.",
    429: "Too busy: a model's queue is full, or this key's rate limit is reached; retry after "
    "the `Retry-After` header's seconds.",
    503: "A model, the device or the storage cannot be used right now (e.g. a model that is "
    "not available offline); `detail` says which.",
}


class ErrorOut(BaseModel):
    """Every error response but a schema mismatch (422): one sentence for the caller."""

    detail: str = Field(description="What went wrong and what to change.")


class ValidationIssue(BaseModel):
    """One way in which a request does not match the schema (FastAPI's format)."""

    loc: list[str | int] = Field(description='Where: e.g. ["body", "tasks", 0, "type"].')
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class RequestErrorOut(BaseModel):
    """A 422 from a route that also checks the request as a whole (e.g. repeated
    ``operation_id`` values): a list for a schema mismatch, a sentence otherwise."""

    detail: list[ValidationIssue] | str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route or router that can answer ``statuses``: each documented with
    its meaning and the ``{"detail": "..."}`` body. 422 is listed only for routes whose 422 can
    also be a domain error (a sentence); FastAPI documents the schema-mismatch 422 (a list) of
    every route with parameters by itself."""
    known = {status for _, status in STATUS_BY_ERROR} | set(MIDDLEWARE_STATUSES)
    unknown = sorted(set(statuses) - known)
    if unknown:
        raise ValueError(f"no error maps to status {unknown}: see STATUS_BY_ERROR")
    return {
        status: {
            "model": RequestErrorOut if status == 422 else ErrorOut,
            "description": MEANING[status],
        }
        for status in sorted(statuses)
    }


def status_for(error: ViewfinderError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 500


async def _viewfinder_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ViewfinderError)
    status = status_for(exc)
    headers = {}
    if isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    if status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as strings: JSON has no token for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, except that the offending input never makes the error response itself
    fail: NaN and infinities (which Python's JSON parser accepts) are echoed as strings, and an
    input nested too deeply to encode is left out."""
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    try:
        return JSONResponse({"detail": _finite(jsonable_encoder(errors))}, status_code=422)
    except RecursionError:
        shallow = [{k: v for k, v in error.items() if k != "input"} for error in errors]
        return JSONResponse({"detail": _finite(jsonable_encoder(shallow))}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ViewfinderError, _viewfinder_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
