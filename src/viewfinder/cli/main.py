"""``viewfinder``: the command line. Each group lives in its own module; this one assembles them
and serves the API."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from viewfinder.cli.analysis import analyze, caption_folder
from viewfinder.cli.common import fail, load_settings
from viewfinder.cli.faces import faces_app
from viewfinder.cli.keys import keys_app
from viewfinder.cli.library import db_app, index, train_classifiers
from viewfinder.cli.models import models_app
from viewfinder.cli.scale import vectors_app, worker
from viewfinder.errors import ViewfinderError

app = typer.Typer(no_args_is_help=True, help="Viewfinder: self-hosted image intelligence.")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"viewfinder {version('viewfinder')}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print Viewfinder's version and exit.",
        ),
    ] = False,
) -> None:
    """Viewfinder: self-hosted image intelligence."""
    _quiet_libraries(ctx.invoked_subcommand)


def _quiet_libraries(command: str | None) -> None:
    """The commands draw their own progress: the libraries' own bars ("Loading weights") and
    OpenCV's notices would break it up. Set before those libraries load; an explicit setting
    wins. ``models pull`` keeps Hugging Face's download bars, the only progress it has."""
    if command != "models":
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (VIEWFINDER_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (VIEWFINDER_PORT).")] = None,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from viewfinder.access.exposure import anonymous_exposure
    from viewfinder.api.app import create_app
    from viewfinder.library.topology import shared_store_warning
    from viewfinder.logging_setup import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    refusal = anonymous_exposure(settings, host or settings.host)
    if refusal:
        typer.echo(f"error: {refusal}", err=True)
        raise typer.Exit(2)
    warning = shared_store_warning(settings)
    if warning:
        logging.getLogger("viewfinder.serve").warning(warning)
    try:
        api = create_app(settings)
    except ViewfinderError as exc:
        raise fail(exc) from None
    uvicorn.run(
        api,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
    )


app.command()(worker)
app.command()(analyze)
app.command()(index)
app.command("train-classifiers")(train_classifiers)
app.command("caption-folder")(caption_folder)
app.add_typer(models_app, name="models")
app.add_typer(vectors_app, name="vectors")
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(faces_app, name="faces")
