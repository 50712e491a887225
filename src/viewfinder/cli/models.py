"""``viewfinder models``: which models are configured, and fetching them ahead of time."""

from __future__ import annotations

from typing import Annotated

import typer

from viewfinder.cli.common import load_settings
from viewfinder.errors import ViewfinderError

models_app = typer.Typer(no_args_is_help=True, help="List and fetch the configured models.")


@models_app.command("list")
def models_list() -> None:
    """Each model: its setting, its source, and whether a local copy is available."""
    from viewfinder.model_registry import model_entries

    settings = load_settings()
    offline = settings.model_copy(update={"offline": True})
    for name, entry in model_entries(settings, "cpu").items():
        try:
            where = str(entry.resolve(offline))
            state = "available"
        except ViewfinderError:
            where, state = "-", "missing (run `viewfinder models pull`)"
        typer.echo(f"{name:16} {entry.source.env_var}={entry.source.spec}")
        typer.echo(f"{'':16} {state}: {where}")


@models_app.command("pull")
def models_pull(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to fetch (default: all).")
    ] = None,
) -> None:
    """Download the configured models into the model cache, ahead of time."""
    from viewfinder.model_registry import model_entries

    settings = load_settings()
    entries = model_entries(settings, "cpu")
    unknown = sorted(set(names or []) - set(entries))
    if unknown:
        typer.echo(f"unknown models {unknown}; known: {sorted(entries)}", err=True)
        raise typer.Exit(2)
    failed = 0
    for name in names or list(entries):
        try:
            typer.echo(f"{name}: {entries[name].resolve(settings)}")
        except ViewfinderError as exc:
            failed += 1
            typer.echo(f"{name}: FAILED: {exc}", err=True)
    if failed:
        raise typer.Exit(1)
