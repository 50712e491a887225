"""What every command shares: the settings, and how a domain error ends a command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

from viewfinder.errors import ViewfinderError
from viewfinder.settings import Settings

if TYPE_CHECKING:
    from viewfinder.library.library import Library


def load_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        typer.echo(f"invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None


def fail(error: Exception) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(1)


@contextmanager
def command_library() -> Iterator[Library]:
    """The library for a command's own work (no background threads), closed afterwards; a
    domain error ends the command with its message."""
    from viewfinder.container import Services

    settings = load_settings().model_copy(update={"worker_threads": 0})
    try:
        services = Services.build(settings, with_library=True)
    except ViewfinderError as exc:
        raise fail(exc) from None
    try:
        yield services.require_library()
    except ViewfinderError as exc:
        raise fail(exc) from None
    finally:
        services.close()
