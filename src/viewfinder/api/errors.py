"""The one place where domain errors become HTTP status codes."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

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
