"""The one place where domain errors become HTTP status codes."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from viewfinder.errors import (
    ConflictError,
    DeviceUnavailableError,
    InvalidInputError,
    InvalidRequestError,
    ModelUnavailableError,
    NotFoundError,
    OverloadedError,
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


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ViewfinderError, _viewfinder_error)
