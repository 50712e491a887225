"""The FastAPI application factory. Nothing happens at import time: ``create_app(settings)``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

import viewfinder
from viewfinder.api.auth import install_access_control
from viewfinder.api.docs import router as docs_router
from viewfinder.api.errors import install_error_handlers
from viewfinder.api.middleware import RequestLogMiddleware
from viewfinder.api.routes import (
    analysis,
    collections,
    faces,
    library,
    people,
    seed002,
    seed003,
    seed004,
    system,
)
from viewfinder.api.uploads import BodySizeLimitMiddleware
from viewfinder.container import Services
from viewfinder.settings import Settings
from viewfinder.web import routes as web


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    """Build the app. ``services`` lets a caller share already-built services (tests, CLI);
    otherwise they are built from ``settings`` and closed at shutdown."""
    owned = services is None
    built = services or Services.build(settings, with_library=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(built.start)
        try:
            yield
        finally:
            if owned:
                await run_in_threadpool(built.close)

    app = FastAPI(
        title="Viewfinder",
        version=viewfinder.__version__,
        description="Self-hosted image intelligence: analysis, search, faces, classification.",
        lifespan=lifespan,
        docs_url=None,  # served by api/docs.py without a CDN
        redoc_url=None,
    )
    app.state.services = built
    install_error_handlers(app)
    app.include_router(analysis.router)
    app.include_router(library.router)
    app.include_router(collections.router)
    app.include_router(people.router)  # before faces: /faces/clusters is not /faces/{id}
    app.include_router(faces.router)
    app.include_router(seed002.router)
    app.include_router(seed004.router)
    app.include_router(seed003.router)
    app.include_router(system.router)
    app.include_router(system.probes)
    app.include_router(web.router)
    app.include_router(docs_router)
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_upload_bytes=settings.max_upload_bytes,
        max_request_bytes=settings.max_request_bytes,
    )
    install_access_control(app, settings, built)  # between the body limit and CORS: see there
    if settings.cors_origins:
        # Outside the body-size limit and the routes: preflight requests are answered here.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(RequestLogMiddleware)
    return app
