"""``viewfinder models``: which models are configured, and fetching them ahead of time."""

from __future__ import annotations

from typing import Annotated

import typer

from viewfinder.cli.common import load_settings
from viewfinder.errors import ViewfinderError

models_app = typer.Typer(no_args_is_help=True, help="List and fetch the configured models.")


@models_app.command("list")
def models_list() -> None:
    """Each model: its setting, its source, and whether a local copy is available; then which
    are missing and how to get them."""
    from viewfinder.model_registry import model_entries
    from viewfinder.runtime.sources import looks_like_path

    settings = load_settings()
    offline = settings.model_copy(update={"offline": True})
    fetchable: list[str] = []  # not downloaded yet: `models pull` fetches them
    broken: list[str] = []  # a local path that is not there: only the setting can fix it
    entries = model_entries(settings, "cpu")
    for name, entry in entries.items():
        typer.echo(f"{name:16} {entry.source.env_var}={entry.source.spec}")
        try:
            typer.echo(f"{'':16} available: {entry.resolve(offline)}")
        except ViewfinderError as exc:
            if looks_like_path(entry.source.spec):
                broken.append(name)
                typer.echo(f"{'':16} missing: {exc}")
            else:
                fetchable.append(name)
                typer.echo(f"{'':16} not downloaded yet")
    if not fetchable and not broken:
        typer.echo(f"all {len(entries)} models are available")
    if fetchable:
        when = (
            "VIEWFINDER_OFFLINE is set: unset it for"
            if settings.offline
            else "fetched on first use, or now with"
        )
        typer.echo(
            f"not downloaded: {', '.join(fetchable)} "
            f"({when} `viewfinder models pull {' '.join(fetchable)}`)"
        )
    if broken:
        paths = "its path does not exist" if len(broken) == 1 else "their paths do not exist"
        typer.echo(f"missing: {', '.join(broken)} ({paths}: fix the setting shown above)")


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
