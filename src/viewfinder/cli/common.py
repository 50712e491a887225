"""What every command shares: the settings, and how a domain error ends a command."""

from __future__ import annotations

import typer

from viewfinder.settings import Settings


def load_settings() -> Settings:
    try:
        return Settings()
    except ValueError as exc:
        typer.echo(f"invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from None


def fail(error: Exception) -> typer.Exit:
    typer.echo(f"error: {error}", err=True)
    return typer.Exit(1)
