"""Bounded request bodies: refuse oversized uploads before they are spooled to disk."""

from __future__ import annotations

import json

from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from viewfinder.errors import InvalidInputError, TooLargeError

# Room for multipart boundaries and the small form fields that travel beside a file.
FORM_OVERHEAD_BYTES = 256 * 1024


def too_large_message(limit: int) -> str:
    # "Image file too large" is the error seed 003's README tells its users to look for.
    return (
        f"Image file too large: the upload exceeds the limit of {limit} bytes "
        f"({limit / 1048576:.0f} MB); send a smaller file or raise VIEWFINDER_MAX_UPLOAD_BYTES."
    )


class _BodyTooLargeError(Exception):
    pass


class BodySizeLimitMiddleware:
    """Answers 413 as soon as a request body is known to exceed the limit (by Content-Length,
    or by counting a chunked body), instead of letting the form parser spool it all."""

    def __init__(self, app: ASGIApp, max_upload_bytes: int) -> None:
        self.app = app
        self.upload_limit = max_upload_bytes
        self.body_limit = max_upload_bytes + FORM_OVERHEAD_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.body_limit:
            await self._refuse(send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.body_limit:
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
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": too_large_message(self.upload_limit)}).encode()
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
