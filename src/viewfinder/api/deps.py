"""Request-scoped access to the process's services."""

from __future__ import annotations

from fastapi import Request

from viewfinder.container import Services
from viewfinder.library.library import Library


def services(request: Request) -> Services:
    built: Services = request.app.state.services
    return built


def library(request: Request) -> Library:
    return services(request).require_library()
