"""Bounded request bodies: refuse oversized uploads before they are spooled to disk. Each file is
held to ``max_upload_bytes``; a request body to that plus room for the form, except on the routes
that take many files, whose body is held to ``max_request_bytes``."""

from __future__ import annotations

import json
from typing import Final

from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from viewfinder.errors import InvalidInputError, TooLargeError

# Room for multipart boundaries and the small form fields that travel beside a file.
FORM_OVERHEAD_BYTES = 256 * 1024

# (method, path) of the routes whose body carries up to MAX_FILES_PER_UPLOAD files.
MULTI_FILE_ROUTES: Final = frozenset({("POST", "/api/v1/assets")})


def too_large_message(limit: int) -> str:
    # "Image file too large" is the error seed 003's README tells its users to look for.
    return (
        f"Image file too large: the upload exceeds the limit of {limit} bytes "
        f"({limit / 1048576:.0f} MB); send a smaller file or raise VIEWFINDER_MAX_UPLOAD_BYTES."
    )


def request_too_large_message(limit: int, upload_limit: int) -> str:
    return (
        f"Request too large: the body exceeds the limit of {limit} bytes "
        f"({limit / 1048576:.0f} MB) for one upload request; send fewer files per request or "
        f"raise VIEWFINDER_MAX_REQUEST_BYTES (each file may have up to {upload_limit} bytes)."
    )


class _BodyTooLargeError(Exception):
    pass


class BodySizeLimitMiddleware:
    """Answers 413 as soon as a request body is known to exceed the limit (by Content-Length,
    or by counting a chunked body), instead of letting the form parser spool it all."""

    def __init__(self, app: ASGIApp, max_upload_bytes: int, max_request_bytes: int) -> None:
        self.app = app
        self.upload_limit = max_upload_bytes
        self.body_limit = max_upload_bytes + FORM_OVERHEAD_BYTES
        # A many-file request always has room for one file of the largest size.
        self.multi_file_limit = max(max_request_bytes, self.body_limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if (scope["method"], scope["path"]) in MULTI_FILE_ROUTES:
            limit = self.multi_file_limit
            message = request_too_large_message(limit, self.upload_limit)
        else:
            limit = self.body_limit
            message = too_large_message(self.upload_limit)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(send, message)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLargeError:
            if not started:
                await self._refuse(send, message)

    async def _refuse(self, send: Send, message: str) -> None:
        body = json.dumps({"detail": message}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The uploaded file's bytes, or TooLargeError past ``limit``; empty files are refused."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await upload.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise TooLargeError(too_large_message(limit))
        chunks.append(chunk)
    if size == 0:
        raise InvalidInputError(
            f"Could not process image: the uploaded file {upload.filename!r} is empty"
        )
    return b"".join(chunks)
