"""Request logging as seed 000 describes it: start and finish, duration, worker PID."""

from __future__ import annotations

import logging
import os
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("viewfinder.requests")


class RequestLogMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware) so streaming responses are not buffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method, path, pid = scope["method"], scope["path"], os.getpid()
        status = 500
        log.info("request start %s %s pid=%d", method, path, pid)

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            log.info(
                "request finish %s %s status=%d duration=%.4fs pid=%d",
                method,
                path,
                status,
                time.perf_counter() - started,
                pid,
            )
